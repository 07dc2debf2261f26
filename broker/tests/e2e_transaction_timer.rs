//! Real mode, end to end, with the binaries on loopback: transactions whose
//! producer dies between its half and its end, and timer messages across a
//! broker SIGKILL.
//!
//! - `mqadmin transaction` sends a half whose local transaction stays
//!   unknown and is SIGKILLed; a second `mqadmin transaction` process of the
//!   same producer group, which only answers check-backs, is asked by the
//!   broker and commits it. The message arrives with the half's id, key and
//!   body. A rolled-back half never arrives.
//! - `mqadmin send --timer-delay-ms` sends timers; the broker is SIGKILLed
//!   and restarted on the same store while they wait; each arrives, none
//!   before its time.
#![cfg(not(madsim))]

mod common;

use common::*;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A broker.conf with short transaction and flush settings.
fn broker_conf(dir: &std::path::Path, namesrv: &str, listen: &str) -> std::path::PathBuf {
    let conf = dir.join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=broker-t\nlistenAddr={listen}\nnamesrvAddr={namesrv}\nstorePathRootDir={}\nregisterNameServerPeriod=1000\n\
             transactionTimeOut=500\ntransactionCheckInterval=300\ntimerMaxDelaySec=60\n",
            dir.join("store").display(),
        ),
    )
    .expect("conf");
    conf
}

/// The value of `name=` in a line of `mqadmin consume` output.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// Consumes `count` messages of `topic` as `group`; the printed lines.
fn consume(namesrv: &str, topic: &str, group: &str, count: usize, wait_s: u64) -> Vec<String> {
    let (code, out, err) =
        mqadmin(namesrv, &["consume", "-t", topic, "-g", group, "--from", "first", "-c", &count.to_string(), "--wait-s", &wait_s.to_string()]);
    assert_eq!(code, 0, "{err}");
    out.lines().filter(|l| l.starts_with('#')).map(str::to_string).collect()
}

#[test]
fn a_half_whose_producer_was_killed_is_committed_by_another_producer_of_its_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let conf = broker_conf(dir.path(), &namesrv, &free_addr());
    start(&mut kill, BROKER, &["-c", conf.to_str().expect("utf-8")], &dir.path().join("broker.log"), "broker broker-t listening on ");
    assert_eq!(mqadmin(&namesrv, &["update-topic", "-t", "payments", "-w", "2", "-r", "2"]).0, 0);

    // The sender: its local transaction stays unknown; it is killed as soon
    // as its half is stored, before any check-back could reach it.
    let (tx, rx) = mpsc::channel();
    start_with(
        &mut kill,
        MQADMIN,
        &["-n", &namesrv, "transaction", "-g", "pay", "-t", "payments", "-p", "pay-10", "-k", "order-1", "--local", "unknown", "--check", "unknown", "--stay-s", "60"],
        &dir.path().join("sender.log"),
        "",
        move |line| {
            let _ = tx.send(line);
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let half_id = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the sender printed its half");
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"0") {
            assert_eq!((cols[1], cols[5]), ("SEND_OK", "unknown"), "{line}");
            break cols[2].to_string();
        }
    };
    let sender = kill.0.last_mut().expect("sender");
    sender.kill().expect("SIGKILL the sender");
    let _ = sender.wait();

    // Another producer of the group, which only answers check-backs.
    let (tx, rx) = mpsc::channel();
    start_with(
        &mut kill,
        MQADMIN,
        &["-n", &namesrv, "transaction", "-g", "pay", "-c", "0", "--check", "commit", "--stay-s", "60"],
        &dir.path().join("checker.log"),
        "",
        move |line| {
            let _ = tx.send(line);
        },
    );
    let got = consume(&namesrv, "payments", "billing", 1, 30);
    assert_eq!(field(&got[0], "msgId"), Some(half_id.as_str()), "{got:?}");
    assert_eq!((field(&got[0], "keys"), field(&got[0], "body")), (Some("order-1"), Some("pay-10")), "{got:?}");
    let asked = |l: &String| l.starts_with("CHECK") && l.contains(&half_id) && l.contains("answer=commit");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = Vec::new();
    while !lines.iter().any(asked) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("the second producer was not asked: {lines:?}"),
        }
    }

    // A rolled-back half never arrives; a committed one after it does.
    let (code, out, err) = mqadmin(&namesrv, &["transaction", "-g", "refund", "-t", "payments", "-p", "refund", "-k", "order-2", "--local", "rollback"]);
    assert_eq!(code, 0, "{err}");
    let rolled_back = out.lines().find_map(|l| l.split_whitespace().nth(2).filter(|_| l.starts_with('0'))).expect("a half").to_string();
    let (code, _, err) = mqadmin(&namesrv, &["transaction", "-g", "refund", "-t", "payments", "-p", "later", "-k", "order-3"]);
    assert_eq!(code, 0, "{err}");
    // A new group reads the topic from its start: the two commits, never
    // the rollback.
    let got = consume(&namesrv, "payments", "audit", 2, 30);
    let mut keys: Vec<&str> = got.iter().filter_map(|l| field(l, "keys")).collect();
    keys.sort();
    assert_eq!(keys, ["order-1", "order-3"], "{got:?}");
    assert!(!got.iter().any(|l| l.contains(&rolled_back)), "a rolled-back half arrived: {got:?}");
    let (_, out, _) = mqadmin(&namesrv, &["query-by-key", "-t", "payments", "-k", "order-2"]);
    assert!(!out.contains(&rolled_back), "the rolled-back half is in its topic: {out}");
}

#[test]
fn timers_survive_a_broker_sigkill_and_none_arrives_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let listen = free_addr();
    let conf = broker_conf(dir.path(), &namesrv, &listen);
    let conf = conf.to_str().expect("utf-8").to_string();
    start(&mut kill, BROKER, &["-c", &conf], &dir.path().join("broker.log"), "broker broker-t listening on ");
    assert_eq!(mqadmin(&namesrv, &["update-topic", "-t", "wakeups", "-w", "2", "-r", "2"]).0, 0);

    let sent_at = now_ms();
    let (code, _, err) = mqadmin(&namesrv, &["send", "-t", "wakeups", "-p", "wake", "-k", "alarm", "-c", "6", "--timer-delay-ms", "4000"]);
    assert_eq!(code, 0, "{err}");
    let due = sent_at + 4_000;
    let (code, out, err) = mqadmin(&namesrv, &["send", "-t", "wakeups", "-p", "too far", "--timer-delay-ms", "61000"]);
    assert_eq!(code, 1, "a timer past timerMaxDelaySec was taken: {out}");
    assert!(err.contains("more than the 60 s allowed"), "{err}");

    // SIGKILL the broker while the timers wait, and start it again on the
    // same store.
    let broker = kill.0.get_mut(1).expect("broker");
    broker.kill().expect("SIGKILL the broker");
    let _ = broker.wait();
    start(&mut kill, BROKER, &["-c", &conf], &dir.path().join("broker-again.log"), "broker broker-t listening on ");

    let got = consume(&namesrv, "wakeups", "alarms", 6, 40);
    assert_eq!(got.len(), 6, "{got:?}");
    for line in &got {
        let t: u64 = field(line, "t").and_then(|t| t.parse().ok()).expect("a receipt time");
        assert!(t >= due, "a timer arrived {} ms early: {line}", due - t);
        assert_eq!(field(line, "keys"), Some("alarm"));
    }
}
