//! Simulation tests: the real broker under madsim. Run with `cargo xtask test`
//! (they need `--cfg madsim`; in a plain build this file is empty).
#![cfg(madsim)]

use broker::client::{ClientConfig, ClientInstance, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::model::{Message, MessageExt, TopicConfig};
use broker::namesrv::{NameServer, NameServerConfig};
use broker::command::{ConsumeFrom, CreateTopic};
use broker::server::{Broker, BrokerConfig, FlushMode};
use broker::store::MemDisk;
use madsim::runtime::Handle;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAMESRV: &str = "10.0.0.1:9876";

fn broker_node(handle: &Handle, name: &'static str, ip: [u8; 4], disk: MemDisk) -> madsim::task::NodeId {
    let ip = IpAddr::V4(Ipv4Addr::from(ip));
    handle
        .create_node()
        .name(name)
        .ip(ip)
        .init(move || {
            let disk = disk.clone();
            async move {
                let addr = SocketAddr::new(ip, 10911);
                let mut config = BrokerConfig::new(name, addr.to_string());
                config.namesrv_addrs = vec![NAMESRV.to_string()];
                config.flush = FlushMode::Sync;
                let broker = Broker::open(config, Arc::new(disk), Clock::new()).expect("store opens");
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                broker.serve(listener).await.unwrap();
            }
        })
        .build()
        .id()
}

/// The foundation's promise under simulation: a name server, two SYNC_FLUSH
/// brokers, a producer and a consumer on simulated nodes; broker-a is killed
/// mid-stream and restarted from its disk; every acknowledged message is
/// consumed.
#[madsim::test]
async fn sync_flush_broker_killed_mid_stream_loses_no_acknowledged_message() {
    let handle = Handle::current();
    handle
        .create_node()
        .name("namesrv")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        .init(|| async {
            let listener = tokio::net::TcpListener::bind(NAMESRV).await.unwrap();
            NameServer::new(NameServerConfig::default(), Clock::new()).serve(listener).await.unwrap();
        })
        .build();
    let disk_a = MemDisk::new();
    let broker_a = broker_node(&handle, "broker-a", [10, 0, 1, 1], disk_a.clone());
    broker_node(&handle, "broker-b", [10, 0, 1, 2], MemDisk::new());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let consumed: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let client_node = handle.create_node().name("clients").ip(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1))).build();
    let (acked2, consumed2) = (acked.clone(), consumed.clone());
    let producing = client_node.spawn(async move {
        let client = ClientInstance::new(ClientConfig::new(vec![NAMESRV.into()], "client-1"), Clock::new());
        for addr in ["10.0.1.1:10911", "10.0.1.2:10911"] {
            client.call(addr, CreateTopic { config: TopicConfig::new("orders", 4) }, Duration::from_secs(3)).await.expect("topic created");
        }
        let mut config = PushConsumerConfig::new("billing", "orders", "*");
        config.consume_from = ConsumeFrom::FirstOffset;
        config.rebalance_interval_ms = 2_000;
        let _consumer = PushConsumer::start(client.clone(), config, move |msgs: &[MessageExt], _: &_| {
            consumed2.lock().unwrap().extend(msgs.iter().map(|m| m.msg_id()));
            ConsumeResult::Success
        })
        .unwrap();
        let producer = Producer::new(client, ProducerConfig::new("orders-producer")).unwrap();
        for i in 0..600 {
            let msg = Message::new("orders", format!("order {i}")).with_key(format!("k{i}"));
            if let Ok(result) = producer.send(msg).await {
                if result.is_ok() {
                    acked2.lock().unwrap().insert(result.msg_id);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::future::pending::<()>().await
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    handle.kill(broker_a);
    tokio::time::sleep(Duration::from_secs(3)).await;
    handle.restart(broker_a);
    // Sending takes about 15 s; then give the consumer time to catch up.
    tokio::time::sleep(Duration::from_secs(40)).await;
    drop(producing);
    let acked = acked.lock().unwrap().clone();
    let consumed = consumed.lock().unwrap().clone();
    assert!(acked.len() > 500, "only {} of 600 sends were acknowledged", acked.len());
    let missing: Vec<&String> = acked.difference(&consumed).collect();
    assert!(missing.is_empty(), "{} acknowledged messages never consumed, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    assert!(disk_a.paths().iter().any(|p| p.starts_with("commitlog/")), "broker-a stored nothing");
}

/// Runs `mqsim` (the binary of this build) with `args`: every seed runs in
/// its own process, as sweeps run them, because two simulations inside one
/// process do not always replay alike (std's per-thread hash keys are seeded
/// only on a thread's first runtime, madsim issue 240). Returns whether it
/// exited 0, and its standard output.
fn mqsim(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqsim")).args(args).output().expect("mqsim runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("mqsim {}\n{stdout}", args.join(" "));
    (out.status.success(), stdout)
}

/// Runs mqsim on input it must refuse: exit status 2 (bad input); its
/// standard error.
fn mqsim_refused(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqsim")).args(args).output().expect("mqsim runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "mqsim {}: {stderr}", args.join(" "));
    stderr
}

/// A count from the verdict rows `mqsim run` prints (`name=value`).
fn count(stdout: &str, name: &str) -> u64 {
    let prefix = format!("{name}=");
    stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in the output"))
}

fn assert_passes(name: &str, seed: u64) -> String {
    let (ok, stdout) = mqsim(&["run", name, "--seed", &seed.to_string()]);
    assert!(ok, "{name} seed={seed} failed; repro: {}", sim::run::repro(name, seed, &[]));
    stdout
}

#[test]
fn crash_sync_flush_scenario_loses_nothing_and_replays_byte_for_byte() {
    let digest = |seed: &str| {
        let (ok, stdout) = mqsim(&["run", "broker-crash-sync-flush", "--seed", seed, "--check-determinism"]);
        assert!(ok, "seed {seed} failed or replayed differently:\n{stdout}");
        let digest = stdout.lines().find_map(|l| l.strip_prefix("  determinism: same digest ")).expect("a determinism line");
        digest.split_whitespace().next().unwrap().to_string()
    };
    assert_ne!(digest("3"), digest("4"), "different seeds gave the same history");
}

#[test]
fn power_loss_under_sync_flush_loses_nothing() {
    assert_passes("power-loss-sync-flush", 1);
}

#[test]
fn consumers_crashing_between_effect_and_ack_double_apply_only_in_the_control_group() {
    let stdout = assert_passes("consumer-crash-rebalance", 1);
    assert_eq!(count(&stdout, "double-effect"), 0, "an idempotent group applied a key twice");
    assert!(count(&stdout, "control-double-effect") > 0, "the control group saw no redelivery: the scenario proves nothing");
}

#[test]
fn fifo_order_holds_per_sharding_key_through_a_broker_kill() {
    assert_passes("fifo-order", 1);
}

#[test]
fn partitions_between_clients_and_brokers_heal_and_deliver_everything() {
    assert_passes("partition-client-broker", 1);
}

/// Each planted bug of the checks added with integrity and the true
/// liveness deadline is caught by its own check, with a repro line.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_bugs_are_caught_by_the_check_named_for_them() {
    for (bug, scenario, seed, counter) in [
        ("ack-before-fsync", "power-loss-sync-flush", "1", "lost="),
        ("pull-drops-properties", "broker-crash-sync-flush", "1", "corrupt="),
        ("tag-filter-leak", "consumer-crash-rebalance", "1", "corrupt="),
        ("long-poll-miss", "broker-crash-sync-flush", "1", "late="),
    ] {
        let (ok, stdout) = mqsim(&["run", scenario, "--seed", seed, "--bug", bug]);
        assert!(!ok, "{bug} went unnoticed in {scenario} seed {seed}");
        let fail = stdout.lines().find(|l| l.starts_with("FAIL ")).expect("a FAIL line");
        assert!(fail.contains(&format!("repro: cargo mqsim run {scenario} --seed {seed} --bug {bug}")), "{fail}");
        let caught = fail.split_whitespace().find(|w| w.starts_with(counter)).expect("the count on the FAIL line");
        assert_ne!(caught, format!("{counter}0"), "{bug} was not caught by {counter}: {fail}");
    }
}

/// A link-latency fault slows the one link it names: producer-0's sends to
/// broker-0 take a round trip of two 300..400 ms delays while it lasts,
/// while producer-0's sends to broker-1 and producer-1's to broker-0 do
/// not slow down (simulated time: the figures are exact for the seed).
#[test]
fn a_link_latency_slows_only_its_link() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/one-slow-link.toml");
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = mqsim(&["run", scenario, "--seed", "1", "--report", dir.path().to_str().unwrap()]);
    assert!(ok, "the run failed its checks");
    let text = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    let events = checker::history::parse_jsonl(&text).unwrap();
    let invokes: std::collections::BTreeMap<u64, &checker::Event> =
        events.iter().filter(|e| e.op == checker::Op::Send && e.kind == checker::Kind::Invoke).map(|e| (e.id, e)).collect();
    let mut took: std::collections::BTreeMap<(String, String), Vec<u64>> = std::collections::BTreeMap::new();
    for done in events.iter().filter(|e| e.op == checker::Op::Send && e.kind == checker::Kind::Ok) {
        let sent = invokes[&done.of.unwrap()];
        // While the fault lasts (10 s to 30 s), less the first and last 2 s.
        if (12_000..=28_000).contains(&sent.t_ms) {
            let broker = done.queue.as_deref().unwrap().split('/').next().unwrap().to_string();
            took.entry((done.process.clone(), broker)).or_default().push(done.t_ms - sent.t_ms);
        }
    }
    let median = |process: &str, broker: &str| {
        let mut ms = took[&(process.to_string(), broker.to_string())].clone();
        ms.sort_unstable();
        ms[ms.len() / 2]
    };
    assert!(median("producer-0", "broker-0") >= 600, "the slow link: {took:?}");
    assert!(median("producer-0", "broker-1") < 100, "another link of the producer: {took:?}");
    assert!(median("producer-1", "broker-0") < 100, "another link of the broker: {took:?}");
}

/// `mqsim run` tells a safety violation, a liveness failure and a
/// determinism mismatch apart by its exit code, and names the class on the
/// FAIL line (the table in docs/testbed.md).
#[cfg(feature = "planted-bugs")]
#[test]
fn run_exits_with_a_code_per_class_of_failure() {
    for (args, code, class) in [
        (&["run", "retry-dead-letter", "--seed", "1", "--bug", "dlq-waits-level"][..], 1, "class=safety"),
        (&["run", "broker-crash-sync-flush", "--seed", "1", "--bug", "long-poll-miss"][..], 3, "class=liveness"),
        (&["run", "broker-crash-sync-flush", "--seed", "1", "--bug", "host-entropy", "--check-determinism"][..], 4, "class=nondeterministic"),
        (&["run", "broker-crash-sync-flush", "--seed", "1"][..], 0, ""),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqsim")).args(args).output().expect("mqsim runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "mqsim {}:\n{stdout}", args.join(" "));
        if code != 0 {
            let fail = stdout.lines().find(|l| l.starts_with("FAIL ")).expect("a FAIL line");
            assert!(fail.split_whitespace().any(|w| w == class), "mqsim {}: {fail}", args.join(" "));
        }
    }
}

/// `sweep --timing` splits the seeds' wall time by phase and says what the
/// simulation did per wall second, without changing a history: the
/// digests are the sweep's without it.
#[test]
fn a_timed_sweep_splits_wall_time_by_phase() {
    let dir = scratch_dir("timed-sweep");
    let (plain_json, timed_json) = (dir.join("plain.json"), dir.join("timed.json"));
    let args = ["sweep", "broker-crash-sync-flush", "--seeds", "1..3", "--jobs", "1", "--summary"];
    let (ok, plain) = mqsim(&[&args[..], &[plain_json.to_str().unwrap()]].concat());
    assert!(ok, "the sweep passes");
    let (ok, timed) = mqsim(&[&args[..], &[timed_json.to_str().unwrap(), "--timing"]].concat());
    assert!(ok, "the timed sweep passes");
    assert!(!plain.contains("timing "), "no timing line unless asked:\n{plain}");
    let line = timed.lines().find(|l| l.starts_with("timing broker-crash-sync-flush: ")).expect("a timing line");
    for part in ["setup ", "| simulation ", "| drain ", "| check ", "| digest ", "| process ", "events/s", "packets/s", "µs of wall time per packet", "µs per message moved"] {
        assert!(line.contains(part), "no {part:?} in {line}");
    }
    let figure = |after: &str| -> f64 {
        let rest = &line[line.find(after).unwrap_or_else(|| panic!("{after} in {line}")) + after.len()..];
        rest.split(|c: char| !c.is_ascii_digit() && c != '.').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("a number after {after} in {line}"))
    };
    assert!(figure("| simulation ") > 0.0, "the simulation took wall time: {line}");
    assert!(figure("while simulating: ") > 1.0, "faster than real time: {line}");
    assert!(figure("wall time per packet, ") > 0.0, "a cost per message moved: {line}");
    let digests = |path: &std::path::Path| -> Vec<String> {
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("a summary")).expect("JSON");
        summary["entries"].as_array().expect("entries").iter().map(|e| e["digest"].as_str().expect("a digest").to_string()).collect()
    };
    let (before, after) = (digests(&plain_json), digests(&timed_json));
    assert_eq!(before.len(), 2);
    assert_eq!(before, after, "timing changed a history");
}

