//! Real mode, end to end, with the binaries on loopback and a broker
//! started from a stock RocketMQ `broker.conf` (spaces around `=`, keys this
//! broker only warns about): `mqadmin send --batch` stores a batch in one
//! request, `mqadmin receive` takes it with a simple consumer (POP), two
//! `mqadmin consume --broadcast` processes each take every message, and
//! `mqadmin consume --sql` takes only what its condition selects, and
//! `mqadmin request` gets the reply of a `mqadmin consume --reply-with`.
#![cfg(not(madsim))]

mod common;

use common::*;

/// The bodies `mqadmin consume` or `receive` printed, sorted.
fn bodies(out: &str) -> Vec<String> {
    let mut bodies: Vec<String> = out.lines().filter_map(|l| l.split(" body=").nth(1)).map(str::to_string).collect();
    bodies.sort();
    bodies
}

#[test]
fn mqadmin_drives_batches_simple_consumers_broadcasting_sql92_and_request_reply_on_a_stock_broker_conf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let port = free_addr().rsplit(':').next().expect("port").to_string();
    let body = format!(
        "brokerClusterName = DefaultCluster\n\
         brokerName = broker-a\n\
         brokerId = 0\n\
         deleteWhen = 04\n\
         fileReservedTime = 48\n\
         brokerRole = ASYNC_MASTER\n\
         flushDiskType = ASYNC_FLUSH\n\
         brokerIP1 = 127.0.0.1\n\
         listenPort = {port}\n\
         namesrvAddr = {namesrv}\n\
         storePathRootDir = {}\n\
         enablePropertyFilter = true\n\
         registerNameServerPeriod = 1000\n",
        dir.path().join("store").display()
    );
    let conf = conf(dir.path(), "broker.conf", &body);
    start(&mut kill, BROKER, &["-c", &conf], &dir.path().join("broker.log"), "broker broker-a listening on ");
    let (code, _, err) = mqadmin(&namesrv, &["updateTopic", "-t", "parcels", "-w", "2", "-r", "2"]);
    assert_eq!(code, 0, "{err}");

    // A batch of six in one request: one queue, consecutive offsets.
    let (code, out, err) = mqadmin(&namesrv, &["send", "-t", "parcels", "-p", "parcel", "-c", "6", "--batch", "6", "--property", "size=big"]);
    assert_eq!(code, 0, "{err}");
    let queues: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(5)).collect();
    assert_eq!(queues.len(), 6, "{out}");
    assert!(queues.iter().all(|q| *q == queues[0]), "one queue for the batch: {out}");
    let (code, _, err) = mqadmin(&namesrv, &["send", "-t", "parcels", "-p", "letter", "-c", "2", "--property", "size=small"]);
    assert_eq!(code, 0, "{err}");

    // A simple consumer receives all eight, each as its first attempt, and acks them.
    let (code, out, err) = mqadmin(&namesrv, &["receive", "-t", "parcels", "-g", "shipping", "-c", "8", "--wait-s", "20"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bodies(&out).len(), 8, "{out}");
    assert!(out.lines().all(|l| l.contains("attempt=1") && l.contains("acked=yes")), "{out}");
    // Acknowledged: the group has nothing left.
    let (code, out, _) = mqadmin(&namesrv, &["receive", "-t", "parcels", "-g", "shipping", "-c", "1", "--wait-s", "3"]);
    assert_eq!(code, 1, "nothing comes again: {out}");

    // Two broadcasting consumers of one group each take all eight.
    for node in ["node-1", "node-2"] {
        let offsets = dir.path().join(node);
        let args = ["consume", "-t", "parcels", "-g", "cache", "--broadcast", "--offsets-dir", offsets.to_str().expect("utf-8"), "-c", "8", "--wait-s", "30"];
        let (code, out, err) = mqadmin(&namesrv, &args);
        assert_eq!(code, 0, "{node}: {err}");
        assert_eq!(bodies(&out).len(), 8, "{node}: {out}");
    }

    // Request-reply: a responder consumes the desk's requests and answers
    // each; the requester gets the answer back through the broker.
    let (code, _, err) = mqadmin(&namesrv, &["updateTopic", "-t", "desk", "-w", "2", "-r", "2"]);
    assert_eq!(code, 0, "{err}");
    let responder = ["-n", &namesrv, "consume", "-t", "desk", "-g", "clerks", "--reply-with", "on its way", "--wait-s", "60"];
    start(&mut kill, MQADMIN, &responder, &dir.path().join("responder.log"), "");
    let (code, out, err) = mqadmin(&namesrv, &["request", "-t", "desk", "-p", "where is parcel 3?", "--timeout-s", "20"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("reply correlationId=") && out.trim_end().ends_with("body=on its way"), "{out}");
    let (code, _, err) = mqadmin(&namesrv, &["request", "-t", "parcels", "-p", "anyone?", "--timeout-s", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no reply within 1 s"), "{err}");

    // An SQL92 group takes the two small ones only.
    let (code, out, err) = mqadmin(&namesrv, &["consume", "-t", "parcels", "-g", "letters", "--sql", "size = 'small'", "-c", "2", "--wait-s", "20"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bodies(&out), ["letter", "letter"], "{out}");

    // Looking at what is stored: the batch's queue from offset 0, the
    // topic's messages over a time range, and the responder's producer.
    let (code, out, err) = mqadmin(&namesrv, &["queryMsgByOffset", "-t", "parcels", "-b", "broker-a", "-i", queues[0], "-o", "0", "-c", "6"]);
    assert_eq!(code, 0, "{err}");
    let found: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("Body:")).map(str::trim).collect();
    assert_eq!(found, ["parcel"; 6], "{out}");
    let (code, _, err) = mqadmin(&namesrv, &["queryMsgByOffset", "-t", "parcels", "-b", "broker-a", "-i", queues[0], "-o", "100"]);
    assert_eq!(code, 1, "nothing past the queue's end");
    assert!(err.contains("no message of parcels queue"), "{err}");
    let (code, out, err) = mqadmin(&namesrv, &["printMsg", "-t", "parcels", "-b", "0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1 + 9, "a header, the eight and the unanswered request: {out}");
    let (code, _, _) = mqadmin(&namesrv, &["printMsg", "-t", "parcels", "-b", "4102444800000"]);
    assert_eq!(code, 1, "nothing is stored in 2100");
    let (code, out, err) = mqadmin(&namesrv, &["producerConnection", "-g", "mqadmin-responder"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("broker-a")).count(), 1, "the responder: {out}");
}
