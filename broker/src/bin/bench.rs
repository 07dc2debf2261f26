//! `bench`: send throughput and latency of a real broker on loopback.
//!
//! Three set-ups, each over real TCP and real files:
//! - in-process (the default): a name server and a broker (FsDisk in a
//!   temporary directory) on ephemeral ports in this process, a fresh pair
//!   per flush mode in a fresh tokio runtime, so nothing of one mode's run
//!   survives into the next;
//! - `--processes`: the `namesrv` and `broker` binaries beside this one as
//!   separate processes, a fresh pair (and store) per flush mode, so the
//!   load generator shares no runtime with the broker;
//! - `--namesrv ADDR`: an already-running cluster; `--flush` then names the
//!   one flush mode it runs, for the table.
//!
//! For each
//! producer count `P`, `P` concurrent tasks each own a `Producer` on its own
//! client instance (so its own connection), like `P` producer processes, and
//! send synchronously one message after another; every send's latency goes
//! into an HDR histogram in microseconds. Any send error, or a send that is
//! not SEND_OK, ends the run with exit status 1.
//!
//! With `--processes` each row also gives the broker's CPU per message (its
//! user and system time over the row, from `/proc`), what the simulation's
//! cost model is calibrated on. Every row gives the messages per commit
//! log fsync (the broker's runtime figures before and after it): under
//! SYNC_FLUSH, how many sends a flush covers. `--drain` then has one push
//! consumer read every message the rows stored, from the first offset, and
//! reports its rate and (with `--processes`) the broker's CPU per message
//! pulled.

mod common;
#[path = "common/cluster.rs"]
mod cluster;

use anyhow::{anyhow, bail, Context};
use broker::client::{Admin, ClientConfig, ClientInstance, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::model::{Message, TopicConfig};
use broker::command::ConsumeFrom;
use broker::namesrv::{NameServer, NameServerConfig};
use broker::server::{Broker, BrokerConfig, FlushMode};
use broker::store::FsDisk;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Instant;

/// Measures send throughput and latency of an in-process broker over loopback TCP.
#[derive(Parser, Debug)]
#[command(name = "bench", version)]
struct Args {
    /// Measured messages per row (split among the producers).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Unmeasured messages sent first in each row.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Producer counts, one row each.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    producers: Vec<usize>,
    /// Body size of every message.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Flush modes, one fresh broker each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "async,sync")]
    flush: Vec<Flush>,
    /// Queues of the benchmark topic.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Tokio worker threads (default: the machine's cores).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Run the name server and broker as separate processes (the `namesrv`
    /// and `broker` binaries beside this one), a fresh pair per flush mode.
    #[arg(long, conflicts_with = "namesrv")]
    processes: bool,
    /// Drive an already-running cluster through this name server; `--flush`
    /// then names the one flush mode the cluster runs.
    #[arg(long, value_name = "ADDR")]
    namesrv: Option<String>,
    /// After each flush mode's rows, one push consumer reads back every
    /// message they stored (batches of 32 per pull) and the drain is timed.
    #[arg(long, conflicts_with = "namesrv")]
    drain: bool,
}

/// A flush mode on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flush {
    /// ASYNC_FLUSH: acknowledge after the write.
    Async,
    /// SYNC_FLUSH: acknowledge after the fsync.
    Sync,
}

impl Flush {
    fn mode(self) -> FlushMode {
        match self {
            Flush::Async => FlushMode::Async,
            Flush::Sync => FlushMode::Sync,
        }
    }

    fn short(self) -> &'static str {
        match self {
            Flush::Async => "ASYNC",
            Flush::Sync => "SYNC",
        }
    }
}

/// One measured row.
struct Row {
    flush: Flush,
    producers: usize,
    messages: u64,
    seconds: f64,
    latency_us: Histogram<u64>,
    /// The broker's CPU seconds over the row, when its process is known.
    broker_cpu_s: Option<f64>,
    /// Commit log fsyncs over the row, all brokers, when they answered.
    flushes: Option<u64>,
}