/// The cost model bounds what a broker serves: with one worker and 10 ms a
/// send, 300 sends a second offered are acknowledged at about 100 a second;
/// two workers serve about twice that. The sweep's table names each value.
#[test]
fn a_bench_sweep_shows_the_worker_pool_bounding_throughput() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/slow-broker.toml");
    let dir = scratch_dir("bench-report");
    let report = dir.to_str().expect("a UTF-8 temporary path");
    let (ok, stdout) = mqsim(&["bench", scenario, "--sweep", "topology.cost.broker_workers=1,2", "--report", report]);
    assert!(ok, "the bench's runs pass their checks:\n{stdout}");
    let acked = |workers: &str| -> f64 {
        let row = stdout.lines().find(|l| l.starts_with(&format!("| {workers} | "))).unwrap_or_else(|| panic!("no row for {workers}"));
        row.split('|').nth(3).and_then(|c| c.trim().parse().ok()).expect("an acked/s cell")
    };
    let (one, two) = (acked("1"), acked("2"));
    assert!((85.0..=110.0).contains(&one), "one worker of 10 ms a send: {one}/s");
    assert!((170.0..=220.0).contains(&two), "two workers: {two}/s");
    let html = std::fs::read_to_string(dir.join("bench.html")).expect("bench.html written");
    assert_eq!(html.matches("<svg").count(), 2, "two charts");
    assert!(std::fs::read_to_string(dir.join("bench.md")).expect("bench.md").contains("topology.cost.broker_workers"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// madsim's clock steps at least 1 ms, so a round trip takes at least 2 ms;
/// the cost model's `clock_step_us` lowers the step (the vendored madsim's
/// settable shortest sleep), and the history's µs times then show a send of
/// a few tens of µs.
#[test]
fn a_finer_clock_step_gives_sub_millisecond_round_trips() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/fine-clock.toml");
    let (ok, stdout) = mqsim(&["bench", scenario, "--sweep", "topology.cost.clock_step_us=1000,1"]);
    assert!(ok, "the bench's runs pass their checks:\n{stdout}");
    let p50_ms = |step: &str| -> f64 {
        let row = stdout.lines().find(|l| l.starts_with(&format!("| {step} | "))).unwrap_or_else(|| panic!("no row for {step}"));
        row.split('|').nth(5).and_then(|c| c.trim().parse().ok()).expect("a send p50 cell")
    };
    let (coarse, fine) = (p50_ms("1000"), p50_ms("1"));
    assert!(coarse >= 2.0, "a 1 ms step: two deliveries of at least 1 ms, got p50 {coarse} ms");
    assert!(fine < 0.1, "a 1 µs step: 2 x 10-20 µs of links and 16 µs of work, got p50 {fine} ms");
}

/// The p99 of one seed's run line in a bench's output, ms, for `what`
/// ("send" or "end-to-end").
fn run_p99(stdout: &str, seed: u64, what: &str) -> f64 {
    let line = stdout.lines().find(|l| l.contains(&format!(", seed {seed}: "))).unwrap_or_else(|| panic!("no run of seed {seed}:\n{stdout}"));
    let p50_p99 = line.split(&format!("{what} p50/p99 ")).nth(1).and_then(|r| r.split(" ms").next()).unwrap_or_else(|| panic!("no {what} p50/p99: {line}"));
    p50_p99.split('/').nth(1).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no {what} p99: {line}"))
}

/// The send p99 and p50 of a bench table's row for `value`, ms.
fn send_p50_p99(stdout: &str, value: &str) -> (f64, f64) {
    let row = stdout.lines().find(|l| l.starts_with(&format!("| {value} | "))).unwrap_or_else(|| panic!("no row for {value}:\n{stdout}"));
    let cell = |n: usize| row.split('|').nth(n).and_then(|c| c.trim().parse().ok()).unwrap_or_else(|| panic!("no number in cell {n}: {row}"));
    (cell(5), cell(6))
}

/// Requests served out of order: eight synchronous producers queue for one
/// worker at 1 ms a send, so each send waits about 8 ms first come, first
/// served; with a share answered late by about the queue they met, the
/// p99 grows with the queue while the median does not.
#[test]
fn late_service_lengthens_the_tail_with_the_queue() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/late-service.toml");
    let (ok, stdout) = mqsim(&["bench", scenario, "--sweep", "topology.cost.worker_late_share=0,0.2"]);
    assert!(ok, "the bench's runs pass their checks:\n{stdout}");
    let (fifo_p50, fifo_p99) = send_p50_p99(&stdout, "0");
    let (late_p50, late_p99) = send_p50_p99(&stdout, "0.2");
    assert!(fifo_p99 <= fifo_p50 + 3.0, "first come, first served: p50 {fifo_p50}, p99 {fifo_p99} ms");
    assert!(late_p99 >= 2.0 * fifo_p99, "late service: p99 {late_p99} ms against {fifo_p99} in order");
    assert!(late_p50 <= fifo_p50 + 1.0, "the median stays: {late_p50} ms against {fifo_p50}");
}

