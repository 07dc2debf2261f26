//! Real mode, end to end, with the binaries on loopback: retry and dead
//! letter, and ordered consumption across a SIGKILL.
//!
//! - A consumer whose business logic always fails drives a message through
//!   its retries (short delay levels from `broker.conf`) to the group's
//!   dead-letter queue, each retry's delay measured against its level;
//!   `mqadmin dlq-list` shows the dead letter and `mqadmin dlq-resend` sends
//!   it back to its topic, where a healthy consumer of the group takes it
//!   with its id and business key.
//! - An orderly group of two `mqadmin consume --orderly` processes takes
//!   FIFO messages; one is SIGKILLed halfway, the other takes its queues
//!   once their locks run out, and per sharding key nothing is consumed
//!   before every earlier message of the key was.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::model::{Message, MessageExt};
use broker::command::ConsumeFrom;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::*;

/// The delay levels the broker runs with: retries after 0, 1 and 2
/// reconsumptions wait at levels 3, 4 and 5.
const LEVELS_MS: [u64; 6] = [100, 200, 400, 600, 800, 1000];
const MAX_RECONSUME: u32 = 2;

fn consumer_config() -> PushConsumerConfig {
    let mut config = PushConsumerConfig::new("billing", "payments", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.max_reconsume_times = MAX_RECONSUME;
    config.rebalance_interval_ms = 1_000;
    config.offset_persist_interval_ms = 200;
    config.long_polling_ms = 1_000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_retries_at_its_levels_reaches_the_dlq_and_mqadmin_resends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let levels: Vec<String> = LEVELS_MS.iter().map(|ms| format!("{ms}ms")).collect();
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=broker-r\nlistenAddr={}\nnamesrvAddr={namesrv}\nstorePathRootDir={}\nflushDiskType=SYNC_FLUSH\nregisterNameServerPeriod=1000\nmessageDelayLevel={}\n",
            free_addr(),
            dir.path().join("store").display(),
            levels.join(" ")
        ),
    )
    .expect("conf");
    start(&mut kill, BROKER, &["-c", conf.to_str().expect("utf-8")], &dir.path().join("broker.log"), "broker broker-r listening on ");
    let (code, _, _) = mqadmin(&namesrv, &["update-topic", "-t", "payments", "-w", "1", "-r", "1"]);
    assert_eq!(code, 0);

    // A consumer that always fails, recording when each delivery came.
    let seen: Arc<Mutex<Vec<(Instant, u32, String)>>> = Arc::default();
    let failing = {
        let seen = seen.clone();
        move |msgs: &[MessageExt], _: &ConsumeContext| {
            for m in msgs {
                seen.lock().unwrap().push((Instant::now(), m.reconsume_times, m.message.topic.clone()));
            }
            ConsumeResult::RetryLater
        }
    };
    let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "failing-consumer"), Clock::new());
    let consumer = PushConsumer::start(client, consumer_config(), failing).expect("consumer");
    let producer = Producer::new(
        ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "producer"), Clock::new()),
        ProducerConfig::new("payers"),
    )
    .expect("producer");
    let sent = producer.send(Message::new("payments", b"pay 42".to_vec()).with_key("order-42").with_tags("TagA")).await.expect("send");

    // Every delivery: the first and one per retry, then the dead letter.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < (MAX_RECONSUME + 1) as usize {
        assert!(Instant::now() < deadline, "only {:?} deliveries came", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deliveries = seen.lock().unwrap().clone();
    for (n, pair) in deliveries.windows(2).enumerate() {
        let (level, waited) = (n as u32 + 3, pair[1].0 - pair[0].0);
        let wants = Duration::from_millis(LEVELS_MS[level as usize - 1]);
        eprintln!("retry {} came {waited:?} after its failure; level {level} waits {wants:?}", n + 1);
        assert!(waited >= wants, "retry {} came after {waited:?}, before its level {level} ({wants:?})", n + 1);
        assert_eq!(pair[1].1, n as u32 + 1, "reconsume times");
        assert_eq!(pair[1].2, "payments", "a retry carries its original topic");
    }
    let mut listed = String::new();
    while !listed.contains(&sent.msg_id) {
        assert!(Instant::now() < deadline, "the dead letter never showed: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        listed = mqadmin(&namesrv, &["dlq-list", "-g", "billing"]).1;
    }
    assert!(listed.contains("payments") && listed.contains("order-42"), "{listed}");
    assert_eq!(seen.lock().unwrap().len(), (MAX_RECONSUME + 1) as usize, "a dead letter is not delivered again");
    let (code, found, _) = mqadmin(&namesrv, &["query-by-key", "-t", "%DLQ%billing", "-k", "order-42"]);
    assert_eq!(code, 0, "query by key finds the dead letter");
    assert!(found.contains(&sent.msg_id), "{found}");
    consumer.shutdown().await;

    // The group, healthy now, takes the resent message.
    let taken: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let healthy = {
        let taken = taken.clone();
        move |msgs: &[MessageExt], _: &ConsumeContext| {
            taken.lock().unwrap().extend(msgs.iter().cloned());
            ConsumeResult::Success
        }
    };
    let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "healthy-consumer"), Clock::new());
    let consumer = PushConsumer::start(client, consumer_config(), healthy).expect("consumer");
    let (code, out, _) = mqadmin(&namesrv, &["dlq-resend", "-g", "billing", "-i", "order-42"]);
    assert_eq!(code, 0);
    assert!(out.contains("SEND_OK") && out.contains(&sent.msg_id), "{out}");
    while taken.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the resent message never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = taken.lock().unwrap()[0].clone();
    assert_eq!((m.msg_id(), m.message.keys.clone(), m.message.body.clone()), (sent.msg_id.clone(), vec!["order-42".to_string()], b"pay 42".to_vec()));
    assert_eq!(m.message.topic, "payments");
    consumer.shutdown().await;
    let (code, _, err) = mqadmin(&namesrv, &["dlq-resend", "-g", "billing", "-i", "no-such-key"]);
    assert_eq!(code, 1);
    assert!(err.contains("no dead letter of group billing has id or key no-such-key"), "{err}");
}

