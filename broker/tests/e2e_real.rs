//! Real mode, end to end: the `namesrv` and `broker` binaries as child
//! processes on loopback, driven by the library's client and by `mqadmin`.
//!
//! The main test kills the broker with SIGKILL in the middle of a send storm
//! and restarts it on the same store, then demands that every acknowledged
//! message is delivered to every group that subscribed to it, and nothing a
//! tag filter excludes. Progress goes to stderr (`--nocapture` to see it).
#![cfg(not(madsim))]

use broker::client::{
    Admin, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer,
    PushConsumerConfig,
};
use broker::clock::Clock;
use broker::model::{Message, MessageExt, TopicConfig, PROPERTY_UNIQ_KEY};
use broker::command::ConsumeFrom;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const NAMESRV: &str = env!("CARGO_BIN_EXE_namesrv");
const BROKER: &str = env!("CARGO_BIN_EXE_broker");
const MQADMIN: &str = env!("CARGO_BIN_EXE_mqadmin");

/// How long a child may take to print its "listening" line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running child and where its stderr goes.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// Owns every child process; dropping it (also during a panic) kills them
/// all, and a panic prints the tail of their logs.
#[derive(Default)]
struct Procs {
    procs: Vec<Proc>,
}

impl Procs {
    /// Starts `exe` with `args`, stderr appended to `log`, and waits for the
    /// stdout line starting with `ready`. Returns that line.
    fn start(&mut self, name: &str, exe: &str, args: &[&str], log: &Path, ready: &str) -> String {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open log");
        let mut child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        self.procs.push(Proc { name: name.to_string(), child, log: log.to_path_buf() });
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout after the ready line so the child never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(ready) => return line,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name} printed no {ready:?} line within {STARTUP_TIMEOUT:?}"),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name} exited before printing {ready:?}"),
            }
        }
    }

    /// SIGKILLs the child called `name` and waits for it.
    fn kill(&mut self, name: &str) {
        let i = self.procs.iter().position(|p| p.name == name).unwrap_or_else(|| panic!("no child {name}"));
        let mut p = self.procs.remove(i);
        p.child.kill().expect("kill");
        p.child.wait().expect("wait");
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if std::thread::panicking() {
            for p in &self.procs {
                eprintln!("---- last lines of {} ({}) ----\n{}", p.name, p.log.display(), tail(&p.log, 4000));
            }
        }
    }
}

fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

/// A name server on a free port; returns its address.
fn start_namesrv(procs: &mut Procs, dir: &Path) -> String {
    let addr = format!("127.0.0.1:{}", free_port());
    let line = procs.start(
        "namesrv",
        NAMESRV,
        &["--listen", &addr, "--scan-interval-ms", "1000"],
        &dir.join("namesrv.log"),
        "namesrv listening on ",
    );
    assert_eq!(line, format!("namesrv listening on {addr}"));
    addr
}

fn client(namesrv: &str, client_id: &str) -> Arc<ClientInstance> {
    ClientInstance::new(ClientConfig::new(vec![namesrv.to_string()], client_id), Clock::new())
}

fn body_of(i: usize) -> Vec<u8> {
    let mut body = format!("e2e message {i:05} ").into_bytes();
    body.resize(100, b'x');
    body
}

fn tag_of(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "TagA"
    } else {
        "TagB"
    }
}

