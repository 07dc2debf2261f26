//! Check-backs against what the producers answered: a half whose producer
//! said commit is never moved aside as if nobody had answered, and the
//! broker stops asking about a transaction once it has ended.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_all, check_transaction, Event, Kind, Op, TxState, Validity};
use common::{acked, copy_delivered, tx_end, tx_expect, tx_send};
use insta::assert_json_snapshot;

/// A producer of `pay` answers the broker's `nth` check-back about
/// `msg_id`, asked at `asked`, with `answer` at `t`.
fn check(h: &mut HistoryBuilder, asked: u64, t: u64, msg_id: &str, answer: TxState, nth: u32) -> u64 {
    h.push(
        Event::new(t, "producer-1", Kind::Ok, Op::TxCheck)
            .msg_id(msg_id)
            .tx(answer)
            .detail(format!("check {nth}"))
            .start_ms(asked),
    )
}

/// t1 is answered commit on its second check, and a third check already
/// on its way is answered too; t2's producer never knew and it was moved
/// aside; t3 was checked after its end soon after broker-0 was down (its
/// op record may have been lost, or be still on its way).
fn passing() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, tx_send("t1", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 20, "producer-0", "t1", TxState::Unknown, Kind::Info);
    check(&mut h, 2_990, 3_000, "t1", TxState::Unknown, 1);
    check(&mut h, 3_990, 4_000, "t1", TxState::Commit, 2);
    check(&mut h, 4_990, 5_500, "t1", TxState::Commit, 3);
    copy_delivered(&mut h, 4_100, "t1", "broker-0/orders/1", 0);

    acked(&mut h, 30, tx_send("t2", "producer-0", "pay", TxState::Commit));
    for n in 1..=3 {
        check(&mut h, 2_000 + 1_000 * u64::from(n), 2_010 + 1_000 * u64::from(n), "t2", TxState::Unknown, n);
    }

    acked(&mut h, 40, tx_send("t3", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 50, "producer-0", "t3", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 60, "t3", "broker-0/orders/2", 0);
    h.nemesis(1_000, Op::Fault, "kill", Some("broker-0"));
    h.nemesis(2_000, Op::Heal, "kill", Some("broker-0"));
    check(&mut h, 6_000, 6_010, "t3", TxState::Commit, 1);
    h
}

#[test]
fn transaction_holds_when_checks_stop_at_the_answer_and_only_the_unanswered_are_moved_aside() {
    let mut h = passing();
    h.push(Event::new(9_000, "drain", Kind::Info, Op::TxAside).msg_id("t2"));
    h.harness(10_000, Op::End);
    let result = check_transaction(h.events(), &tx_expect());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!(result.count("moved-aside"), 1);
    assert_eq!((result.count("checked-after-end"), result.count("checked-after-end-excused")), (0, 1));
    assert_json_snapshot!(result);
}

#[test]
fn transaction_fails_on_a_commit_moved_aside_and_checks_after_the_end() {
    let mut h = passing();
    // t4: answered commit on its first check (well after broker-0's
    // restart), asked again and again, then moved aside as if nobody had
    // answered (the broker dropped the commit).
    acked(&mut h, 70, tx_send("t4", "producer-0", "pay", TxState::Commit));
    for n in 1..=6 {
        check(&mut h, 17_000 + 1_000 * u64::from(n), 17_010 + 1_000 * u64::from(n), "t4", TxState::Commit, n);
    }
    // t5: its producer's commit was acknowledged; asked 4 s later.
    acked(&mut h, 80, tx_send("t5", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 18_000, "producer-0", "t5", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 18_100, "t5", "broker-0/orders/3", 0);
    check(&mut h, 22_000, 22_010, "t5", TxState::Commit, 1);
    h.push(Event::new(29_000, "drain", Kind::Info, Op::TxAside).msg_id("t2"));
    h.push(Event::new(29_000, "drain", Kind::Info, Op::TxAside).msg_id("t4"));
    h.harness(30_000, Op::End);
    let result = check_transaction(h.events(), &tx_expect());
    assert_eq!(result.validity, Validity::Invalid);
    let kinds: Vec<&str> = result.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["checked-after-end", "committed-moved-aside", "checked-after-end"]);
    // t4's checks asked over 2 s after its first answer (the fourth to the
    // sixth), and t5's one.
    assert_eq!((result.count("checked-after-end"), result.count("committed-moved-aside")), (4, 1));
    assert_json_snapshot!(result);
}

