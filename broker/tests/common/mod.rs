//! What the loopback tests with the binaries share: starting processes
//! and waiting for their ready lines, free ports, and `mqadmin`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const NAMESRV: &str = env!("CARGO_BIN_EXE_namesrv");
pub const BROKER: &str = env!("CARGO_BIN_EXE_broker");
pub const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

/// Kills and reaps its processes when dropped.
pub struct Kill(pub Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a configuration file `name` under `dir`; its path.
pub fn conf(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("conf");
    path.to_str().expect("utf-8").to_string()
}

pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// Starts `exe` and waits for its stdout line starting with `ready`.
pub fn start(kill: &mut Kill, exe: &str, args: &[&str], log: &Path, ready: &str) {
    start_with(kill, exe, args, log, ready, |_| {});
}

/// [`start`], handing every later stdout line to `each`.
pub fn start_with(kill: &mut Kill, exe: &str, args: &[&str], log: &Path, ready: &str, each: impl Fn(String) + Send + 'static) {
    let stderr = std::fs::File::create(log).expect("log");
    let mut child =
        Command::new(exe).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    kill.0.push(child);
    let (tx, rx) = mpsc::channel();
    let ready_prefix = ready.to_string();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        // With no ready line to wait for, every line is handed on.
        if !ready_prefix.is_empty() {
            for line in lines.by_ref() {
                let found = line.starts_with(&ready_prefix);
                let _ = tx.send(line);
                if found {
                    break;
                }
            }
        }
        for line in lines {
            each(line);
        }
    });
    if ready.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("ready line");
        if line.starts_with(ready) {
            return;
        }
    }
}

/// A name server and one master broker `broker_name` on loopback, with a
/// SYNC_FLUSH store under `dir` and `extra` lines of `broker.conf`; the
/// name server's address.
pub fn namesrv_and_broker(kill: &mut Kill, dir: &Path, broker_name: &str, extra: &str) -> String {
    let namesrv = free_addr();
    start(kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.join("namesrv.log"), "namesrv listening on ");
    let body = format!(
        "brokerName={broker_name}\nlistenAddr={}\nnamesrvAddr={namesrv}\nstorePathRootDir={}\nflushDiskType=SYNC_FLUSH\nregisterNameServerPeriod=1000\n{extra}",
        free_addr(),
        dir.join("store").display()
    );
    let conf = conf(dir, "broker.conf", &body);
    start(kill, BROKER, &["-c", &conf], &dir.join("broker.log"), &format!("broker {broker_name} listening on "));
    namesrv
}

pub fn mqadmin(namesrv: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(MQADMIN).arg("-n").arg(namesrv).args(args).env_remove("NAMESRV_ADDR").output().expect("mqadmin");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    eprintln!("$ mqadmin {}\n{stdout}{stderr}", args.join(" "));
    (out.status.code().unwrap_or(-1), stdout, stderr)
}


/// A name server and one broker (`broker-b`, in memory) in this process on
/// loopback, the broker registered; the name server's address.
pub async fn loopback_cluster() -> String {
    use broker::clock::Clock;
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let namesrv = listener.local_addr().unwrap().to_string();
    tokio::spawn(broker::namesrv::NameServer::new(broker::namesrv::NameServerConfig::default(), Clock::new()).serve(listener));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = broker::server::BrokerConfig::new("broker-b", listener.local_addr().unwrap().to_string());
    config.namesrv_addrs = vec![namesrv.clone()];
    let broker = broker::server::Broker::open(config, Arc::new(broker::store::MemDisk::new()), Clock::new()).unwrap();
    tokio::spawn(broker.serve(listener));
    let probe = broker::client::ClientInstance::new(broker::client::ClientConfig::new(vec![namesrv.clone()], "probe"), Clock::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe.cluster().await.is_ok_and(|brokers| !brokers.is_empty()) {
        assert!(Instant::now() < deadline, "the broker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    namesrv
}
