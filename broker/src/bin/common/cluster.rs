//! A name server and a broker as child processes (the `namesrv` and
//! `broker` binaries beside the running one), for the benchmarks.
#![allow(dead_code)]

use anyhow::Context;
use broker::server::FlushMode;

/// A name server and a broker, killed when dropped.
pub struct Cluster {
    children: Vec<std::process::Child>,
    /// The name server's address.
    pub namesrv: String,
    /// The store directory, removed when the cluster is dropped.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts both with `flush`; `extra_conf` is appended to the broker's
    /// `broker.conf`.
    pub fn spawn(flush: FlushMode, extra_conf: &str) -> anyhow::Result<Cluster> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let bin = exe.parent().context("this binary has no directory")?;
        let dir = tempfile::tempdir().context("making the store directory")?;
        let mut cluster = Cluster { children: Vec::new(), namesrv: String::new(), dir };
        let namesrv = cluster.start(bin.join("namesrv"), &["--listen", "127.0.0.1:0"], "namesrv listening on ")?;
        let conf = cluster.dir.path().join("broker.conf");
        let flush_key = flush.rocketmq_name();
        std::fs::write(&conf, format!("brokerClusterName = bench\nbrokerName = bench-broker\nflushDiskType = {flush_key}\n{extra_conf}"))
            .context("writing broker.conf")?;
        let store = cluster.dir.path().join("store");
        let (conf, store) = (conf.display().to_string(), store.display().to_string());
        let args = ["--config", &conf, "--listen", "127.0.0.1:0", "--namesrv", &namesrv, "--store-dir", &store];
        cluster.start(bin.join("broker"), &args, "broker bench-broker listening on ")?;
        cluster.namesrv = namesrv;
        Ok(cluster)
    }

    /// The broker's process id.
    pub fn broker_pid(&self) -> Option<u32> {
        self.children.get(1).map(|c| c.id())
    }

    /// The broker process's CPU seconds so far, user and system, from
    /// `/proc/PID/stat` (in clock ticks of 1/100 s, Linux's USER_HZ).
    pub fn broker_cpu_s(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.broker_pid()?)).ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        Some((ticks(14)? + ticks(15)?) as f64 / 100.0)
    }

    /// Starts `program` and waits for the line announcing its address.
    fn start(&mut self, program: std::path::PathBuf, args: &[&str], announce: &str) -> anyhow::Result<String> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(&program)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} (build it: cargo build --release -p broker --bins)", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.children.push(child);
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).with_context(|| format!("reading {}'s first line", program.display()))?;
        line.trim().strip_prefix(announce).map(str::to_string).with_context(|| format!("{} said {line:?}, not {announce:?}", program.display()))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
