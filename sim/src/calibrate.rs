//! Fitting the cost model to a host: `mqsim calibrate` reads the tables
//! `cargo xtask bench --processes` printed there and works out the
//! `[topology.cost]` values that reproduce them, so a new machine is one
//! command away from a calibrated model.
//!
//! What is fitted, each in closed form from the runs' medians:
//! - `broker_workers`: the cores the broker kept busy when saturated (ASYNC
//!   throughput times its CPU per send, rounded).
//! - `send_us`: the broker's CPU per send under ASYNC_FLUSH at 16 producers
//!   or more (saturated, so the CPU of idle wake-ups is spread thin), less
//!   `per_kib_us` for the body.
//! - `flush_us` and `sync_send_us`: under SYNC_FLUSH the CPU per send is a
//!   per-send part plus a per-fsync part spread over the sends a flush
//!   covers: `cpu = a + flush_us / (msgs per flush)`, a least-squares line
//!   through the runs at 16 producers or more; `sync_send_us` is what `a`
//!   has beyond the ASYNC send.
//! - `link_latency_ms`: one producer's ASYNC round trip (its mean, the
//!   inverse of its throughput, since it has one send in flight) is two
//!   link crossings and a send's service; the link's mean is what remains,
//!   and its range is as wide around it as makes the round trip's 99th
//!   percentile the measured one.
//! - `fsync_ms`: one producer's SYNC round trip less its ASYNC one is the
//!   flush's CPU, the extra send cost and the fsync; the median from the
//!   mean round trips (a log-normal's mean is a little above its median:
//!   the fit errs long), the 99th percentile from the 99th percentiles.
//!
//! - `pull_us`, when the runs include `--drain`: the broker's CPU per
//!   message pulled, less `per_kib_us`, times the 32 messages a pull
//!   returns from a backlog.
//!
//! Not fitted: `per_kib_us` (one body size says nothing of it), the other
//! requests' cost (the benchmark has few) and the tail
//! (`worker_stall_*`, `worker_late_share`), which has no closed form: these
//! keep the base scenario's values, and `mqsim bench --sweep` fits the tail.

use scenarios::{Cost, FlushMode};
use std::collections::BTreeMap;

/// One row of the real benchmark's table, or the median of several.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The broker's flush mode.
    pub flush: FlushMode,
    /// Concurrent producers, one send in flight each.
    pub producers: u32,
    /// Sends acknowledged per second.
    pub msgs_per_s: f64,
    /// Send latency, ms.
    pub p50_ms: f64,
    /// Send latency, ms.
    pub p99_ms: f64,
    /// The broker's CPU per message, µs, when the benchmark measured it.
    pub cpu_us: Option<f64>,
    /// Messages per commit log fsync, when the benchmark counted them.
    pub msgs_per_flush: Option<f64>,
}

/// What the benchmark's output holds: the body size and every row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Runs {
    /// The message body, bytes, from the benchmark's first line.
    pub body_bytes: Option<usize>,
    /// Every row, in the order printed.
    pub rows: Vec<Measured>,
    /// The broker's CPU per message pulled, µs, of each drain (`--drain`).
    pub drain_cpu_us: Vec<f64>,
}

/// The benchmark's default body, when its output does not state one.
pub const DEFAULT_BODY_BYTES: usize = 1024;

impl Runs {
    /// The body size the runs state, else the benchmark's default.
    pub fn body(&self) -> usize {
        self.body_bytes.unwrap_or(DEFAULT_BODY_BYTES)
    }
}