/// `--seeds` runs every point once per seed and reports each figure's
/// median over them.
#[test]
fn a_bench_over_seeds_reports_each_figures_median() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/late-service.toml");
    let (ok, stdout) = mqsim(&["bench", scenario, "--seeds", "1..4", "--sweep", "topology.cost.worker_late_share=0.2"]);
    assert!(ok, "the bench's runs pass their checks:\n{stdout}");
    let mut p99s: Vec<f64> = (1..4).map(|seed| run_p99(&stdout, seed, "send")).collect();
    p99s.sort_by(f64::total_cmp);
    assert!(stdout.contains("the median of 3 seeds"), "{stdout}");
    assert_eq!(send_p50_p99(&stdout, "0.2").1, p99s[1], "the table's p99 is the middle seed's, of {p99s:?}");
}

/// Eight consumers of a group start together on eight queues. Each joins
/// the group with its heartbeat, and the broker tells the members at once
/// (RocketMQ's NOTIFY_CONSUMER_IDS_CHANGED), so they rebalance on a whole
/// membership: every queue has one reader from the start. Without the
/// notice a consumer that rebalanced on a partial membership kept its view
/// for a period (5 s): one queue went unread while others were read twice,
/// an end-to-end p99 near 3 s in three seeds of four.
#[test]
fn consumers_starting_together_take_every_queue_at_once() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/group-start.toml");
    let (ok, stdout) = mqsim(&["bench", scenario, "--seeds", "1..5"]);
    assert!(ok, "the bench's runs pass their checks:\n{stdout}");
    for seed in 1..5 {
        let p99 = run_p99(&stdout, seed, "end-to-end");
        assert!(p99 < 100.0, "seed {seed}: end-to-end p99 {p99} ms: a queue waited for a rebalance period\n{stdout}");
    }
}

