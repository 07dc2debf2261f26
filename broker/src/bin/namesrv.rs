//! `namesrv`: a name server over real TCP.
//!
//! Prints exactly one line, `namesrv listening on <addr>`, to stdout once
//! bound, so scripts and tests can wait for it; logs go to stderr (filter
//! from `RUST_LOG`, default `info`).

mod common;

use anyhow::Context;
use broker::clock::Clock;
use broker::namesrv::{NameServer, NameServerConfig};
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;

/// A RocketMQ-style name server: brokers register here, clients ask it for routes.
#[derive(Parser, Debug)]
#[command(name = "namesrv", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: SocketAddr,
    /// A broker silent this long is dropped from the routes (ms).
    #[arg(long, default_value_t = 120_000)]
    broker_expiry_ms: u64,
    /// How often silent brokers are looked for (ms).
    #[arg(long, default_value_t = 5_000)]
    scan_interval_ms: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    common::init_logging("info");
    if let Err(e) = run(args).await {
        eprintln!("namesrv: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.scan_interval_ms > 0, "--scan-interval-ms must be positive");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let config = NameServerConfig { broker_expiry_ms: args.broker_expiry_ms, scan_interval_ms: args.scan_interval_ms };
    tracing::info!(%addr, ?config, "name server starting");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "namesrv listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    NameServer::new(config, Clock::new()).serve(listener).await.context("accepting connections")?;
    Ok(())
}