/// Reads the tables of one or more benchmark runs (their output appended
/// one after another). Rows are found by their first cell, `ASYNC_FLUSH` or
/// `SYNC_FLUSH`, and their columns by the last header line before them
/// (`flush producers ... msgs/s ... p50_ms ... p99_ms ...`), which may be
/// commented out with `#`; other lines, and rows commented out, are
/// ignored.
pub fn parse(text: &str) -> Result<Runs, String> {
    let mut runs = Runs::default();
    let mut columns: Option<Vec<String>> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let cells: Vec<&str> = line.trim_start_matches('#').split_whitespace().collect();
        if cells.first() == Some(&"flush") && cells.contains(&"producers") {
            columns = Some(cells.iter().map(|c| c.to_string()).collect());
            continue;
        }
        if let Some(at) = line.find(" B bodies") {
            let bytes = line[..at].rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|b| b.parse().ok());
            runs.body_bytes = runs.body_bytes.or(bytes);
        }
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("drain (").and_then(|r| r.split_once("broker CPU ")).map(|(_, cpu)| cpu) {
            let cpu = rest.split_whitespace().next().unwrap_or("-");
            if cpu != "-" {
                let cpu = cpu.parse::<f64>().map_err(|_| format!("line {}: a drain's CPU is {cpu:?}, not a number", n + 1))?;
                runs.drain_cpu_us.push(cpu);
            }
            continue;
        }
        let flush = match cells.first() {
            Some(&"ASYNC_FLUSH") => FlushMode::Async,
            Some(&"SYNC_FLUSH") => FlushMode::Sync,
            _ => continue,
        };
        let at = |what: &str| format!("line {}: {what}", n + 1);
        let columns = columns.as_ref().ok_or_else(|| at("a row before any header line (flush producers messages ...)"))?;
        let cell = |name: &str| -> Result<Option<f64>, String> {
            let Some(i) = columns.iter().position(|c| c == name) else { return Ok(None) };
            match cells.get(i) {
                None | Some(&"-") => Ok(None),
                Some(text) => text.parse::<f64>().map(Some).map_err(|_| at(&format!("{name} is {text:?}, not a number"))),
            }
        };
        let need = |name: &str| cell(name)?.ok_or_else(|| at(&format!("no {name}")));
        let producers = need("producers")?;
        if producers < 1.0 || producers.fract() != 0.0 {
            return Err(at(&format!("producers is {producers}")));
        }
        runs.rows.push(Measured {
            flush,
            producers: producers as u32,
            msgs_per_s: need("msgs/s")?,
            p50_ms: need("p50_ms")?,
            p99_ms: need("p99_ms")?,
            cpu_us: cell("broker_cpu_us/msg")?,
            msgs_per_flush: cell("msgs/flush")?,
        });
    }
    if runs.rows.is_empty() {
        return Err("no benchmark rows (lines starting ASYNC_FLUSH or SYNC_FLUSH)".to_string());
    }
    Ok(runs)
}

/// The median of each figure over the rows of the same flush mode and
/// producer count, figure by figure; ordered ASYNC first, then by
/// producers.
pub fn medians(rows: &[Measured]) -> Vec<Measured> {
    let mut groups: BTreeMap<(bool, u32), Vec<&Measured>> = BTreeMap::new();
    for row in rows {
        groups.entry((row.flush == FlushMode::Sync, row.producers)).or_default().push(row);
    }
    groups
        .into_values()
        .map(|group| {
            let of = |f: &dyn Fn(&Measured) -> Option<f64>| median(group.iter().filter_map(|r| f(r)).collect());
            Measured {
                flush: group[0].flush,
                producers: group[0].producers,
                msgs_per_s: of(&|r| Some(r.msgs_per_s)).unwrap_or(0.0),
                p50_ms: of(&|r| Some(r.p50_ms)).unwrap_or(0.0),
                p99_ms: of(&|r| Some(r.p99_ms)).unwrap_or(0.0),
                cpu_us: of(&|r| r.cpu_us),
                msgs_per_flush: of(&|r| r.msgs_per_flush),
            }
        })
        .collect()
}

/// The median; of an even count, the mean of the middle two.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A fitted cost model and how each value was reached.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The base model with the fitted fields replaced.
    pub cost: Cost,
    /// One line per fitted value: what it came from.
    pub derivation: Vec<String>,
}

/// Messages a pull returns while the benchmark's drain reads a backlog:
/// its consumer's batch (the client's default).
pub const DRAIN_PULL_BATCH: f64 = 32.0;

/// Producers from which a broker counts as saturated.
pub const SATURATED_PRODUCERS: u32 = 16;