/// A sweep of a field the scenario does not have is refused with its path.
#[test]
fn a_bench_sweep_of_an_unknown_field_is_refused() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/slow-broker.toml");
    let stderr = mqsim_refused(&["bench", scenario, "--sweep", "topology.brokers=1,2"]);
    assert!(stderr.contains("unknown field `brokers`"), "{stderr}");
    let stderr = mqsim_refused(&["bench", scenario, "--sweep", "workload.producers[3].rate_per_s=1"]);
    assert!(stderr.contains("has 1 items"), "{stderr}");
}

/// `calibrate` fits the cost model to five rows of a real benchmark and,
/// with `--check`, runs the model beside each: on the fitted costs every
/// row is within 25% of the real one. With a per-KiB cost that leaves the
/// send nothing of its measured CPU (a mis-set base), the model is far off
/// and the check fails naming the rows.
#[test]
fn calibrate_fits_the_model_to_real_runs_and_checks_it() {
    let runs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/calibrate-runs.txt");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/calibrate.toml");
    let (ok, stdout) = mqsim(&["calibrate", runs, "--check", scenario, "--seeds", "1..2"]);
    assert!(ok, "the fitted model is within 25%:\n{stdout}");
    // Through (1/18.6, 17.8) and (1/33.9, 15.7): 86.5 µs a flush.
    assert!(stdout.contains("[topology.cost]\nbroker_workers = 1\nsend_us = 10.8\n"), "{stdout}");
    assert!(stdout.contains("flush_us = 86.5"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("| ASYNC_FLUSH |") || l.starts_with("| SYNC_FLUSH |")).count(), 5, "{stdout}");
    assert!(stdout.contains("model within 25% of the real medians in every row"), "{stdout}");

    let mut base = std::fs::read_to_string(scenario).unwrap();
    base = base.replace("broker_workers = 1\n", "broker_workers = 1\nper_kib_us = 40.0\n");
    let dir = scratch_dir("calibrate-off");
    let off = dir.join("calibrate.toml");
    std::fs::write(&off, base).unwrap();
    let (ok, stdout) = mqsim(&["calibrate", runs, "--check", off.to_str().unwrap(), "--seeds", "1..2"]);
    assert!(!ok, "a model 4x slower fails the check:\n{stdout}");
    let verdict = stdout.lines().find(|l| l.starts_with("model beyond 25% in ")).unwrap_or_else(|| panic!("no verdict:\n{stdout}"));
    assert!(verdict.contains("ASYNC_FLUSH x16") && verdict.contains("SYNC_FLUSH x256"), "{verdict}");
}

