//! Reply: each requester gets the reply to its own request, from a
//! responder that answered it.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_reply, reply_body, CheckConfig, Event, Expect, GroupSpec, Kind, Op, Validity};
use common::{acked, group, order};
use insta::assert_json_snapshot;

/// pricing answers requests; audit only reads them.
fn config() -> CheckConfig {
    CheckConfig { groups: vec![GroupSpec { replies: true, ..group("pricing", "*", false) }, group("audit", "*", false)], fifo_topics: vec![], expect: Expect::default() }
}

/// pricing's responder answers `msg_id` at `t`.
fn answered(h: &mut HistoryBuilder, t: u64, msg_id: &str) {
    h.push(Event::new(t, "consumer-pricing-0", Kind::Invoke, Op::Reply).group("pricing").msg_id(msg_id));
}

/// producer-1's request `msg_id` (its send `send`) got `body` back at `t`,
/// or nothing in time.
fn came_back(h: &mut HistoryBuilder, t: u64, send: u64, msg_id: &str, body: Option<&str>) {
    let event = Event::new(t, "producer-1", Kind::Ok, Op::Reply).of(send).msg_id(msg_id);
    h.push(match body {
        Some(body) => event.detail(body),
        None => Event { kind: Kind::Fail, ..event }.detail("timed out after 3000 ms"),
    });
}

/// Three requests in flight together: q0 and q1 answered, q2 never.
/// `bodies` is what came back to q0 and q1.
fn requests(bodies: [&str; 2], answer_q1_at: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    let sends: Vec<u64> = (0..3).map(|n| acked(&mut h, 100 + n, order(&format!("q{n}"), "TagA", &format!("k{n}")))).collect();
    answered(&mut h, 200, "q0");
    answered(&mut h, answer_q1_at, "q1");
    came_back(&mut h, 250, sends[0], "q0", Some(bodies[0]));
    came_back(&mut h, 260, sends[1], "q1", Some(bodies[1]));
    came_back(&mut h, 3_200, sends[2], "q2", None);
    h.harness(10_000, Op::End);
    h
}

#[test]
fn reply_holds_when_each_request_gets_its_own_answer_after_it_was_sent() {
    let h = requests([&reply_body("q0"), &reply_body("q1")], 210);
    let result = check_reply(h.events(), &config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("requests"), result.count("replied"), result.count("timed-out")), (3, 2, 1));
    assert_json_snapshot!(result);
}

#[test]
fn reply_fails_on_crossed_replies_and_one_no_responder_sent() {
    // q0 and q1 got each other's reply.
    let crossed = requests([&reply_body("q1"), &reply_body("q0")], 210);
    let result = check_reply(crossed.events(), &config());
    assert_eq!(result.validity, Validity::Invalid, "{result:?}");
    assert_eq!((result.count("wrong-reply"), result.count("reply-not-sent")), (2, 0));
    assert_json_snapshot!(result);
    // q1's reply came before pricing had answered it.
    let early = requests([&reply_body("q0"), &reply_body("q1")], 300);
    let result = check_reply(early.events(), &config());
    assert_eq!(result.validity, Validity::Invalid, "{result:?}");
    assert_eq!((result.count("wrong-reply"), result.count("reply-not-sent")), (0, 1));
    assert_json_snapshot!("reply_fails_on_a_reply_no_responder_sent", result);
}

#[test]
fn reply_is_not_expected_without_a_responding_group() {
    let h = requests([&reply_body("q0"), &reply_body("q1")], 210);
    let result = check_reply(h.events(), &CheckConfig { groups: vec![group("audit", "*", false)], ..config() });
    assert_eq!(result.note.as_deref(), Some(checker::NOT_EXPECTED));
}
