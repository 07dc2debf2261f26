//! A store written in the entry format of November 2026 (commit log entries
//! of format version 1, consume queues of version 1), kept under
//! `tests/fixtures/store-2026-11`, must open with every later build and
//! serve its messages: formats on disk carry a version, and a change to an
//! entry's fields must still read what earlier builds wrote.
//!
//! `cargo test -p broker --test store_fixture -- --ignored write_the_fixture`
//! wrote the fixture; it is not to be written again.
#![cfg(not(madsim))]

use broker::model::{Delayed, Message, MessageExt, Origin, PROPERTY_UNIQ_KEY};
use broker::store::{FsDisk, MessageStore, StoreConfig};
use std::path::PathBuf;
use std::sync::Arc;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-2026-11")
}

/// The messages the fixture holds: 40 over two topics and three queues,
/// keyed, tagged, with user properties.
fn message(n: u64) -> MessageExt {
    let topic = if n.is_multiple_of(4) { "payments" } else { "orders" };
    MessageExt {
        message: Message::new(topic, format!("body {n} {}", "x".repeat((n % 7) as usize)))
            .with_key(format!("key-{n}"))
            .with_tags(if n.is_multiple_of(2) { "TagA" } else { "TagB" })
            .with_property("AMOUNT", (n * 13).to_string())
            .with_property(PROPERTY_UNIQ_KEY, format!("fixture-{n}")),
        queue_id: (n % 3) as u32,
        born_timestamp_ms: 1_790_000_000_000 + n,
        born_host: "fixture".into(),
        ..MessageExt::default()
    }
}

const MESSAGES: u64 = 40;

#[test]
#[ignore = "writes the fixture; run once, by hand"]
fn write_the_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut store, _) = MessageStore::open(Arc::new(FsDisk::new(&dir).unwrap()), StoreConfig::default()).unwrap();
    for n in 0..MESSAGES {
        store.put(message(n), 1_790_000_000_000 + n).unwrap();
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
}

#[test]
fn a_store_written_in_november_2026_opens_and_serves_every_message() {
    // Opened from a copy: recovery and later writes must not change the
    // committed fixture.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), copy.path());
    let (mut store, report) = MessageStore::open(Arc::new(FsDisk::new(copy.path()).unwrap()), StoreConfig::default()).unwrap();
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    let mut seen = 0;
    for topic in ["orders", "payments"] {
        for queue_id in 0..3 {
            let (min, max) = store.queue_offsets(topic, queue_id);
            let got = store.get(topic, queue_id, min, 1000, u64::MAX, &|_| true).unwrap();
            assert_eq!(got.next_offset, max);
            for m in got.messages {
                let n: u64 = m.msg_id().trim_start_matches("fixture-").parse().unwrap();
                let want = message(n);
                assert_eq!((m.message.topic.as_str(), m.queue_id), (want.message.topic.as_str(), want.queue_id));
                assert_eq!(m.message.body, want.message.body);
                assert_eq!(m.message.keys, want.message.keys);
                assert_eq!(m.message.tags, want.message.tags);
                assert_eq!(m.message.properties, want.message.properties);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, MESSAGES);
    assert_eq!(store.query_by_key("orders", "key-7", 32, 0, u64::MAX).unwrap().len(), 1);
    assert_eq!(store.query_by_unique_id("fixture-12").unwrap().len(), 1);
    // It takes new messages, in the newest format, after the old ones,
    // and reads both kinds after a restart.
    let mut newer = message(MESSAGES);
    newer.message.delay_level = 3;
    newer.reconsume_times = 2;
    newer.origin = Some(Origin { msg_id: "fixture-1".into(), topic: "orders".into() });
    newer.delayed = Some(Delayed { topic: "orders".into(), queue_id: 1, level: 3, deliver_at_ms: 1_790_000_010_000 });
    let put = store.put(newer.clone(), 1_790_000_000_100).unwrap();
    assert!(put.commit_log_offset > 0);
    store.flush().unwrap();
    drop(store);
    let (store, report) = MessageStore::open(Arc::new(FsDisk::new(copy.path()).unwrap()), StoreConfig::default()).unwrap();
    assert_eq!(report.truncated_bytes, 0, "{report:?}");
    let back = store.read_at(put.commit_log_offset).unwrap();
    assert_eq!((back.message, back.reconsume_times, back.origin, back.delayed), (newer.message, 2, newer.origin, newer.delayed));
    let old = store.query_by_unique_id("fixture-12").unwrap();
    assert_eq!((old[0].origin.clone(), old[0].delayed.clone(), old[0].message.delay_level), (None, None, 0));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