/// Fits the cost model to the medians of a host's runs (see the module);
/// what is not fitted keeps `base`'s value. The runs need, under both
/// flush modes, one producer and (with the broker's CPU) 16 producers or
/// more; SYNC_FLUSH two such runs with their messages per flush.
pub fn fit(runs: &Runs, base: &Cost) -> Result<Fit, String> {
    let body_bytes = runs.body();
    let medians = &medians(&runs.rows);
    let find = |flush: FlushMode, producers: u32| medians.iter().find(|m| m.flush == flush && m.producers == producers);
    let saturated = |flush: FlushMode| -> Vec<&Measured> {
        medians.iter().filter(|m| m.flush == flush && m.producers >= SATURATED_PRODUCERS && m.cpu_us.is_some()).collect()
    };
    let missing = |what: &str| format!("the runs have no {what} (run: cargo xtask bench --processes --producers 1,16,64,256)");
    let async_one = find(FlushMode::Async, 1).ok_or_else(|| missing("ASYNC_FLUSH row with 1 producer"))?;
    let sync_one = find(FlushMode::Sync, 1).ok_or_else(|| missing("SYNC_FLUSH row with 1 producer"))?;
    let async_busy = saturated(FlushMode::Async);
    let sync_busy: Vec<&Measured> = saturated(FlushMode::Sync).into_iter().filter(|m| m.msgs_per_flush.is_some()).collect();
    if async_busy.is_empty() {
        return Err(missing("ASYNC_FLUSH row at 16 producers or more with broker_cpu_us/msg"));
    }
    if sync_busy.len() < 2 {
        return Err(missing("two SYNC_FLUSH rows at 16 producers or more with broker_cpu_us/msg and msgs/flush"));
    }
    let mut cost = base.clone();
    let mut derivation = Vec::new();
    let kib_us = base.per_kib_us * body_bytes as f64 / 1024.0;

    let send_cpu = median(async_busy.iter().filter_map(|m| m.cpu_us).collect()).expect("at least one");
    let throughput = median(async_busy.iter().map(|m| m.msgs_per_s).collect()).expect("at least one");
    let cores = throughput * send_cpu / 1e6;
    cost.broker_workers = (cores.round() as u32).max(1);
    derivation.push(format!(
        "broker_workers = {}: saturated under ASYNC_FLUSH the broker sent {throughput:.0} msgs/s at {send_cpu:.1} µs of CPU each, {cores:.2} cores",
        cost.broker_workers
    ));
    cost.send_us = round3((send_cpu - kib_us).max(0.0));
    derivation.push(format!(
        "send_us = {}: the broker's CPU per ASYNC_FLUSH send at {SATURATED_PRODUCERS}+ producers ({send_cpu:.1} µs) less per_kib_us for {body_bytes} B ({kib_us:.2} µs)",
        cost.send_us
    ));

    // cpu = a + flush_us * x, x = fsyncs per message.
    let points: Vec<(f64, f64)> =
        sync_busy.iter().map(|m| (1.0 / m.msgs_per_flush.expect("filtered").max(1.0), m.cpu_us.expect("filtered"))).collect();
    let (a, slope) = least_squares(&points).ok_or("the SYNC_FLUSH runs at 16+ producers all have the same messages per flush: no line fits")?;
    cost.flush_us = round3(slope.max(0.0));
    cost.sync_send_us = round3((a - send_cpu).max(0.0));
    let seen: Vec<String> = sync_busy
        .iter()
        .map(|m| format!("{} µs at {:.1} msgs/flush", m.cpu_us.expect("filtered"), m.msgs_per_flush.expect("filtered")))
        .collect();
    derivation.push(format!(
        "flush_us = {}, sync_send_us = {}: SYNC_FLUSH CPU per send = {a:.1} + {slope:.1} / (msgs per flush), least squares over {}",
        cost.flush_us,
        cost.sync_send_us,
        seen.join(", ")
    ));

    // One producer with one send in flight: its mean round trip is the
    // inverse of its throughput, finer than a printed percentile.
    let (async_trip_us, sync_trip_us) = (1e6 / async_one.msgs_per_s, 1e6 / sync_one.msgs_per_s);
    let link_us = ((async_trip_us - send_cpu) / 2.0).max(1.0);
    // Two draws from [m(1-w), m(1+w)] sum past 2m + 2mw(1 - sqrt(0.02))
    // one time in a hundred: the spread w that gives the round trip's p99.
    let spread = ((async_one.p99_ms * 1000.0 - send_cpu - 2.0 * link_us) / (2.0 * link_us * (1.0 - 0.02f64.sqrt()))).clamp(0.0, 1.0);
    cost.link_latency_ms = [round3(link_us * (1.0 - spread) / 1000.0), round3(link_us * (1.0 + spread) / 1000.0)];
    derivation.push(format!(
        "link_latency_ms = {:?}: one producer's mean ASYNC_FLUSH round trip ({async_trip_us:.1} µs, from its throughput) is two link crossings and a send ({send_cpu:.1} µs): {link_us:.1} µs one way on average, spread ±{:.0}% for its p99 ({} ms)",
        cost.link_latency_ms,
        spread * 100.0,
        async_one.p99_ms
    ));

    let flush_path_us = cost.sync_send_us + cost.flush_us;
    let fsync_p50 = (sync_trip_us - async_trip_us - flush_path_us).max(1.0) / 1000.0;
    let fsync_p99 = (((sync_one.p99_ms - async_one.p99_ms) * 1000.0 - flush_path_us) / 1000.0).max(fsync_p50);
    cost.fsync_ms = [round3(fsync_p50), round3(fsync_p99)];
    derivation.push(format!(
        "fsync_ms = {:?}: one producer's SYNC_FLUSH round trip less its ASYNC_FLUSH one (mean {sync_trip_us:.1} - {async_trip_us:.1} µs, p99 {} - {} ms), less the flush's CPU and the extra send cost ({flush_path_us:.1} µs)",
        cost.fsync_ms, sync_one.p99_ms, async_one.p99_ms
    ));
    if let Some(pulled) = median(runs.drain_cpu_us.clone()) {
        cost.pull_us = round3(((pulled - kib_us) * DRAIN_PULL_BATCH).max(0.0));
        derivation.push(format!(
            "pull_us = {}: the drains' broker CPU per message pulled ({pulled} µs, median of {}) less per_kib_us, times the {DRAIN_PULL_BATCH} a pull returns",
            cost.pull_us,
            runs.drain_cpu_us.len()
        ));
    }
    Ok(Fit { cost, derivation })
}

