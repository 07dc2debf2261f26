//! `memory-bench`: the broker's memory under an overload of sends and
//! under a large backlog, with the `namesrv` and `broker` binaries beside
//! this one run as processes (their resident set read from `/proc`).
//!
//! - **Overload.** The broker runs capped at a share of one core (a cgroup
//!   v1 CPU quota, `--broker-cpu-percent`), so that this machine's load
//!   generator can offer it many times what it serves. Its capacity is
//!   measured first: `--producers` producers sending one message after
//!   another. Then sends are offered open-loop at `--overload` times that
//!   rate for `--overload-s` seconds, each a single attempt with the
//!   producer's 3 s timeout, and every outcome is counted: stored, refused
//!   busy (SYSTEM_BUSY: the send queue's bound), timed out, other. The
//!   broker's resident set is sampled every 250 ms.
//! - **Backlog.** A fresh, uncapped broker stores `--backlog` messages
//!   (batches of 64 from `--producers` producers); then one push consumer
//!   reads them all from the first offset. The resident set is sampled
//!   through both.
//!
//! Bounded means: the resident set levels off while the overload goes on,
//! and does not grow with the number of messages stored or read.

mod common;
#[path = "common/cluster.rs"]
mod cluster;

use anyhow::{anyhow, bail, Context};
use broker::client::{Admin, ClientConfig, ClientInstance, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::{ConsumeFrom, Refused};
use broker::Error;
use broker::model::{Message, MessageExt, TopicConfig};
use broker::server::FlushMode;
use clap::Parser;
use cluster::Cluster;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Measures the broker's memory under an overload of sends and under a backlog.
#[derive(Parser, Debug)]
#[command(name = "memory-bench", version)]
struct Args {
    /// Producers (each its own client and connection).
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Body size of every message.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// The broker's CPU during the overload, in percent of one core (a
    /// cgroup v1 CPU quota; 0 runs it uncapped).
    #[arg(long, default_value_t = 10)]
    broker_cpu_percent: u32,
    /// Seconds the capacity is measured for.
    #[arg(long, default_value_t = 5)]
    capacity_s: u64,
    /// Offered load as a multiple of the measured capacity.
    #[arg(long, default_value_t = 10.0)]
    overload: f64,
    /// Seconds the overload lasts (0 skips it).
    #[arg(long, default_value_t = 20)]
    overload_s: u64,
    /// Messages of the backlog (0 skips it).
    #[arg(long, default_value_t = 10_000_000)]
    backlog: u64,
}

fn main() {
    let args = Args::parse();
    common::init_logging("error");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(&args)) {
        eprintln!("memory-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    if args.producers == 0 || args.body_bytes == 0 || args.overload <= 0.0 {
        bail!("--producers, --body-bytes and --overload must be positive");
    }
    if args.overload_s > 0 {
        overload(args).await?;
    }
    if args.backlog > 0 {
        backlog(args).await?;
    }
    Ok(())
}

/// The broker's resident set, sampled until dropped.
struct Sampler {
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(cluster: &Cluster) -> anyhow::Result<Sampler> {
        let pid = cluster.broker_pid().context("no broker process")?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                loop {
                    if let Some(kib) = rss_kib(pid) {
                        samples.lock().unwrap().push((start.elapsed().as_secs_f64(), kib));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Ok(Sampler { samples, task })
    }

    /// The samples so far: (seconds since start, KiB).
    fn samples(&self) -> Vec<(f64, u64)> {
        self.samples.lock().unwrap().clone()
    }

    /// The largest sample from `from_s` on, in MiB.
    fn peak_mib(&self, from_s: f64) -> f64 {
        self.samples().iter().filter(|(t, _)| *t >= from_s).map(|&(_, k)| k).max().unwrap_or(0) as f64 / 1024.0
    }

    /// The last sample at or before `at_s`, in MiB.
    fn at_mib(&self, at_s: f64) -> f64 {
        self.samples().iter().take_while(|(t, _)| *t <= at_s).last().map_or(0, |&(_, k)| k) as f64 / 1024.0
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// A cgroup v1 CPU quota on one process, taken off when dropped.
struct CpuCap {
    dir: std::path::PathBuf,
    pid: u32,
}

impl CpuCap {
    fn apply(pid: u32, percent: u32) -> anyhow::Result<CpuCap> {
        let root = std::path::Path::new("/sys/fs/cgroup/cpu");
        let dir = root.join(format!("mqsim-memory-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("making {} (needs root and cgroup v1's cpu controller; --broker-cpu-percent 0 runs uncapped)", dir.display()))?;
        let cap = CpuCap { dir, pid };
        std::fs::write(cap.dir.join("cpu.cfs_period_us"), "100000").context("setting the period")?;
        std::fs::write(cap.dir.join("cpu.cfs_quota_us"), (percent as u64 * 1_000).to_string()).context("setting the quota")?;
        std::fs::write(cap.dir.join("cgroup.procs"), pid.to_string()).context("moving the broker into the cgroup")?;
        Ok(cap)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/fs/cgroup/cpu/cgroup.procs", self.pid.to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

async fn producers(namesrv: &str, n: usize, name: &str) -> anyhow::Result<Vec<Producer>> {
    (0..n)
        .map(|i| {
            let client = ClientInstance::new(ClientConfig::new(vec![namesrv.to_string()], format!("{name}-{i}")), Clock::new());
            // One attempt a send: every outcome is counted as the broker gave it.
            let config = ProducerConfig { retries: 0, ..ProducerConfig::new(format!("{name}-group")) };
            Producer::new(client, config).map_err(|e| anyhow!("producer: {e}"))
        })
        .collect()
}

async fn create_topic(namesrv: &str) -> anyhow::Result<Admin> {
    let admin = Admin::new(ClientInstance::new(ClientConfig::new(vec![namesrv.to_string()], "memory-bench-admin"), Clock::new()));
    admin.create_topic(TopicConfig::new("memory", 8), None).await.map_err(|e| anyhow!("creating topic memory: {e}"))?;
    Ok(admin)
}

#[derive(Default)]
struct Outcomes {
    stored: AtomicU64,
    busy: AtomicU64,
    timed_out: AtomicU64,
    other: AtomicU64,
    /// The other errors by kind (their message up to the first digit), counted.
    other_kinds: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Outcomes {
    fn count(&self, result: &Result<broker::command::SendResult, Error>) {
        let counter = match result {
            Ok(_) => &self.stored,
            Err(Error::Refused(refusal)) if refusal.kind == Refused::Busy => &self.busy,
            Err(Error::Timeout(_)) => &self.timed_out,
            Err(e) => {
                let kind: String = e.to_string().chars().take_while(|c| !c.is_ascii_digit()).collect();
                *self.other_kinds.lock().unwrap().entry(kind.trim_end().to_string()).or_default() += 1;
                &self.other
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The other errors, most frequent first.
    fn other_kinds(&self) -> String {
        let mut kinds: Vec<(String, u64)> = self.other_kinds.lock().unwrap().clone().into_iter().collect();
        kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        kinds.iter().take(3).map(|(k, n)| format!("{n} \"{k}...\"")).collect::<Vec<_>>().join(", ")
    }

    fn get(&self) -> [u64; 4] {
        [&self.stored, &self.busy, &self.timed_out, &self.other].map(|c| c.load(Ordering::Relaxed))
    }
}

async fn overload(args: &Args) -> anyhow::Result<()> {
    let cluster = Cluster::spawn(FlushMode::Async, "")?;
    let admin = create_topic(&cluster.namesrv).await?;
    let producers = producers(&cluster.namesrv, args.producers, "overload").await?;
    let body = vec![b'm'; args.body_bytes];
    let pid = cluster.broker_pid().context("no broker process")?;
    let cap = match args.broker_cpu_percent {
        0 => None,
        percent => Some(CpuCap::apply(pid, percent)?),
    };
    let sampler = Sampler::start(&cluster)?;

    // Capacity: each producer sends one message after another.
    let outcomes = Arc::new(Outcomes::default());
    let until = Instant::now() + Duration::from_secs(args.capacity_s);
    let tasks: Vec<_> = producers
        .iter()
        .map(|p| {
            let (p, body, outcomes) = (p.clone(), body.clone(), outcomes.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    outcomes.count(&p.send(Message::new("memory", body.clone())).await);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let [stored, ..] = outcomes.get();
    let capacity = stored as f64 / args.capacity_s as f64;
    if capacity < 1.0 {
        bail!("the broker stored {stored} messages in {} s: no capacity to overload", args.capacity_s);
    }
    let capped = match args.broker_cpu_percent {
        0 => "uncapped".to_string(),
        p => format!("capped at {p}% of a core"),
    };
    println!("capacity: {} producers sending one after another, broker {capped}: {capacity:.0} sends/s", args.producers);

    // Overload: offered open-loop at `overload` times the capacity.
    let rate = capacity * args.overload;
    let outcomes = Arc::new(Outcomes::default());
    let offered = Arc::new(AtomicU64::new(0));
    let start_s = sampler.samples().last().map_or(0.0, |s| s.0);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut owed = 0.0;
    let mut next = 0usize;
    let mut running = Vec::new();
    while started.elapsed() < Duration::from_secs(args.overload_s) {
        tick.tick().await;
        owed += rate / 100.0;
        while owed >= 1.0 {
            owed -= 1.0;
            let (p, body, outcomes) = (producers[next % producers.len()].clone(), body.clone(), outcomes.clone());
            next += 1;
            offered.fetch_add(1, Ordering::Relaxed);
            running.push(tokio::spawn(async move { outcomes.count(&p.send(Message::new("memory", body)).await) }));
        }
        running.retain(|t: &tokio::task::JoinHandle<()>| !t.is_finished());
    }
    let offered_s = started.elapsed().as_secs_f64();
    for t in running {
        let _ = t.await;
    }
    let [stored, busy, timed_out, other] = outcomes.get();
    let end_s = start_s + offered_s;
    let offered = offered.load(Ordering::Relaxed);
    println!(
        "overload: offered {:.0} sends/s ({:.1}x the capacity) for {offered_s:.0} s, {offered} sends: stored {stored} ({:.0}/s), refused busy {busy}, timed out {timed_out}, other errors {other}",
        offered as f64 / offered_s,
        offered as f64 / offered_s / capacity,
        stored as f64 / offered_s,
    );
    if other > 0 {
        println!("overload: other errors: {}", outcomes.other_kinds());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let steps: Vec<String> = (0..=4).map(|i| start_s + offered_s * i as f64 / 4.0).map(|t| format!("{:.0} s {:.1}", t - start_s, sampler.at_mib(t))).collect();
    println!(
        "overload: broker RSS MiB before {:.1}; during: {}; peak {:.1}; 3 s after {:.1}",
        sampler.at_mib(start_s),
        steps.join(", "),
        sampler.peak_mib(start_s),
        sampler.at_mib(end_s + 3.0),
    );
    drop(cap);
    let info = admin.broker_status(&admin.cluster().await.map_err(|e| anyhow!("{e}"))?[0].addr).await.map_err(|e| anyhow!("runtime figures: {e}"))?;
    println!("overload: the broker counted {} sends refused busy and stored {} messages", info.send_busy, info.put_count);
    Ok(())
}

async fn backlog(args: &Args) -> anyhow::Result<()> {
    const BATCH: u64 = 64;
    let cluster = Cluster::spawn(FlushMode::Async, "")?;
    create_topic(&cluster.namesrv).await?;
    let producers = producers(&cluster.namesrv, args.producers, "backlog").await?;
    let sampler = Sampler::start(&cluster)?;
    let body = vec![b'b'; args.body_bytes];
    let batches = args.backlog.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = producers
        .iter()
        .map(|p| {
            let (p, body, next, total) = (p.clone(), body.clone(), next.clone(), args.backlog);
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let n = BATCH.min(total - b * BATCH);
                    let msgs: Vec<Message> = (0..n).map(|_| Message::new("memory", body.clone())).collect();
                    // A busy broker is tried again: the backlog is whole.
                    let mut tries = 0;
                    while let Err(e) = p.send_batch(msgs.clone()).await {
                        tries += 1;
                        if tries > 20 {
                            return Err(anyhow!("a batch failed 20 times: {e}"));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let fill_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let filled_at = sampler.samples().last().map_or(0.0, |s| s.0);
    println!(
        "backlog: {} messages of {} B stored in {fill_s:.0} s ({:.0}/s, batches of {BATCH}); broker RSS MiB at 25% {:.1}, 50% {:.1}, 75% {:.1}, stored {:.1}; peak {:.1}",
        args.backlog,
        args.body_bytes,
        args.backlog as f64 / fill_s,
        sampler.at_mib(fill_s * 0.25),
        sampler.at_mib(fill_s * 0.5),
        sampler.at_mib(fill_s * 0.75),
        sampler.at_mib(filled_at),
        sampler.peak_mib(0.0),
    );

    // One consumer reads the whole backlog from the first offset.
    let read = Arc::new(AtomicU64::new(0));
    let mut config = PushConsumerConfig::new("memory-readers", "memory", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.pull_batch = 32;
    config.consume_batch = 32;
    let listener = {
        let read = read.clone();
        move |msgs: &[MessageExt], _: &broker::client::ConsumeContext| {
            read.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            ConsumeResult::Success
        }
    };
    let client = ClientInstance::new(ClientConfig::new(vec![cluster.namesrv.clone()], "memory-reader"), Clock::new());
    let started = Instant::now();
    let consumer = PushConsumer::start(client, config, listener).map_err(|e| anyhow!("consumer: {e}"))?;
    let read_from = filled_at + 2.0;
    let mut last = (Instant::now(), 0);
    while read.load(Ordering::Relaxed) < args.backlog {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read.load(Ordering::Relaxed);
        if now > last.1 {
            last = (Instant::now(), now);
        } else if last.0.elapsed() > Duration::from_secs(30) {
            bail!("the consumer read {now} of {} and then nothing for 30 s", args.backlog);
        }
    }
    let read_s = started.elapsed().as_secs_f64();
    consumer.shutdown().await;
    println!(
        "backlog: one consumer read all {} in {read_s:.0} s ({:.0}/s); broker RSS MiB while reading: at 50% {:.1}, at the end {:.1}, peak {:.1}",
        args.backlog,
        args.backlog as f64 / read_s,
        sampler.at_mib(read_from + read_s * 0.5),
        sampler.at_mib(read_from + read_s),
        sampler.peak_mib(read_from),
    );
    Ok(())
}
