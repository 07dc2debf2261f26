//! `store-bench`: how the store scales with the messages it holds.
//!
//! Writes `--messages` small messages (each with a business key and a
//! unique id, over `--queues` queues of one topic) into a store on real
//! files, checkpointing every `--checkpoint-every` messages as the broker's
//! checkpoint loop would, and at the end flushing without a checkpoint, as
//! a `kill -9` after the last flush leaves a store: recovery re-dispatches
//! what came after the last checkpoint. Then it opens that store
//! again in a fresh process of its own (so nothing of the writer's heap is
//! counted) and reports how long recovery took and the resident memory
//! after it, and answers a few reads: a queue's middle, a key, a unique id.
//!
//! Resident memory is Linux's `VmRSS` and `VmHWM` (its peak) from
//! `/proc/self/status`; the page cache of the files is not in it.

use anyhow::{bail, Context};
use broker::model::{Message, MessageExt, PROPERTY_UNIQ_KEY};
use broker::store::{FsDisk, MessageStore, StoreConfig};
use clap::Parser;
use std::sync::Arc;
use std::time::Instant;

const TOPIC: &str = "bench-store";
/// Distinct business keys: every key is carried by messages/KEYS messages.
const KEYS: u64 = 100_000;

#[derive(Parser, Debug)]
#[command(name = "store-bench", version)]
struct Args {
    /// Messages to store.
    #[arg(long, default_value_t = 10_000_000)]
    messages: u64,
    /// Body size of every message.
    #[arg(long, default_value_t = 100)]
    body_bytes: usize,
    /// Queues of the topic.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Messages between checkpoints.
    #[arg(long, default_value_t = 100_000)]
    checkpoint_every: u64,
    /// Store directory (default: a fresh temporary one, removed at the end).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Only open the store in `--dir` and report (what the writer runs in a
    /// child process).
    #[arg(long, hide = true)]
    reopen: bool,
}

fn main() {
    let args = Args::parse();
    let result = if args.reopen { reopen(&args) } else { run(&args) };
    if let Err(e) = result {
        eprintln!("store-bench: {e:#}");
        std::process::exit(1);
    }
}

/// The process's resident memory now and at its peak, in MiB.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn message(n: u64, queues: u32, body: &[u8]) -> MessageExt {
    MessageExt {
        message: Message::new(TOPIC, body.to_vec())
            .with_key(format!("order-{}", n % KEYS))
            .with_property(PROPERTY_UNIQ_KEY, format!("id-{n:012}")),
        queue_id: (n % u64::from(queues)) as u32,
        born_timestamp_ms: n,
        ..MessageExt::default()
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    if args.messages == 0 || args.queues == 0 || args.checkpoint_every == 0 {
        bail!("--messages, --queues and --checkpoint-every must be positive");
    }
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "store-bench: {} messages of {} B bodies, one key of {KEYS} and a unique id each, {} queues, checkpoint every {}, in {}",
        args.messages,
        args.body_bytes,
        args.queues,
        args.checkpoint_every,
        dir.display()
    );
    let disk = Arc::new(FsDisk::new(&dir).context("store directory")?);
    let (mut store, _) = MessageStore::open(disk, StoreConfig::default()).context("opening the store")?;
    let body = vec![b'x'; args.body_bytes];
    let started = Instant::now();
    for n in 0..args.messages {
        store.put(message(n, args.queues, &body), n).with_context(|| format!("put {n}"))?;
        if (n + 1) % args.checkpoint_every == 0 && n + 1 < args.messages {
            store.flush()?;
            store.checkpoint()?;
        }
        if (n + 1) % (args.messages / 10).max(1) == 0 {
            let (rss, _) = memory_mib();
            eprintln!("store-bench: {} stored, {:.0} s, RSS {rss:.0} MiB", n + 1, started.elapsed().as_secs_f64());
        }
    }
    store.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    let log_bytes = store.write_offset();
    drop(store);
    let (rss, peak) = memory_mib();
    println!("write:   {:.1} s, {:.0} msgs/s, commit log {:.0} MiB, RSS {rss:.0} MiB, peak RSS {peak:.0} MiB", seconds, args.messages as f64 / seconds, log_bytes as f64 / 1048576.0);
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--reopen", "--dir"])
        .arg(&dir)
        .args(["--messages", &args.messages.to_string(), "--queues", &args.queues.to_string()])
        .status()
        .context("running the reopen")?;
    if !status.success() {
        bail!("the reopen failed: {status}");
    }
    Ok(())
}

fn reopen(args: &Args) -> anyhow::Result<()> {
    let dir = args.dir.as_ref().context("--reopen needs --dir")?;
    let (rss_before, _) = memory_mib();
    let started = Instant::now();
    let disk = Arc::new(FsDisk::new(dir)?);
    let (store, report) = MessageStore::open(disk, StoreConfig::default()).context("reopening the store")?;
    let seconds = started.elapsed().as_secs_f64();
    let (rss, peak) = memory_mib();
    println!(
        "recover: {:.2} s, {} entries re-dispatched after checkpoint {}, RSS {rss:.0} MiB (process at start {rss_before:.0} MiB), peak RSS {peak:.0} MiB",
        seconds, report.redispatched, report.checkpoint
    );
    // Reads answer from the files through the bounded cache.
    let n = args.messages / 2;
    let queue_id = (n % u64::from(args.queues)) as u32;
    let started = Instant::now();
    let got = store.get(TOPIC, queue_id, n / u64::from(args.queues), 32, u64::MAX, &|_| true)?;
    let pull_us = started.elapsed().as_micros();
    let want = format!("id-{n:012}");
    if got.messages.first().and_then(|m| m.message.unique_id()) != Some(want.as_str()) {
        bail!("a pull at the middle of queue {queue_id} did not start with {want}");
    }
    let started = Instant::now();
    let by_id = store.query_by_unique_id(&want)?;
    let id_us = started.elapsed().as_micros();
    if by_id.len() != 1 {
        bail!("query by unique id {want}: {} messages", by_id.len());
    }
    let key = format!("order-{}", n % KEYS);
    let started = Instant::now();
    let by_key = store.query_by_key(TOPIC, &key, 32, 0, u64::MAX)?;
    let key_us = started.elapsed().as_micros();
    let carrying = (args.messages - n % KEYS).div_ceil(KEYS);
    if by_key.len() as u64 != carrying.min(32) || by_key.iter().any(|m| m.message.keys.first() != Some(&key)) {
        bail!("query by key {key}: {} messages", by_key.len());
    }
    let (rss_after, _) = memory_mib();
    println!("reads:   pull of 32 at a queue's middle {pull_us} us, by unique id {id_us} us, newest 32 by key {key_us} us; RSS after {rss_after:.0} MiB");
    Ok(())
}