impl Row {
    fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
}

/// A drain: one consumer reading back what the rows stored.
struct Drain {
    flush: Flush,
    messages: u64,
    seconds: f64,
    broker_cpu_s: Option<f64>,
}

/// The broker's CPU seconds so far (user and system, all threads), when
/// its process is known.
type CpuProbe<'a> = &'a dyn Fn() -> Option<f64>;

/// The broker's CPU seconds since the probe read `before`.
fn cpu_since(cpu: CpuProbe<'_>, before: Option<f64>) -> Option<f64> {
    before.zip(cpu()).map(|(before, after)| after - before)
}

fn main() {
    let args = Args::parse();
    common::init_logging("warn");
    if let Err(e) = run(&args) {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.producers.is_empty() || args.producers.contains(&0) {
        bail!("--producers needs positive counts");
    }
    if args.messages == 0 {
        bail!("--messages must be positive");
    }
    if args.namesrv.is_some() && args.flush.len() != 1 {
        bail!("with --namesrv, --flush names the one flush mode the cluster runs (async or sync)");
    }
    let threads = args.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let setup = match (&args.namesrv, args.processes) {
        (Some(addr), _) => format!("an already-running cluster (name server {addr})"),
        (None, true) => "namesrv and broker as separate processes, a fresh pair per flush mode".to_string(),
        (None, false) => "name server and broker in this process, a fresh pair per flush mode".to_string(),
    };
    println!(
        "bench: {setup}; {} measured + {} warmup messages per row, {} B bodies, {} queues, {threads} worker threads; \
         each producer is a task with its own Producer and connection, sending synchronously",
        args.messages, args.warmup, args.body_bytes, args.queues
    );
    let mut rows = Vec::new();
    let mut drains = Vec::new();
    for &flush in &args.flush {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .context("building the tokio runtime")?;
        let no_probe = || None;
        let measured = match (&args.namesrv, args.processes) {
            (Some(addr), _) => runtime.block_on(measure(args, flush, addr.clone(), &no_probe)),
            (None, true) => {
                let cluster = cluster::Cluster::spawn(flush.mode(), "")?;
                let probe = || cluster.broker_cpu_s();
                let rows = runtime.block_on(measure(args, flush, cluster.namesrv.clone(), &probe));
                drop(cluster);
                rows
            }
            (None, false) => runtime.block_on(async {
                let (namesrv, _dir) = in_process(flush).await?;
                measure(args, flush, namesrv, &no_probe).await
            }),
        };
        let (measured, drain) = measured?;
        rows.extend(measured);
        drains.extend(drain);
        // Dropping the runtime stops this mode's tasks before the next one.
    }
    print_table(&rows, args.body_bytes);
    println!();
    print_ratios(&rows, args);
    print_drains(&drains, args.body_bytes);
    Ok(())
}

/// A fresh name server and broker with `flush` in this process; the name
/// server's address, and the store directory to keep until the run ends.
async fn in_process(flush: Flush) -> anyhow::Result<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().context("making the store directory")?;
    let ns_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the name server")?;
    let ns_addr = ns_listener.local_addr()?.to_string();
    tokio::spawn(NameServer::new(NameServerConfig::default(), Clock::new()).serve(ns_listener));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the broker")?;
    let addr = listener.local_addr()?.to_string();
    let mut config = BrokerConfig::new("bench-broker", addr);
    config.namesrv_addrs = vec![ns_addr.clone()];
    config.flush = flush.mode();
    let disk = FsDisk::new(dir.path()).context("opening the store directory")?;
    let broker = Broker::open(config, Arc::new(disk), Clock::new()).context("opening the broker")?;
    let _ = broker.register_all().await;
    tokio::spawn(broker.serve(listener));
    Ok((ns_addr, dir))
}