/// Keys, messages per key, and after how many consumed lines one of the
/// two orderly consumers is killed.
const SHARDS: usize = 8;
const PER_SHARD: usize = 40;
const KILL_AFTER_LINES: usize = 100;

/// A consumed line of `mqadmin consume`: (time ms, shard, seq).
fn parse_consumed(line: &str) -> Option<(u128, String, usize)> {
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name));
    let t = field("t=")?.parse().ok()?;
    let body = line.split_once("body=")?.1;
    let (shard, seq) = body.split_once(' ')?;
    Some((t, shard.to_string(), seq.parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_group_keeps_per_key_order_when_a_consumer_is_sigkilled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let conf = dir.path().join("broker.conf");
    std::fs::write(
        &conf,
        format!(
            "brokerName=broker-o\nlistenAddr={}\nnamesrvAddr={namesrv}\nstorePathRootDir={}\nflushDiskType=SYNC_FLUSH\nregisterNameServerPeriod=1000\nrebalanceLockMaxLiveTime=3000\n",
            free_addr(),
            dir.path().join("store").display()
        ),
    )
    .expect("conf");
    start(&mut kill, BROKER, &["-c", conf.to_str().expect("utf-8")], &dir.path().join("broker.log"), "broker broker-o listening on ");
    let (code, _, _) = mqadmin(&namesrv, &["update-topic", "-t", "fifo", "-w", "4", "-r", "4", "-o"]);
    assert_eq!(code, 0);

    // Two consumer processes; every consumed line, in the order read.
    let consumed: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let total = (SHARDS * PER_SHARD * 2).to_string();
    for p in 0..2 {
        let consumed = consumed.clone();
        let args = [
            "-n", &namesrv, "consume", "-t", "fifo", "-g", "ordered", "--orderly", "-c", &total, "--wait-s", "120",
            "--lock-lease-ms", "1500", "--lock-interval-ms", "500", "--rebalance-interval-ms", "1000",
        ];
        start_with(&mut kill, MQADMIN, &args, &dir.path().join(format!("consumer-{p}.log")), "", move |line| {
            consumed.lock().unwrap().push((p, line));
        });
    }
    let producer = Producer::new(
        ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "fifo-producer"), Clock::new()),
        ProducerConfig::new("fifo-producers"),
    )
    .expect("producer");
    let mut victim: Option<usize> = None;
    let mut acked = 0;
    for seq in 0..PER_SHARD {
        for shard in 0..SHARDS {
            let key = format!("s{shard}");
            let msg = Message::new("fifo", format!("{key} {seq}").into_bytes()).with_key(format!("{key}-{seq}"));
            producer.send_ordered(msg, &key).await.expect("ordered send");
            acked += 1;
        }
        if victim.is_none() && consumed.lock().unwrap().len() >= KILL_AFTER_LINES {
            // SIGKILL the busier consumer (it surely holds queues): no
            // unlock, no offset commit, no goodbye.
            let lines = consumed.lock().unwrap().clone();
            let busier = usize::from(lines.iter().filter(|(p, _)| *p == 1).count() > lines.len() / 2);
            kill.0[2 + busier].kill().expect("kill a consumer");
            victim = Some(busier);
            eprintln!("consumer {busier} killed after {} consumed lines, {acked} sends", lines.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some(victim) = victim else { panic!("the consumers never got going") };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = consumed.lock().unwrap().clone();
        let seen: std::collections::BTreeSet<(String, usize)> =
            lines.iter().filter_map(|(_, l)| parse_consumed(l)).map(|(_, s, q)| (s, q)).collect();
        if seen.len() == acked {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<String> = (0..PER_SHARD)
                .flat_map(|q| (0..SHARDS).map(move |s| (format!("s{s}"), q)))
                .filter(|k| !seen.contains(k))
                .map(|(s, q)| format!("{s} {q}"))
                .collect();
            panic!("only {} of {acked} messages consumed; never: {missing:?}", seen.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Per key, in consumption order: each message only once every earlier
    // one of its key was consumed (redeliveries after the kill are fine).
    let mut events: Vec<(u128, usize, String, usize)> = consumed
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(p, l)| parse_consumed(l).map(|(t, s, q)| (t, *p, s, q)))
        .collect();
    events.sort_by_key(|e| e.0);
    let mut done: std::collections::BTreeMap<String, std::collections::BTreeSet<usize>> = Default::default();
    let mut by_process = [0usize; 2];
    for (t, p, shard, seq) in &events {
        let earlier = done.entry(shard.clone()).or_default();
        let missing: Vec<usize> = (0..*seq).filter(|s| !earlier.contains(s)).collect();
        assert!(missing.is_empty(), "at {t} consumer {p} consumed {shard} {seq} before {shard} {missing:?}");
        earlier.insert(*seq);
        by_process[*p] += 1;
    }
    eprintln!("consumed lines: {by_process:?}; consumer {victim} was killed");
    assert!(by_process[victim] >= KILL_AFTER_LINES / 2 && by_process[1 - victim] > 0, "both consumers took part: {by_process:?}");
}