/// Intercept and slope of the least-squares line through `points`; `None`
/// when every x is the same.
fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= f64::EPSILON * mx.abs().max(1.0) {
        return None;
    }
    let slope = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    Some((my - slope * mx, slope))
}

/// Three significant figures, so the printed block reads as measured.
fn round3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The fitted fields as a `[topology.cost]` block to paste into a scenario.
pub fn cost_block(cost: &Cost) -> String {
    let f = |x: f64| format!("{x:?}");
    let pair = |p: [f64; 2]| format!("[{:?}, {:?}]", p[0], p[1]);
    [
        "[topology.cost]".to_string(),
        format!("broker_workers = {}", cost.broker_workers),
        format!("send_us = {}", f(cost.send_us)),
        format!("sync_send_us = {}", f(cost.sync_send_us)),
        format!("flush_us = {}", f(cost.flush_us)),
        format!("link_latency_ms = {}", pair(cost.link_latency_ms)),
        format!("fsync_ms = {}", pair(cost.fsync_ms)),
        format!("pull_us = {}", f(cost.pull_us)),
    ]
    .join("\n")
}

/// How far the model is from the real figure, as a share of the real one.
pub fn difference(real: f64, model: f64) -> f64 {
    if real == 0.0 {
        return if model == 0.0 { 0.0 } else { f64::INFINITY };
    }
    (model - real) / real
}

/// One row of the side-by-side table: a real median and the model's.
#[derive(Clone, Debug, PartialEq)]
pub struct Compared {
    /// The real benchmark's medians.
    pub real: Measured,
    /// The model's throughput, msgs/s.
    pub msgs_per_s: f64,
    /// The model's send latency, ms.
    pub p50_ms: f64,
    /// The model's send latency, ms.
    pub p99_ms: f64,
}

impl Compared {
    /// The larger of the throughput's and the p99's differences.
    pub fn worst(&self) -> f64 {
        difference(self.real.msgs_per_s, self.msgs_per_s).abs().max(difference(self.real.p99_ms, self.p99_ms).abs())
    }
}

/// The flush mode as the benchmark names it.
pub fn flush_name(flush: FlushMode) -> &'static str {
    match flush {
        FlushMode::Async => "ASYNC_FLUSH",
        FlushMode::Sync => "SYNC_FLUSH",
    }
}

