//! exactly-once: one business effect per acknowledged key and idempotent group.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_exactly_once, CheckConfig, ConsumeOutcome, Event, Expect, GroupSpec, Kind, Op, Validity, NOT_EXPECTED};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{acked, config, group, order};

fn effect(h: &mut HistoryBuilder, t: u64, group: &str, key: &str) -> u64 {
    h.push(
        Event::new(t, format!("consumer-{group}-1"), Kind::Ok, Op::Effect)
            .group(group)
            .key(key),
    )
}

#[test]
fn exactly_once_holds_with_one_effect_per_group_and_key() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    // k1 sent twice: still one effect per group.
    acked(&mut h, 12, order("m3", "TagA", "k1"));
    // A dead-lettered message needs no effect.
    acked(&mut h, 13, order("m4", "TagB", "k4"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(23, "consumer-audit-1", "audit", "m1", OK);
    effect(&mut h, 24, "audit", "k1");
    h.deliver(25, "consumer-billing-1", "billing", "m2", OK);
    effect(&mut h, 26, "billing", "k2");
    h.push(
        Event::new(90, "drain", Kind::Ok, Op::Dlq)
            .group("billing")
            .msg_id("m4"),
    );

    let expect = Expect {
        exactly_once: true,
        ..Expect::default()
    };
    let result = check_exactly_once(h.events(), &config(expect));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn exactly_once_fails_on_double_missing_and_phantom_effects() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagB", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    h.send(12, order("m3", "TagB", "k3"), Some((13, Kind::Fail)));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-billing-2", "billing", "m1", OK);
    effect(&mut h, 23, "billing", "k1");
    effect(&mut h, 24, "billing", "k3");

    let history = h.build();
    let expect = Expect {
        exactly_once: true,
        ..Expect::default()
    };
    let result = check_exactly_once(&history, &config(expect));
    assert_eq!(result.validity, Validity::Invalid);
    assert_json_snapshot!(result);

    let off = check_exactly_once(&history, &config(Expect::default()));
    assert_eq!(
        (off.validity, off.note.as_deref()),
        (Validity::Valid, Some(NOT_EXPECTED))
    );
}

/// billing deduplicates by key; ledger, a control group, does not.
fn control_config() -> CheckConfig {
    let mut cfg = config(Expect {
        exactly_once: true,
        ..Expect::default()
    });
    cfg.groups = vec![
        group("billing", "*", false),
        GroupSpec {
            idempotent: false,
            max_reconsume_times: 16,
            replies: false,
            ..group("ledger", "*", false)
        },
    ];
    cfg
}

/// k1 and k2 acknowledged and redelivered: billing applies each once,
/// ledger applies k1 twice and k2 three times.
fn control_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    for (t, msg_id, key) in [(20, "m1", "k1"), (30, "m2", "k2")] {
        h.deliver(t, "consumer-billing-1", "billing", msg_id, OK);
        effect(&mut h, t + 1, "billing", key);
        h.deliver(t + 2, "consumer-billing-2", "billing", msg_id, OK);
        h.deliver(t + 3, "consumer-ledger-1", "ledger", msg_id, OK);
        effect(&mut h, t + 4, "ledger", key);
        h.deliver(t + 5, "consumer-ledger-1", "ledger", msg_id, OK);
        effect(&mut h, t + 6, "ledger", key);
    }
    h.deliver(40, "consumer-ledger-1", "ledger", "m2", OK);
    effect(&mut h, 41, "ledger", "k2");
    h
}

#[test]
fn exactly_once_measures_double_effects_of_a_control_group() {
    let h = control_history();
    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (
            result.count("double-effect"),
            result.count("control-double-effect"),
            result.count("control-extra-effects")
        ),
        (0, 2, 3)
    );
    assert!(result.anomalies.is_empty());
    assert_json_snapshot!(result);
}

#[test]
fn exactly_once_fails_on_an_idempotent_double_effect_beside_a_control_group() {
    let mut h = control_history();
    effect(&mut h, 50, "billing", "k1");

    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(
        (
            result.count("double-effect"),
            result.count("control-double-effect"),
            result.count("control-extra-effects")
        ),
        (1, 2, 3)
    );
    assert_eq!(result.anomalies.len(), 1);
    assert!(result.anomalies[0].detail.contains("group billing"));
    assert_json_snapshot!(result);

    // A control group still must apply every acknowledged key.
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-ledger-1", "ledger", "m1", OK);
    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("missing-effect"), 1);
}