/// What is not a benchmark's output is refused with a clear error (exit
/// status 2), as is a benchmark without the rows a fit needs.
#[test]
fn calibrate_refuses_what_it_cannot_fit() {
    let dir = scratch_dir("calibrate-refuses");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "no table here\n").unwrap();
    let stderr = mqsim_refused(&["calibrate", empty.to_str().unwrap()]);
    assert!(stderr.contains("no benchmark rows"), "{stderr}");
    let runs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/calibrate-runs.txt");
    let async_only = dir.join("async.txt");
    let text: String = std::fs::read_to_string(runs).unwrap().lines().filter(|l| !l.starts_with("SYNC")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&async_only, text).unwrap();
    let stderr = mqsim_refused(&["calibrate", async_only.to_str().unwrap()]);
    assert!(stderr.contains("no SYNC_FLUSH row with 1 producer"), "{stderr}");
}

/// A scenario whose group's SQL92 condition does not parse is refused
/// before anything runs, naming the field and the parser's reason.
#[test]
fn a_scenario_with_a_malformed_sql92_condition_is_refused() {
    let dir = scratch_dir("bad-sql");
    let catalogue = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/sql-gray-release.toml");
    let text = std::fs::read_to_string(catalogue).unwrap().replace("sql = \"ENV IS NULL OR NOT (ENV = 'gray')\"", "sql = \"ENV IS NULL OR\"");
    let file = dir.join("bad-sql.toml");
    std::fs::write(&file, text.replace("name = \"sql-gray-release\"", "name = \"bad-sql\"")).unwrap();
    let stderr = mqsim_refused(&["run", file.to_str().unwrap(), "--seed", "1"]);
    assert!(stderr.contains("workload.consumers[1].sql") && stderr.contains("expected a property or a value"), "{stderr}");
}

/// A fresh directory for a test's files, under the system's temp dir.
fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mqsim-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Thousands of sends in flight when a master dies all go to its address.
/// Each must fail within its timeout (or reach the master the controllers
/// elect about 5 s later), never wait for the dead one to return: the
/// connection pool shares a failed connect with every caller that waited
/// for it, and bounds that wait by the request's timeout. Before, each
/// waiter tried its own connect in turn, a few milliseconds each, and a
/// crowd of 20,000 was still queued when the old master came back 12 s
/// later (send p99 about 12 s).
#[test]
fn sends_caught_by_a_dead_master_do_not_wait_for_its_return() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench/failover-crowd.toml");
    let (ok, stdout) = mqsim(&["bench", scenario]);
    assert!(ok, "the run passes its checks:\n{stdout}");
    let p99 = run_p99(&stdout, 1, "send");
    assert!(p99 < 9_000.0, "send p99 {p99} ms: sends waited for the dead master's return\n{stdout}");
}