/// The side-by-side table in Markdown: throughput and p99 (what the model
/// is held to) with their differences, and p50 for the reader.
pub fn table(rows: &[Compared]) -> String {
    let pct = |real: f64, model: f64| format!("{:+.0}%", difference(real, model) * 100.0);
    let mut out = String::from(
        "| flush | producers | real msgs/s | model msgs/s | diff | real p99 ms | model p99 ms | diff | real p50 ms | model p50 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {} | {:.3} | {:.3} | {} | {:.3} | {:.3} |\n",
            flush_name(r.real.flush),
            r.real.producers,
            r.real.msgs_per_s,
            r.msgs_per_s,
            pct(r.real.msgs_per_s, r.msgs_per_s),
            r.real.p99_ms,
            r.p99_ms,
            pct(r.real.p99_ms, r.p99_ms),
            r.real.p50_ms,
            r.p50_ms,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs as `cargo xtask bench --processes` prints them, the second
    /// slower; a third table from before the msgs/flush column.
    const RUNS: &str = "\
bench: namesrv and broker as separate processes, a fresh pair per flush mode; 120000 measured + 1000 warmup messages per row, 1024 B bodies, 8 queues
flush        producers  messages  seconds  msgs/s  MiB/s  p50_ms  p90_ms  p99_ms  p99.9_ms  max_ms  broker_cpu_us/msg  msgs/flush
ASYNC_FLUSH          1    120000     6.84   17000  17.13    0.07    0.08    0.10      0.15    6.79               26.0      9230.8
ASYNC_FLUSH         16    120000     1.46   84000  80.47    0.17    0.28    0.57      4.19    8.46               12.0     40000.0
SYNC_FLUSH           1    120000    26.72    4500   4.39    0.22    0.27    0.33      0.59   35.07              100.0         1.0
SYNC_FLUSH          16    120000     4.34   27000  27.02    0.57    0.76    1.00      2.50    4.34               29.0         6.0
SYNC_FLUSH         256    120000     1.94   60000  60.40    3.78    6.18    9.49     12.87   19.93               15.0        42.0
flush        producers  messages  seconds  msgs/s  MiB/s  p50_ms  p90_ms  p99_ms  p99.9_ms  max_ms  broker_cpu_us/msg  msgs/flush
ASYNC_FLUSH          1    120000     6.84   15000  17.13    0.09    0.08    0.12      0.15    6.79               28.0      9230.8
# flush producers messages seconds msgs/s MiB/s p50_ms p90_ms p99_ms p99.9_ms max_ms
ASYNC_FLUSH          1    120000     6.84   16000  17.13    0.08    0.08    0.11      0.15    6.79
# ASYNC_FLUSH        1    120000     6.84    1000  17.13    0.08    0.08    0.11      0.15    6.79
drain (ASYNC): one consumer read 484000 messages of 1024 B in 1.55 s, 312139 msgs/s; broker CPU 2.5 µs a message pulled
drain (SYNC): one consumer read 484000 messages of 1024 B in 1.44 s, 336681 msgs/s; broker CPU 3.0 µs a message pulled
drain (ASYNC): one consumer read 484000 messages of 1024 B in 1.55 s, 312139 msgs/s; broker CPU 2.9 µs a message pulled
drain (ASYNC): in process, broker CPU - µs a message pulled
";

    #[test]
    fn runs_are_read_by_their_header_and_summed_up_by_medians() {
        let runs = parse(RUNS).unwrap();
        assert_eq!((runs.body_bytes, runs.rows.len()), (Some(1024), 7));
        assert_eq!(runs.drain_cpu_us, [2.5, 3.0, 2.9], "a drain without the broker's CPU is left out");
        assert_eq!(runs.rows[6].cpu_us, None, "a table without the column");
        let m = medians(&runs.rows);
        assert_eq!(m.iter().map(|m| (m.flush, m.producers)).collect::<Vec<_>>(), [
            (FlushMode::Async, 1),
            (FlushMode::Async, 16),
            (FlushMode::Sync, 1),
            (FlushMode::Sync, 16),
            (FlushMode::Sync, 256)
        ]);
        // Three 1-producer ASYNC rows: each figure's own median; the CPU
        // of the two that have it, averaged.
        assert_eq!((m[0].msgs_per_s, m[0].p50_ms, m[0].p99_ms, m[0].cpu_us), (16000.0, 0.08, 0.11, Some(27.0)));
    }

    #[test]
    fn bad_benchmark_output_is_refused_with_its_line() {
        assert!(parse("nothing here\n").unwrap_err().contains("no benchmark rows"));
        assert!(parse("ASYNC_FLUSH 1 2 3\n").unwrap_err().contains("line 1: a row before any header"));
        let bad = "flush producers msgs/s p50_ms p99_ms\nSYNC_FLUSH 4 fast 0.1 0.2\n";
        assert!(parse(bad).unwrap_err().contains("line 2: msgs/s is \"fast\""), "{:?}", parse(bad));
        assert!(parse("flush producers msgs/s p50_ms\nSYNC_FLUSH 4 10 0.1\n").unwrap_err().contains("line 2: no p99_ms"));
    }

    /// Each value from the figures it is documented to come from.
    #[test]
    fn the_fit_solves_for_each_value_from_its_runs() {
        let runs = parse(RUNS).unwrap();
        let base = Cost { per_kib_us: 1.0, worker_late_share: 0.25, ..Cost::default() };
        let fit = fit(&runs, &base).unwrap();
        let c = &fit.cost;
        // 84,000 msgs/s at 12 µs: 1.01 cores; 12 µs less 1 for the KiB.
        assert_eq!((c.broker_workers, c.send_us), (1, 11.0));
        // Through (1/6, 29) and (1/42, 15): slope 98, intercept 12.67.
        assert_eq!((c.flush_us, c.sync_send_us), (98.0, 0.667));
        // 1/16,000 s = 62.5 µs a round trip, less 12, halved: 25.25; for
        // a p99 of 110 µs, ±(110 - 12 - 50.5) / (50.5 * 0.859) = ±100%.
        assert_eq!(c.link_latency_ms, [0.0, 0.0505]);
        // For a p99 of 90 µs: ±(90 - 12 - 50.5) / 43.36 = ±63.4%.
        let mut tighter = runs.clone();
        tighter.rows.iter_mut().filter(|r| r.flush == FlushMode::Async && r.producers == 1).for_each(|r| r.p99_ms = 0.09);
        assert_eq!(super::fit(&tighter, &base).unwrap().cost.link_latency_ms, [0.00924, 0.0413]);
        // Drains at 2.5, 3.0 and 2.9 µs a message: (2.9 - 1) * 32.
        assert_eq!(c.pull_us, 60.8);
        // 1/4,500 s = 222.2 µs less 62.5 less 98.67: 61.1 µs;
        // 330 - 110 - 98.67 = 121.3.
        assert_eq!(c.fsync_ms, [0.0611, 0.121]);
        assert_eq!(c.worker_late_share, 0.25, "the tail is the base's");
        assert_eq!(fit.derivation.len(), 6);
        let block = cost_block(c);
        assert!(block.contains("flush_us = 98.0\n") && block.contains("fsync_ms = [0.0611, 0.121]"), "{block}");
    }

    #[test]
    fn a_fit_without_the_runs_it_needs_says_which() {
        let runs = parse(RUNS).unwrap();
        let only_async = Runs { rows: runs.rows.iter().filter(|m| m.flush == FlushMode::Async).cloned().collect(), ..runs.clone() };
        assert!(fit(&only_async, &Cost::default()).unwrap_err().contains("no SYNC_FLUSH row with 1 producer"));
        let one_sync = Runs { rows: runs.rows.iter().filter(|m| m.producers != 256).cloned().collect(), ..runs.clone() };
        assert!(fit(&one_sync, &Cost::default()).unwrap_err().contains("two SYNC_FLUSH rows at 16 producers or more"));
    }

    #[test]
    fn the_comparison_holds_the_model_to_throughput_and_p99() {
        let real = parse(RUNS).unwrap().rows[1].clone();
        let row = Compared { real, msgs_per_s: 105_000.0, p50_ms: 0.2, p99_ms: 0.5 };
        assert!((row.worst() - 0.25).abs() < 1e-9, "throughput +25%, p99 -12%");
        let table = table(&[row]);
        assert!(table.contains("| ASYNC_FLUSH | 16 | 84000 | 105000 | +25% | 0.570 | 0.500 | -12% | 0.170 | 0.200 |"), "{table}");
    }
}
