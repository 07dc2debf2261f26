//! `broker`: a broker node over real TCP, configured by a RocketMQ-style
//! `broker.conf` (see [`broker::conf`] for the keys).
//!
//! Once the store is recovered, the listener bound and the name servers told,
//! prints exactly one line, `broker <name> listening on <addr>`, to stdout;
//! the recovery report and logs go to stderr (filter from `RUST_LOG`, default
//! `info`). Any startup failure is one line on stderr and exit status 1.

mod common;

use anyhow::Context;
use broker::clock::Clock;
use broker::conf::{self, BrokerConf};
use broker::server::Broker;
use broker::store::FsDisk;
use clap::Parser;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A RocketMQ-style broker. Flags override the configuration file.
#[derive(Parser, Debug)]
#[command(name = "broker", version)]
struct Args {
    /// Configuration file in RocketMQ's `broker.conf` format; without it every
    /// key takes its default.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on and advertise (overrides listenAddr/listenPort).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Name servers, `a:9876;b:9876` (overrides namesrvAddr).
    #[arg(short = 'n', long, value_name = "ADDRS")]
    namesrv: Option<String>,
    /// Store directory (overrides storePathRootDir).
    #[arg(long, value_name = "DIR")]
    store_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    common::init_logging("info");
    if let Err(e) = run(args).await {
        eprintln!("broker: {e:#}");
        std::process::exit(1);
    }
}

/// The configuration file plus the flags over it.
fn load(args: &Args) -> anyhow::Result<BrokerConf> {
    let mut conf = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            conf::parse(&text).map_err(|e| anyhow::anyhow!("{} {e}", path.display()))?
        }
        None => conf::parse("").expect("the empty configuration is valid"),
    };
    if let Some(addr) = args.listen {
        conf.set_listen_addr(addr);
    }
    if let Some(list) = &args.namesrv {
        conf.set_namesrv_addrs(conf::parse_namesrv_list(list).map_err(|e| anyhow::anyhow!("--namesrv: {e}"))?);
    }
    if let Some(dir) = &args.store_dir {
        conf.store_dir = dir.clone();
    }
    Ok(conf)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut conf = load(&args)?;
    for warning in &conf.warnings {
        tracing::warn!("{warning}");
    }
    if conf.broker.namesrv_addrs.is_empty() {
        tracing::warn!("no name server configured (namesrvAddr or --namesrv): clients will not find this broker");
    }
    let listener = tokio::net::TcpListener::bind(conf.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", conf.listen_addr))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    if bound != conf.listen_addr {
        // Port 0 was asked for: advertise the port the system chose.
        conf.set_listen_addr(bound);
    }
    let disk = FsDisk::new(&conf.store_dir).with_context(|| format!("cannot open store directory {}", conf.store_dir.display()))?;
    let name = conf.broker.broker_name.clone();
    let flush = conf.broker.flush.rocketmq_name();
    let broker = Broker::open(conf.broker.clone(), Arc::new(disk), Clock::new())
        .with_context(|| format!("cannot open the store in {}", conf.store_dir.display()))?;
    let r = broker.recovery();
    eprintln!(
        "broker {name}: store {} recovered: checkpoint {}, end offset {}, {} entries re-dispatched, {} torn bytes cut; {flush}, advertising {}",
        conf.store_dir.display(),
        r.checkpoint,
        r.end_offset,
        r.redispatched,
        r.truncated_bytes,
        conf.broker.advertise_addr,
    );
    // Register before announcing, so "listening" also means "routable" when
    // a name server is up; serve() keeps registering periodically.
    let _ = broker.register_all().await;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "broker {name} listening on {bound}")?;
    stdout.flush()?;
    drop(stdout);
    broker.serve(listener).await.context("accepting connections")?;
    Ok(())
}