#[test]
fn transaction_holds_when_each_message_follows_its_local_transaction() {
    let mut h = HistoryBuilder::new();
    // Committed by its producer.
    acked(&mut h, 10, tx_send("t1", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 20, "producer-0", "t1", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 30, "t1", "broker-0/orders/1", 0);
    // Rolled back by its producer: never delivered.
    acked(&mut h, 40, tx_send("t2", "producer-0", "pay", TxState::Rollback));
    tx_end(&mut h, 45, "producer-0", "t2", TxState::Rollback, Kind::Ok);
    // Unknown at first; another producer of the group commits on check-back.
    acked(&mut h, 50, tx_send("t3", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 55, "producer-0", "t3", TxState::Unknown, Kind::Info);
    h.push(Event::new(2_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Unknown));
    h.push(Event::new(3_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Commit));
    copy_delivered(&mut h, 3_010, "t3", "broker-0/orders/2", 0);
    // Nobody ever answered: moved aside and reported.
    acked(&mut h, 60, tx_send("t4", "producer-0", "pay", TxState::Commit));
    h.push(Event::new(9_000, "drain", Kind::Info, Op::TxAside).msg_id("t4"));
    // Its only producer left for good before ending it.
    acked(&mut h, 70, tx_send("t5", "producer-2", "legacy", TxState::Commit));
    h.push(Event::new(80, "producer-2", Kind::Info, Op::Retire).group("legacy"));
    // Committed, dead-lettered, and sent again under its id by an operator:
    // two stored copies for two sends.
    acked(&mut h, 75, tx_send("t8", "producer-1", "pay", TxState::Commit));
    tx_end(&mut h, 76, "producer-1", "t8", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 77, "t8", "broker-0/orders/2", 5);
    acked(&mut h, 300, Event::new(0, "operator-billing", Kind::Invoke, Op::Send).msg_id("t8").topic("orders").key("k-t8"));
    copy_delivered(&mut h, 310, "t8", "broker-0/orders/2", 9);
    // A flipped bit destroyed its half before anyone ended it.
    acked(&mut h, 80, tx_send("t7", "producer-1", "pay", TxState::Commit));
    h.push(Event::new(85, "nemesis", Kind::Info, Op::Fault).fault("disk-fault").target("broker-0").msg_id("t7"));
    // Redelivered from the same stored copy: a duplicate, not a second commit.
    acked(&mut h, 90, tx_send("t6", "producer-1", "pay", TxState::Commit));
    tx_end(&mut h, 95, "producer-1", "t6", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 100, "t6", "broker-0/orders/3", 4);
    copy_delivered(&mut h, 200, "t6", "broker-0/orders/3", 4);
    h.harness(10_000, Op::End);

    let verdict = check_all(h.events(), &tx_expect());
    let tx = verdict.check("transaction").unwrap();
    assert_eq!(tx.validity, Validity::Valid, "{tx:?}");
    assert_eq!(
        (tx.count("committed"), tx.count("rolled-back"), tx.count("resolved-by-check"), tx.count("moved-aside"), tx.count("orphaned")),
        (6, 1, 3, 1, 1)
    );
    assert_eq!(tx.count("resolve-max-ms"), 2_958);
    assert_eq!(tx.count("destroyed"), 1);
    assert_eq!(verdict.check("lost").unwrap().validity, Validity::Valid, "rolled back, moved aside and orphaned are not lost");
    assert_json_snapshot!(tx);
}

#[test]
fn transaction_fails_on_a_delivered_rollback_a_missing_commit_and_a_second_copy() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, tx_send("t1", "producer-0", "pay", TxState::Rollback));
    tx_end(&mut h, 20, "producer-0", "t1", TxState::Rollback, Kind::Ok);
    copy_delivered(&mut h, 30, "t1", "broker-0/orders/1", 0);
    acked(&mut h, 40, tx_send("t2", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 50, "producer-0", "t2", TxState::Commit, Kind::Ok);
    acked(&mut h, 60, tx_send("t3", "producer-0", "pay", TxState::Commit));
    h.push(Event::new(3_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Commit));
    tx_end(&mut h, 3_100, "producer-0", "t3", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 3_010, "t3", "broker-0/orders/2", 0);
    copy_delivered(&mut h, 3_200, "t3", "broker-0/orders/2", 1);
    // The same on a broker that lost power is excused.
    h.nemesis(4_000, Op::Fault, "power-loss", Some("broker-1"));
    acked(&mut h, 4_100, tx_send("t4", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 4_110, "producer-0", "t4", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 4_120, "t4", "broker-1/orders/0", 7);
    copy_delivered(&mut h, 9_000, "t4", "broker-1/orders/0", 8);
    h.harness(10_000, Op::End);

    let tx = check_transaction(h.events(), &tx_expect());
    assert_eq!(tx.validity, Validity::Invalid);
    let kinds: Vec<&str> = tx.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["rollback-delivered", "committed-not-delivered", "committed-twice"]);
    assert_eq!(tx.count("committed-twice-excused"), 1);
    assert_json_snapshot!(tx);
}