/// Creates the benchmark topic through `ns_addr`, then one row per
/// producer count, and with `--drain` reads every stored message back.
async fn measure(args: &Args, flush: Flush, ns_addr: String, cpu: CpuProbe<'_>) -> anyhow::Result<(Vec<Row>, Option<Drain>)> {
    let admin = Admin::new(ClientInstance::new(ClientConfig::new(vec![ns_addr.clone()], "bench-admin"), Clock::new()));
    admin.create_topic(TopicConfig::new("bench", args.queues), None).await.map_err(|e| anyhow!("creating topic bench: {e}"))?;

    let mut rows = Vec::new();
    let mut stored = 0;
    for &producers in &args.producers {
        let clients: Vec<Producer> = (0..producers)
            .map(|k| {
                let client_id = format!("bench-{}-{producers}-{k}", flush.short());
                let client = ClientInstance::new(ClientConfig::new(vec![ns_addr.clone()], client_id), Clock::new());
                Producer::new(client, ProducerConfig::new("bench-producers"))
            })
            .collect::<broker::Result<_>>()?;
        let body = vec![b'x'; args.body_bytes];
        round(&clients, &body, args.warmup).await.context("warmup")?;
        let flushes_before = flush_count(&admin).await;
        let (cpu_before, start) = (cpu(), Instant::now());
        let latency_us = round(&clients, &body, args.messages).await?;
        let seconds = start.elapsed().as_secs_f64();
        let broker_cpu_s = cpu_since(cpu, cpu_before);
        let flushes = flushes_before.zip(flush_count(&admin).await).map(|(before, after)| after.saturating_sub(before));
        stored += args.warmup + args.messages;
        eprintln!("bench: {} x{producers}: {} messages in {seconds:.2} s", flush.short(), args.messages);
        rows.push(Row { flush, producers, messages: args.messages, seconds, latency_us, broker_cpu_s, flushes });
    }
    let drain = if args.drain { Some(drain(flush, &ns_addr, stored, cpu).await?) } else { None };
    Ok((rows, drain))
}

/// Commit log fsyncs so far, summed over the cluster's brokers; `None`
/// when one does not answer (the column then says "-").
async fn flush_count(admin: &Admin) -> Option<u64> {
    let mut total = 0;
    for broker in admin.cluster().await.ok()? {
        total += admin.runtime(&broker.addr).await.ok()?.flush_count;
    }
    Some(total)
}

/// One push consumer of a new group, from the first offset, reads the
/// `stored` messages back; timed from its start to the last one.
async fn drain(flush: Flush, ns_addr: &str, stored: u64, cpu: CpuProbe<'_>) -> anyhow::Result<Drain> {
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (counter, all_read) = (read.clone(), done.clone());
    let listener = move |msgs: &[broker::model::MessageExt], _: &broker::client::ConsumeContext| {
        let n = msgs.len() as u64;
        if counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n >= stored {
            all_read.notify_one();
        }
        ConsumeResult::Success
    };
    let mut config = PushConsumerConfig::new(format!("bench-drain-{}", flush.short()), "bench", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    let client = ClientInstance::new(ClientConfig::new(vec![ns_addr.to_string()], format!("bench-drain-{}", flush.short())), Clock::new());
    let (cpu_before, start) = (cpu(), Instant::now());
    let consumer = PushConsumer::start(client, config, listener).map_err(|e| anyhow!("starting the drain's consumer: {e}"))?;
    let finished = tokio::time::timeout(std::time::Duration::from_secs(600), done.notified()).await;
    let seconds = start.elapsed().as_secs_f64();
    let broker_cpu_s = cpu_since(cpu, cpu_before);
    consumer.shutdown().await;
    let messages = read.load(std::sync::atomic::Ordering::Relaxed);
    if finished.is_err() {
        bail!("the drain read {messages} of {stored} messages in 600 s");
    }
    eprintln!("bench: {} drain: {messages} messages in {seconds:.2} s", flush.short());
    Ok(Drain { flush, messages, seconds, broker_cpu_s })
}

/// Sends `messages` split among the producers, concurrently; returns the
/// merged latency histogram.
async fn round(producers: &[Producer], body: &[u8], messages: u64) -> anyhow::Result<Histogram<u64>> {
    let n = producers.len() as u64;
    let tasks: Vec<_> = producers
        .iter()
        .enumerate()
        .map(|(k, producer)| {
            let count = messages / n + u64::from((k as u64) < messages % n);
            let (producer, body) = (producer.clone(), body.to_vec());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
                for _ in 0..count {
                    let sent = Instant::now();
                    let result = producer.send(Message::new("bench", body.clone())).await.map_err(|e| anyhow!("send failed: {e}"))?;
                    if !result.is_ok() {
                        bail!("send stored but not SEND_OK: {:?}", result.status);
                    }
                    hist.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                }
                Ok(hist)
            })
        })
        .collect();
    let mut total = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
    for task in tasks {
        let hist = task.await.context("sender task panicked")??;
        total.add(&hist).context("merging histograms")?;
    }
    Ok(total)
}