const MESSAGES: usize = 10_000;
const SENDERS: usize = 16;
const KILL_AFTER_ACKS: usize = 4_000;
const SEND_DEADLINE: Duration = Duration::from_secs(120);
const CONSUME_DEADLINE: Duration = Duration::from_secs(120);
/// How long the broker stays dead before its restart.
const BROKER_DOWN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigkill_during_sends_loses_no_acknowledged_message() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs = Procs::default();
    let namesrv = start_namesrv(&mut procs, dir.path());
    let broker_addr = format!("127.0.0.1:{}", free_port());
    let conf_path = dir.path().join("broker.conf");
    std::fs::write(
        &conf_path,
        format!(
            "# written by e2e_real.rs\n\
             brokerClusterName=e2eCluster\n\
             brokerName=broker-e2e\n\
             brokerId=0\n\
             brokerRole=ASYNC_MASTER\n\
             listenAddr={broker_addr}\n\
             namesrvAddr={namesrv}\n\
             storePathRootDir={}\n\
             flushDiskType=SYNC_FLUSH\n\
             flushConsumerOffsetInterval=500\n\
             registerNameServerPeriod=5000\n",
            dir.path().join("store").display()
        ),
    )
    .expect("write broker.conf");
    let conf = conf_path.to_str().expect("utf-8 path").to_string();
    let broker_log = dir.path().join("broker.log");
    let ready = "broker broker-e2e listening on ";
    procs.start("broker", BROKER, &["-c", &conf], &broker_log, ready);
    eprintln!("[{:>5.1}s] namesrv {namesrv} and broker {broker_addr} up", started.elapsed().as_secs_f64());

    let admin = Admin::new(client(&namesrv, "e2e-admin"));
    let created = admin.create_topic(TopicConfig::new("e2e", 8), None).await.expect("create topic e2e");
    assert_eq!(created, vec!["broker-e2e".to_string()]);

    // Consumers first: group `all` (3 members) and group `tagged` (TagA only).
    let all_seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let tagged_seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let tagged_wrong = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let consumer_config = |group: &str, expression: &str| {
        let mut c = PushConsumerConfig::new(group, "e2e", expression);
        c.consume_from = ConsumeFrom::FirstOffset;
        c.rebalance_interval_ms = 1_000;
        c.offset_persist_interval_ms = 1_000;
        c.pull_backoff_ms = 300;
        c
    };
    let mut consumers = Vec::new();
    for n in 0..3 {
        let seen = all_seen.clone();
        let listener = move |msgs: &[MessageExt], _: &ConsumeContext| {
            seen.lock().unwrap().extend(msgs.iter().map(|m| m.msg_id()));
            ConsumeResult::Success
        };
        let c = PushConsumer::start(client(&namesrv, &format!("all-{n}")), consumer_config("all", "*"), listener)
            .expect("start consumer");
        consumers.push(c);
    }
    {
        let (seen, wrong) = (tagged_seen.clone(), tagged_wrong.clone());
        let listener = move |msgs: &[MessageExt], _: &ConsumeContext| {
            for m in msgs {
                if m.message.tags.as_deref() == Some("TagA") {
                    seen.lock().unwrap().insert(m.msg_id());
                } else {
                    wrong.lock().unwrap().insert(format!("{} (tags {:?})", m.msg_id(), m.message.tags));
                }
            }
            ConsumeResult::Success
        };
        let c = PushConsumer::start(client(&namesrv, "tagged-0"), consumer_config("tagged", "TagA"), listener)
            .expect("start consumer");
        consumers.push(c);
    }

    // The send storm: 16 tasks, each retrying its messages until SEND_OK.
    let producer = Producer::new(client(&namesrv, "e2e-producer"), ProducerConfig::new("e2e-producers")).expect("producer");
    let acked = Arc::new(Mutex::new(BTreeSet::<usize>::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let failed_attempts = Arc::new(AtomicUsize::new(0));
    let send_start = Instant::now();
    let mut senders = Vec::new();
    for task in 0..SENDERS {
        let (producer, acked, ack_count, failed_attempts) =
            (producer.clone(), acked.clone(), ack_count.clone(), failed_attempts.clone());
        senders.push(tokio::spawn(async move {
            for i in (task..MESSAGES).step_by(SENDERS) {
                let msg = Message::new("e2e", body_of(i))
                    .with_tags(tag_of(i))
                    .with_key(format!("key-{i}"))
                    .with_property(PROPERTY_UNIQ_KEY, format!("e2e-{i}"));
                loop {
                    match producer.send(msg.clone()).await {
                        Ok(r) if r.is_ok() => break,
                        Ok(r) => eprintln!("send e2e-{i}: {:?}, retrying", r.status),
                        Err(e) => {
                            if failed_attempts.fetch_add(1, Ordering::Relaxed) % 50 == 0 {
                                eprintln!("send e2e-{i}: {e}, retrying");
                            }
                        }
                    }
                    assert!(send_start.elapsed() < SEND_DEADLINE, "e2e-{i} not acknowledged within {SEND_DEADLINE:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                acked.lock().unwrap().insert(i);
                ack_count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // SIGKILL the broker mid-storm, then restart it on the same port and store.
    while ack_count.load(Ordering::Relaxed) < KILL_AFTER_ACKS {
        assert!(send_start.elapsed() < SEND_DEADLINE, "only {} acks before the kill", ack_count.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    procs.kill("broker");
    let at_kill = ack_count.load(Ordering::Relaxed);
    eprintln!("[{:>5.1}s] broker SIGKILLed after {at_kill} acknowledgements", started.elapsed().as_secs_f64());
    // Stay down a while, so sends fail and are retried, not only delayed:
    // at least BROKER_DOWN, and until a send has failed (a process killed
    // inside a slow fsync dies, and closes its sockets, only once the fsync
    // returns, which on a loaded disk can take longer than BROKER_DOWN).
    let down_since = Instant::now();
    tokio::time::sleep(BROKER_DOWN).await;
    while failed_attempts.load(Ordering::Relaxed) == 0 && down_since.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed_while_down = failed_attempts.load(Ordering::Relaxed);
    let restart = Instant::now();
    procs.start("broker", BROKER, &["-c", &conf], &broker_log, ready);
    eprintln!(
        "[{:>5.1}s] broker restarted in {:.2}s after {BROKER_DOWN:?} down ({failed_while_down} sends failed meanwhile); {}",
        started.elapsed().as_secs_f64(),
        restart.elapsed().as_secs_f64(),
        tail(&broker_log, 400).lines().rev().find(|l| l.contains("recovered")).unwrap_or("(no recovery line)")
    );

    for s in senders {
        s.await.expect("sender task");
    }
    let acked: BTreeSet<usize> = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), MESSAGES);
    assert!(failed_while_down > 0, "no send failed while the broker was down: was it killed?");
    eprintln!(
        "[{:>5.1}s] all {MESSAGES} sends acknowledged in {:.1}s ({} failed attempts retried)",
        started.elapsed().as_secs_f64(),
        send_start.elapsed().as_secs_f64(),
        failed_attempts.load(Ordering::Relaxed)
    );

    // Every acknowledged id must reach `all`; exactly the TagA ones reach `tagged`.
    let want_all: BTreeSet<String> = acked.iter().map(|i| format!("e2e-{i}")).collect();
    let want_tagged: BTreeSet<String> = acked.iter().filter(|i| tag_of(**i) == "TagA").map(|i| format!("e2e-{i}")).collect();
    let consume_start = Instant::now();
    loop {
        let (missing_all, missing_tagged, extra_tagged): (Vec<String>, Vec<String>, Vec<String>) = {
            let all = all_seen.lock().unwrap();
            let tagged = tagged_seen.lock().unwrap();
            (
                want_all.difference(&all).cloned().collect(),
                want_tagged.difference(&tagged).cloned().collect(),
                tagged.difference(&want_tagged).cloned().collect(),
            )
        };
        let wrong: Vec<String> = tagged_wrong.lock().unwrap().iter().take(5).cloned().collect();
        assert!(wrong.is_empty(), "group `tagged` (TagA) was given other tags: {wrong:?}");
        assert!(extra_tagged.is_empty(), "group `tagged` got ids never acknowledged as TagA: {:?}", &extra_tagged[..extra_tagged.len().min(5)]);
        if missing_all.is_empty() && missing_tagged.is_empty() {
            break;
        }
        assert!(
            consume_start.elapsed() < CONSUME_DEADLINE,
            "after {CONSUME_DEADLINE:?}: group `all` misses {} of {} (e.g. {:?}); group `tagged` misses {} of {} (e.g. {:?})",
            missing_all.len(),
            want_all.len(),
            &missing_all[..missing_all.len().min(5)],
            missing_tagged.len(),
            want_tagged.len(),
            &missing_tagged[..missing_tagged.len().min(5)],
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[{:>5.1}s] group `all` has all {} ids, group `tagged` exactly the {} TagA ids ({:.1}s after the last ack)",
        started.elapsed().as_secs_f64(),
        want_all.len(),
        want_tagged.len(),
        consume_start.elapsed().as_secs_f64()
    );

    // Queries, through the restarted broker's rebuilt index.
    let by_key = admin.query_by_key("e2e", "key-42", 32).await.expect("query by key");
    assert!(!by_key.is_empty(), "key-42 not found");
    for m in &by_key {
        assert_eq!(m.msg_id(), "e2e-42");
        assert_eq!(m.message.body, body_of(42));
        assert_eq!(m.message.keys, vec!["key-42".to_string()]);
    }
    let by_id = admin.query_by_id("e2e", "e2e-42").await.expect("query by id");
    assert!(!by_id.is_empty(), "e2e-42 not found by unique id");
    assert!(by_id.iter().all(|m| m.message.body == body_of(42) && m.message.tags.as_deref() == Some("TagA")));
    let offset_id = by_id[0].offset_msg_id();
    let by_offset = admin.query_by_id("e2e", &offset_id).await.expect("query by offset id");
    assert_eq!(by_offset.len(), 1);
    assert_eq!(by_offset[0].msg_id(), "e2e-42");

    for c in &consumers {
        c.shutdown().await;
    }
    eprintln!("[{:>5.1}s] done", started.elapsed().as_secs_f64());
}

/// Runs a command to completion within `timeout`, killing it otherwise.
fn run(exe: &str, args: &[&str], timeout: Duration) -> (i32, String, String) {
    let mut child = Command::new(exe)
        .args(args)
        .env_remove("NAMESRV_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{exe} {args:?} still running after {timeout:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned());
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn mqadmin_against_a_running_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs = Procs::default();
    let namesrv = start_namesrv(&mut procs, dir.path());
    let store = dir.path().join("store");
    procs.start(
        "broker",
        BROKER,
        &["--listen", "127.0.0.1:0", "--namesrv", &namesrv, "--store-dir", store.to_str().expect("utf-8")],
        &dir.path().join("broker.log"),
        "broker broker-a listening on ",
    );
    let timeout = Duration::from_secs(30);
    let admin = |args: &[&str]| {
        let mut all = vec!["-n", namesrv.as_str()];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = run(MQADMIN, &all, timeout);
        eprintln!("$ mqadmin {}\n{stdout}{stderr}", all.join(" "));
        (code, stdout, stderr)
    };

    let (code, out, _) = admin(&["update-topic", "-t", "cli", "-w", "4", "-r", "4"]);
    assert_eq!(code, 0);
    assert!(out.contains("topic cli created or updated on broker-a (read 4, write 4"), "{out}");

    let (code, out, _) = admin(&["sendMessage", "-t", "cli", "-p", "hello from mqadmin", "--tags", "TagA", "-k", "order-1,order-2", "-c", "2"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("SEND_OK").count(), 2, "{out}");

    let (code, out, _) = admin(&["query-by-key", "-t", "cli", "-k", "order-2"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "a header and two messages: {out}");
    assert!(out.contains("hello from mqadmin") && out.contains("order-1,order-2"), "{out}");

    let (code, out, _) = admin(&["topic-list"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["cli", "broker-a", "4", "4", "6", "false"]), "{out}");

    let (code, out, _) = admin(&["consume", "-t", "cli", "-g", "cli-readers", "-c", "2", "--wait-s", "20"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().filter(|l| l.contains("body=hello from mqadmin")).count(), 2, "{out}");

    let (code, out, _) = admin(&["cluster-list"]);
    assert_eq!(code, 0);
    assert!(out.contains("broker-a") && out.contains("ASYNC_FLUSH"), "{out}");

    let (code, out, err) = run(MQADMIN, &["-n", "127.0.0.1:1", "topic-list"], timeout);
    assert_eq!(code, 1, "stdout: {out}");
    assert_eq!(err.trim(), "mqadmin: cannot reach name server 127.0.0.1:1: connection refused");

    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "brokerName=broker-bad\nlistenAddr=127.0.0.1:0\n# a typo next\nflushDiskTyp=SYNC_FLUSH\n").expect("write");
    let (code, _, err) = run(BROKER, &["-c", bad.to_str().expect("utf-8")], timeout);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 4: flushDiskTyp: unknown key"), "{err}");

    let (code, _, err) = run(MQADMIN, &["update-topic"], timeout);
    assert_eq!(code, 2, "clap misuse: {err}");
}
