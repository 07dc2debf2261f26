//! `controller`: one controller of a Raft group over real TCP (RocketMQ 5's
//! controller mode). Brokers started with `controllerAddr` heartbeat it;
//! the controllers elect each broker group's master and replace it when
//! it fails.
//!
//! Prints exactly one line, `controller <id> listening on <addr>`, to
//! stdout once bound; logs go to stderr (filter from `RUST_LOG`, default
//! `info`). Its Raft log lives under `--store`: restart it with the same
//! directory and it rejoins with what it had agreed to.

mod common;

use anyhow::Context;
use broker::clock::Clock;
use broker::controller::{Controller, ControllerConfig};
use broker::store::FsDisk;
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// A controller: agrees with its peers on broker groups' masters.
#[derive(Parser, Debug)]
#[command(name = "controller", version)]
struct Args {
    /// This controller's id among the peers (n<id> in --peers).
    #[arg(long)]
    id: u64,
    /// Every controller, this one included: `n0-127.0.0.1:9878;n1-127.0.0.1:9879;n2-127.0.0.1:9880`
    /// (RocketMQ's `controllerDLegerPeers`). This one listens on its own address.
    #[arg(long)]
    peers: String,
    /// Directory of its Raft log.
    #[arg(long)]
    store: PathBuf,
    /// A broker silent this long is dead; a dead master is replaced (ms).
    #[arg(long, default_value_t = 5_000)]
    broker_timeout_ms: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    common::init_logging("info");
    if let Err(e) = run(args).await {
        eprintln!("controller: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let peers = ControllerConfig::parse_peers(&args.peers).map_err(|e| anyhow::anyhow!("--peers: {e}"))?;
    let addr = peers.get(&args.id).with_context(|| format!("--id {} is not among --peers", args.id))?.clone();
    anyhow::ensure!(args.broker_timeout_ms > 0, "--broker-timeout-ms must be positive");
    let mut config = ControllerConfig::new(args.id, peers);
    config.broker_timeout_ms = args.broker_timeout_ms;
    let disk = FsDisk::new(&args.store).with_context(|| format!("opening the store {}", args.store.display()))?;
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let controller = Controller::open(config, Arc::new(disk), Clock::new()).await.context("starting Raft")?;
    tracing::info!(id = args.id, %addr, "controller starting");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "controller {} listening on {addr}", args.id)?;
    stdout.flush()?;
    drop(stdout);
    controller.serve(listener).await.context("accepting connections")?;
    Ok(())
}