/// Milliseconds to the µs, as the histogram holds them: a loopback round
/// trip is tens of µs.
fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn print_table(rows: &[Row], body_bytes: usize) {
    let header = ["flush", "producers", "messages", "seconds", "msgs/s", "MiB/s", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms", "broker_cpu_us/msg", "msgs/flush"];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let h = &r.latency_us;
        lines.push(vec![
            r.flush.mode().rocketmq_name().to_string(),
            r.producers.to_string(),
            r.messages.to_string(),
            format!("{:.2}", r.seconds),
            format!("{:.0}", r.msgs_per_s()),
            format!("{:.2}", r.msgs_per_s() * body_bytes as f64 / (1024.0 * 1024.0)),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            cpu_per_message(r.broker_cpu_s, r.messages),
            // No fsync in the row (or no answer): no ratio to give.
            r.flushes.filter(|&f| f > 0).map_or("-".to_string(), |f| format!("{:.1}", r.messages as f64 / f as f64)),
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
    for line in &lines {
        // Text left-aligned, numbers right-aligned.
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| if c == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        println!("{}", cells.join("  "));
    }
}

/// CPU µs per message, or "-" unknown.
fn cpu_per_message(cpu_s: Option<f64>, messages: u64) -> String {
    cpu_s.map_or("-".to_string(), |s| format!("{:.1}", s * 1e6 / messages.max(1) as f64))
}

/// Each drain's rate and the broker's CPU per message pulled.
fn print_drains(drains: &[Drain], body_bytes: usize) {
    for d in drains {
        println!(
            "drain ({}): one consumer read {} messages of {body_bytes} B in {:.2} s, {:.0} msgs/s; broker CPU {} µs a message pulled",
            d.flush.short(),
            d.messages,
            d.seconds,
            d.messages as f64 / d.seconds,
            cpu_per_message(d.broker_cpu_s, d.messages),
        );
    }
}

fn print_ratios(rows: &[Row], args: &Args) {
    let find = |flush: Flush, producers: usize| rows.iter().find(|r| r.flush == flush && r.producers == producers);
    for &p in &args.producers {
        if let (Some(sync), Some(asynch)) = (find(Flush::Sync, p), find(Flush::Async, p)) {
            println!("SYNC/ASYNC throughput at {p} producers: {:.2}x", sync.msgs_per_s() / asynch.msgs_per_s());
        }
    }
    if let (Some(&first), Some(&last)) = (args.producers.first(), args.producers.last()) {
        if first != last {
            for &flush in &args.flush {
                if let (Some(a), Some(b)) = (find(flush, first), find(flush, last)) {
                    println!("{last}/{first} producers throughput ({}): {:.1}x", flush.short(), b.msgs_per_s() / a.msgs_per_s());
                }
            }
        }
    }
}
