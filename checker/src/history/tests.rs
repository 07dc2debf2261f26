//! Tests of the history's format: JSON lines, digests and parsing.

use super::*;

fn sample() -> Vec<Event> {
    let mut h = HistoryBuilder::new();
    let draft = Event::new(0, "producer-1", Kind::Invoke, Op::Send)
        .msg_id("m1")
        .topic("orders")
        .tag("TagA")
        .key("k-1")
        .shard("s-1")
        .seq(0)
        .body("00ff00ff00ff00ff")
        .props(BTreeMap::from([("amount".to_owned(), "42".to_owned())]));
    h.send(10, draft, Some((15, Kind::Ok)));
    h.nemesis(20, Op::Fault, "kill", Some("broker-0"));
    h.deliver(
        30,
        "consumer-1",
        "billing",
        "m1",
        ConsumeOutcome::RetryLater,
    );
    h.harness(40, Op::End);
    h.build()
}

#[test]
fn jsonl_round_trips() {
    let events = sample();
    let text = to_jsonl(&events);
    assert_eq!(parse_jsonl(&text).unwrap(), events);
    assert_eq!(text.lines().count(), events.len());
}

#[test]
fn json_uses_lowercase_kinds_kebab_ops_and_skips_none() {
    let line = to_json_line(&Event::new(5, "nemesis", Kind::Info, Op::Fault).id(3).fault("power-loss"));
    assert_eq!(
        line,
        r#"{"t_ms":5,"id":3,"process":"nemesis","type":"info","op":"fault","fault":"power-loss"}"#
    );
    let line = to_json_line(
        &Event::new(5, "c", Kind::Ok, Op::Deliver).result(ConsumeOutcome::RetryLater),
    );
    assert!(line.contains(r#""result":"retry-later""#), "{line}");
}

#[test]
fn deliver_copies_the_message_fields_of_the_send() {
    let events = sample();
    let (send, deliver) = (&events[0], &events[3]);
    assert_eq!(deliver.op, Op::Deliver);
    assert_eq!(deliver.body.as_deref(), Some("00ff00ff00ff00ff"));
    assert_eq!(deliver.props, send.props);
    assert_eq!(
        (
            &deliver.topic,
            &deliver.tag,
            &deliver.key,
            &deliver.shard,
            deliver.seq
        ),
        (&send.topic, &send.tag, &send.key, &send.shard, send.seq)
    );
    let line = to_json_line(deliver);
    assert!(
        line.contains(r#""body":"00ff00ff00ff00ff","props":{"amount":"42"}"#),
        "{line}"
    );
}

#[test]
fn op_names_match_the_json() {
    let ops = [
        Op::Send,
        Op::Deliver,
        Op::Effect,
        Op::Dlq,
        Op::Subscribe,
        Op::Crash,
        Op::Fault,
        Op::Heal,
        Op::TailStart,
        Op::End,
        Op::DrainGaveUp,
        Op::Reached,
        Op::Hostile,
        Op::QueueLock,
        Op::OffsetCommit,
        Op::OffsetResume,
        Op::OffsetReset,
        Op::Ack,
        Op::Reply,
    ];
    for op in ops {
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(json, format!("\"{}\"", op.as_str()));
    }
    assert_eq!(Op::DrainGaveUp.as_str(), "drain-gave-up");
    assert_eq!(Op::Reached.as_str(), "reached");
}

#[test]
fn parses_drain_gave_up_and_reached() {
    let text = r#"{"t_ms":9000,"id":7,"process":"drain","type":"info","op":"drain-gave-up","queue":"broker-1/orders/3","group":"billing","detail":"no route"}
{"t_ms":9001,"id":8,"process":"nemesis","type":"info","op":"reached","detail":"crash-with-unsynced-bytes"}
"#;
    let events = parse_jsonl(text).unwrap();
    assert_eq!(events[0].op, Op::DrainGaveUp);
    assert_eq!(events[0].queue.as_deref(), Some("broker-1/orders/3"));
    assert_eq!(events[1].op, Op::Reached);
    assert_eq!(events[1].body, None);
    assert_eq!(events[1].props, None);
    assert_eq!(to_jsonl(&events), text);
}

#[test]
fn parses_the_design_examples() {
    let text = r#"{"t_ms":30012,"id":8121,"process":"producer-2","type":"invoke","op":"send","key":"k-77","shard":"s-3","seq":41}

{"t_ms":30000,"id":8100,"process":"nemesis","type":"info","op":"kill","target":"broker-0"}
"#;
    let events = parse_jsonl(text).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].seq, Some(41));
    // The design's example predates named faults: `kill` reads as a
    // fault whose name the line does not carry.
    assert_eq!(events[1].op, Op::Fault);
    assert_eq!(events[1].fault, None);
}

#[test]
fn older_per_fault_ops_read_as_fault_and_heal() {
    let ops = ["kill", "power-loss", "pause", "partition", "latency", "loss", "clock-skew", "clock-jump", "disk-fault"];
    for op in ops {
        let line = format!(r#"{{"t_ms":1,"id":1,"process":"nemesis","type":"info","op":"{op}"}}"#);
        assert_eq!(parse_jsonl(&line).unwrap()[0].op, Op::Fault, "{op}");
    }
    for op in ["restart", "resume", "heal"] {
        let line = format!(r#"{{"t_ms":1,"id":1,"process":"nemesis","type":"info","op":"{op}"}}"#);
        assert_eq!(parse_jsonl(&line).unwrap()[0].op, Op::Heal, "{op}");
    }
}

#[test]
fn parse_error_names_the_line() {
    let text = "{\"t_ms\":1,\"id\":1,\"process\":\"p\",\"type\":\"info\",\"op\":\"end\"}\n\n{\"t_ms\":2,\"id\":2,\"process\":\"p\",\"type\":\"bogus\",\"op\":\"end\"}\n";
    let err = parse_jsonl(text).unwrap_err();
    let HistoryError::Parse { line, .. } = &err;
    assert_eq!(*line, 3);
    assert!(err.to_string().starts_with("history line 3:"), "{err}");
}

#[test]
fn digest_is_stable_and_sensitive() {
    let events = sample();
    assert_eq!(digest(&events), digest(&sample()));
    // Pinned so that a change in serialization, which would silently
    // change every recorded digest, shows up here.
    assert_eq!(digest(&[]), FNV_OFFSET_BASIS);
    let pinned = digest_hex(&[Event::new(1, "p", Kind::Info, Op::End).id(1)]);
    assert_eq!(pinned, "4c71205db1a12b60");

    let mut changed = sample();
    changed[2].t_ms += 1;
    assert_ne!(digest(&changed), digest(&events));
    let mut changed = sample();
    changed[0].key = Some("k-2".into());
    assert_ne!(digest(&changed), digest(&events));
}

#[test]
fn the_streamed_digest_hashes_the_bytes_of_the_jsonl_form() {
    let events = sample();
    let mut lines = Fnv(FNV_OFFSET_BASIS);
    lines.add(to_jsonl(&events).as_bytes());
    assert_eq!(digest(&events), lines.0);
}

#[test]
fn fnv1a_matches_reference_vector() {
    // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; hashing goes byte by byte
    // exactly as in `digest`.
    let mut hash = FNV_OFFSET_BASIS;
    hash ^= u64::from(b'a');
    hash = hash.wrapping_mul(FNV_PRIME);
    assert_eq!(hash, 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn nemesis_ops_are_classified() {
    assert!(Op::Fault.is_nemesis());
    assert!(Op::Heal.is_nemesis());
    assert!(!Op::Send.is_nemesis());
    assert!(!Op::TailStart.is_nemesis());
    assert!(!Op::Crash.is_nemesis());
    assert!(!Op::DrainGaveUp.is_nemesis());
    assert!(!Op::Reached.is_nemesis());
}
