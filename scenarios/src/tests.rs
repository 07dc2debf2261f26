//! Tests of the catalogue, the loader's errors, and resolution.

use std::collections::BTreeMap;

use super::*;

/// A small valid scenario that the error tests break one field at a time.
const BASE: &str = r#"
name = "base"
about = "A small valid scenario for tests."
duration_s = 30
tail_s = 20

[topology]
name_servers = 1
broker_groups = 2
flush = "sync"

[[workload.producers]]
count = 1
topic = "orders"
rate_per_s = 10
sharding_keys = 5

[[workload.consumers]]
group = "billing"
topic = "orders"
count = 2

[[workload.consumers]]
group = "audit"
topic = "orders"
count = 1

[nemesis]
mode = "schedule"

[[nemesis.events]]
at_s = 5
fault = "kill"
target = "broker-0"
restart_after_s = 5

[expect]
lost = 0
exactly_once = true
liveness_bound_s = 20
"#;

fn error_text(text: &str) -> String {
    match Scenario::from_toml_str(text, "test.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

fn assert_error(text: &str, wanted: &str) {
    let message = error_text(text);
    assert!(message.contains(wanted), "error does not contain {wanted:?}:\n{message}");
    assert!(message.starts_with("test.toml: "), "error does not name its origin:\n{message}");
}

/// BASE with more events appended after its first one.
fn with_events(events: &str) -> String {
    BASE.replace("[expect]", &format!("{events}\n[expect]"))
}

fn all_catalogue() -> Vec<Scenario> {
    catalogue(catalogue_dir()).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_base_fixture_is_valid() {
    Scenario::from_toml_str(BASE, "test.toml").unwrap();
}

#[test]
fn every_catalogue_file_loads_and_validates() {
    let scenarios = all_catalogue();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    for wanted in [
        "broker-crash-async-flush",
        "broker-crash-sync-flush",
        "clock-skew",
        "consumer-crash-rebalance",
        "fifo-order",
        "partition-client-broker",
        "partition-namesrv",
        "power-loss-sync-flush",
        "swarm",
    ] {
        assert!(names.contains(&wanted), "catalogue lacks {wanted}: {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "catalogue is not sorted by file name");
    for scenario in &scenarios {
        assert!(scenario.validate().is_empty());
        let t = &scenario.topology;
        if t.controllers > 0 && t.replicas > 1 && t.replication == crate::ReplicationMode::Async {
            // A failover under ASYNC replication may lose what the slave
            // had not copied: such a scenario measures the loss.
            assert!(scenario.expect.lost > 0, "{}", scenario.name);
            continue;
        }
        assert_eq!(scenario.expect.lost, 0, "{}", scenario.name);
        assert!(scenario.expect.exactly_once, "{}", scenario.name);
        assert!(scenario.expect.liveness_bound_s.is_some(), "{}", scenario.name);
    }
}

#[test]
fn find_loads_by_name_and_lists_the_catalogue_when_missing() {
    assert_eq!(find("swarm").unwrap().nemesis.mode, NemesisMode::Swarm);
    let message = find("no-such-scenario").unwrap_err().to_string();
    assert!(message.contains("no scenario named `no-such-scenario`"), "{message}");
    assert!(message.contains("broker-crash-sync-flush"), "{message}");
    assert!(find("../scenarios/swarm").is_err());
}

#[test]
fn resolve_is_deterministic() {
    for scenario in all_catalogue() {
        for seed in [0, 1, 42, u64::MAX] {
            let a = scenario.resolve(seed);
            let b = scenario.resolve(seed);
            assert_eq!(a, b, "{} seed {seed}", scenario.name);
            assert_eq!(a.options(), b.options());
        }
    }
}

#[test]
fn different_seeds_give_different_swarms() {
    let swarm = find("swarm").unwrap();
    let runs: Vec<Resolved> = (0..10).map(|seed| swarm.resolve(seed)).collect();
    let distinct_options: std::collections::BTreeSet<Vec<(String, String)>> =
        runs.iter().map(|r| r.options().into_iter().filter(|(k, _)| k != "seed").collect()).collect();
    assert!(distinct_options.len() >= 9, "only {} distinct resolutions in 10 seeds", distinct_options.len());
    assert!(runs.iter().any(|r| !r.schedule.is_empty()), "no seed produced a fault");
    // Knobs written in the file are kept and not reported as drawn.
    let first = &runs[0];
    assert_eq!(first.scenario.nemesis.swarm.as_ref().unwrap().max_down_s, Some(10.0));
    assert!(first.drawn_from_seed.contains(&"nemesis.swarm.kill_per_min".to_string()));
    assert!(!first.drawn_from_seed.contains(&"nemesis.swarm.max_down_s".to_string()));
}

#[test]
fn options_list_every_resolved_knob() {
    let resolved = find("swarm").unwrap().resolve(7);
    let options: BTreeMap<String, String> = resolved.options().into_iter().collect();
    assert_eq!(options["seed"], "7");
    assert_eq!(options["name"], "swarm");
    assert_eq!(options["topology.flush"], "sync");
    assert_eq!(options["topology.flush_interval_ms"], "500");
    assert_eq!(options["workload.producers[0].tags"], r#"["TagA", "TagB", "TagC"]"#);
    assert_eq!(options["workload.producers[0].resend_max"], "2");
    assert_eq!(options["workload.consumers[1].idempotent"], "true");
    for (kind, _) in SwarmKnobs::default().rates() {
        let name = kind.knob();
        assert!(options.contains_key(&format!("nemesis.swarm.{name}")), "{name} not listed");
    }
    for i in 0..resolved.schedule.len() {
        assert!(options.contains_key(&format!("schedule[{i}]")));
    }
}

#[test]
fn every_resolved_schedule_heals_by_the_end_of_the_safety_phase() {
    for scenario in all_catalogue() {
        let duration_ms = scenario.duration_ms();
        for seed in 0..200 {
            let resolved = scenario.resolve(seed);
            let mut down: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
            let mut last_at_ms = 0;
            for fault in &resolved.schedule {
                let context = format!("{} seed {seed}: {fault}", scenario.name);
                assert!(fault.at_ms >= last_at_ms, "schedule not sorted: {context}");
                last_at_ms = fault.at_ms;
                assert!(fault.at_ms < duration_ms, "{context}");
                // A flipped byte is instantaneous; a clock jump may persist.
                let instantaneous = matches!(
                    fault.fault,
                    Fault::ClockJump { .. } | Fault::DiskFault { disk: DiskFaultKind::FlipByte, .. }
                );
                match fault.heal_at_ms {
                    None => assert!(instantaneous, "never healed: {context}"),
                    Some(heal) => assert!(fault.at_ms < heal && heal <= duration_ms, "{context}"),
                }
                let channel = match &fault.fault {
                    Fault::Kill { target }
                    | Fault::PowerLoss { target }
                    | Fault::Pause { target }
                    | Fault::ConsumerCrash { target, .. } => Some((target, "process")),
                    Fault::DiskFault { target, .. } if fault.heal_at_ms.is_some() => Some((target, "disk")),
                    Fault::ClockSkew { target, .. } => Some((target, "clock")),
                    _ => None,
                };
                if let Some((node, channel)) = channel {
                    let span = (fault.at_ms, fault.heal_at_ms.unwrap());
                    let spans = down.entry(format!("{node}/{channel}")).or_default();
                    assert!(spans.iter().all(|&(s, e)| e <= span.0 || span.1 <= s), "node hit while down: {context}");
                    spans.push(span);
                }
            }
        }
    }
}

#[test]
fn the_schedule_follows_the_file() {
    let resolved = find("broker-crash-sync-flush").unwrap().resolve(3);
    let text: Vec<String> = resolved.schedule.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["15.000s kill broker-0 until 20.000s", "35.000s kill broker-1 until 40.000s"]);

    let resolved = find("partition-namesrv").unwrap().resolve(3);
    assert_eq!(
        resolved.schedule[0].fault,
        Fault::Partition {
            partition: PartitionKind::Isolate,
            targets: vec!["broker-0".into(), "broker-1".into()],
            from: vec!["namesrv-0".into(), "namesrv-1".into()],
        }
    );
    let Fault::Partition { from, .. } = &resolved.schedule[1].fault else { panic!("not a partition") };
    assert_eq!(from.len(), 1 + 2 + 2 + 3 + 1, "namesrv-0 is cut off from every other node, the database included");
}

#[test]
fn consumer_crash_rates_become_crashes_of_that_group() {
    let scenario = find("consumer-crash-rebalance").unwrap();
    let resolved = scenario.resolve(11);
    let crashes: Vec<&str> = resolved
        .schedule
        .iter()
        .filter_map(|f| match &f.fault {
            Fault::ConsumerCrash { target, .. } => Some(target.as_str()),
            _ => None,
        })
        .collect();
    assert!(crashes.len() > 2, "expected rate-driven crashes, got {crashes:?}");
    assert!(crashes.iter().any(|n| n.starts_with("consumer-audit-")), "{crashes:?}");
}

#[test]
fn to_toml_string_round_trips() {
    for scenario in all_catalogue() {
        let text = scenario.to_toml_string();
        let back = Scenario::from_toml_str(&text, "round-trip").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, scenario);
    }
}

#[test]
fn with_schedule_writes_a_file_that_resolves_to_the_same_schedule() {
    for scenario in all_catalogue() {
        for seed in 0..20 {
            let resolved = scenario.resolve(seed);
            let copy = scenario.with_schedule(&resolved.schedule);
            let text = copy.to_toml_string();
            let back = Scenario::from_toml_str(&text, "shrunk").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, copy);
            assert_eq!(back.resolve(seed + 1).schedule, resolved.schedule, "{} seed {seed}\n{text}", scenario.name);
        }
    }
    let empty = find("swarm").unwrap().with_schedule(&[]);
    assert_eq!(empty.nemesis.mode, NemesisMode::None);
    Scenario::from_toml_str(&empty.to_toml_string(), "empty").unwrap();
}

#[test]
fn an_unknown_field_is_named_with_its_line() {
    let message = error_text(&BASE.replace("flush = \"sync\"", "flush = \"sync\"\nflsh_interval_ms = 5"));
    assert!(message.contains("unknown field `flsh_interval_ms`"), "{message}");
    assert!(message.contains("line 11"), "{message}");
}

#[test]
fn a_fault_accepts_only_its_own_fields() {
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"kill\"\ntarget = \"broker-1\"\nheal_after_s = 2\n"),
        "`kill` takes `restart_after_s`, not `heal_after_s`",
    );
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"kill\"\ntarget = \"broker-1\"\njump_ms = 2\n"),
        "unknown field `jump_ms`",
    );
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"pause\"\ntarget = \"broker-1\"\npersist = true\n"),
        "`pause` cannot persist; only clock-jump can",
    );
    assert_error(&with_events("[[nemesis.events]]\nfault = \"pause\"\ntarget = \"broker-1\"\n"), "missing field `at_s`");
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"pause\"\ntarget = \"brokr-1\"\n"),
        "brokr-1",
    );
}

#[test]
fn an_unknown_fault_is_refused() {
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"explode\"\ntarget = \"broker-1\"\n"),
        "unknown variant `explode`",
    );
}

#[test]
fn a_target_outside_the_topology_names_its_path() {
    let events = "[[nemesis.events]]\nat_s = 11\nfault = \"pause\"\ntarget = \"broker-1\"\n\
                  [[nemesis.events]]\nat_s = 12\nfault = \"clock-jump\"\ntarget = \"namesrv-0\"\njump_ms = -5\n\
                  [[nemesis.events]]\nat_s = 13\nfault = \"kill\"\ntarget = \"broker-5\"\n";
    assert_error(&with_events(events), "nemesis.events[3].target: `broker-5` is not a node of this scenario (its brokers: broker-0, broker-1)");
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"consumer-crash\"\ntarget = \"consumer-billing-2\"\n"),
        "nemesis.events[1].target: `consumer-billing-2` is not a node",
    );
    assert_error(&with_events("[[nemesis.events]]\nat_s = 6\nfault = \"kill\"\ntarget = \"brokr-1\"\n"), "`brokr-1` is not a target");
}

#[test]
fn a_fault_refuses_targets_of_the_wrong_role_or_size() {
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"disk-fault\"\ntarget = \"namesrv-0\"\ndisk = \"full\"\n"),
        "nemesis.events[1].target: this fault hits a broker, got `namesrv-0`",
    );
    assert_error(
        &with_events("[[nemesis.events]]\nat_s = 6\nfault = \"kill\"\ntarget = \"all-brokers\"\n"),
        "nemesis.events[1].target: must name one node",
    );
}

#[test]
fn a_probability_out_of_range_is_refused() {
    let text = BASE.replace("count = 1\n\n[nemesis]", "count = 1\nfailure_rate = 1.5\n\n[nemesis]");
    assert_error(&text, "workload.consumers[1].failure_rate: must be in 0.0..=1.0, got 1.5");
}

#[test]
fn requests_need_one_push_group_that_replies() {
    let requests = |extra: &str| BASE.replace("sharding_keys = 5\n", &format!("sharding_keys = 5\nrequest_share = 0.3\n{extra}"));
    assert_error(&requests(""), "workload.producers[0].request_share: no consumer group of topic `orders` replies (`replies = true`)");
    assert_error(&requests("fifo = true\n"), "workload.producers[0].request_share: requests are plain single sends: not with batch, fifo, transaction or timer");
    assert_error(&requests("request_timeout_ms = 50\n"), "workload.producers[0].request_timeout_ms: must be 100 to 60000 ms, got 50");
    let both = requests("").replace("count = 2\n", "count = 2\nreplies = true\n").replace("count = 1\n\n[nemesis]", "count = 1\nreplies = true\n\n[nemesis]");
    assert_error(&both, "workload.consumers[1].replies: another group of topic `orders` replies already: one reply per request");
    let simple = requests("").replace("count = 2\n", "count = 2\nkind = \"simple\"\nreplies = true\n");
    assert_error(&simple, "workload.consumers[0].replies: responders are push consumers in clustering mode: one reply per request");
    let valid = requests("").replace("count = 2\n", "count = 2\nreplies = true\n");
    Scenario::from_toml_str(&valid, "valid.toml").expect("one replying push group is enough");
}

#[test]
fn delay_levels_and_retry_knobs_are_checked() {
    let with_levels = |levels: &str| BASE.replace("flush = \"sync\"\n", &format!("flush = \"sync\"\ndelay_levels_ms = {levels}\n"));
    assert_error(&with_levels("[]"), "topology.delay_levels_ms: must hold 1..=64 delays, got 0");
    assert_error(&with_levels("[100, 0]"), "topology.delay_levels_ms[1]: must be in 1..=31536000000 ms, got 0");
    assert_error(
        &with_levels("[100, 300, 200]"),
        "topology.delay_levels_ms[2]: 200 ms is shorter than the level before it (300 ms): retries never wait less than the one before",
    );
    let text = BASE.replace("count = 1\n\n[nemesis]", "count = 1\nmax_reconsume_times = 5000\npoison_key_share = 2.0\n\n[nemesis]");
    assert_error(&text, "workload.consumers[1].poison_key_share: must be in 0.0..=1.0, got 2");
    assert_error(&text, "workload.consumers[1].max_reconsume_times: must be at most 1000, got 5000");
    let text = BASE.replace("count = 1\n\n[nemesis]", "count = 1\ndlq_resend_at_s = 50.0\n\n[nemesis]");
    assert_error(&text, "workload.consumers[1].dlq_resend_at_s: must be inside the run, 0 < at < 50, got 50");
    let text = BASE.replace("count = 1

[nemesis]", "count = 1
offset_reset_at_s = 45.0
offset_reset_rewind_s = -1.0

[nemesis]");
    assert_error(&text, "workload.consumers[1].offset_reset_at_s: must be while the clients run, 0 < at < 30, got 45");
    assert_error(&text, "workload.consumers[1].offset_reset_rewind_s: must be a number of seconds >= 0, got -1");
}

#[test]
fn a_name_must_equal_its_file_stem() {
    let dir = std::env::temp_dir().join(format!("scenarios-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other-name.toml");
    std::fs::write(&path, BASE).unwrap();
    let message = Scenario::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(message.contains("other-name.toml"), "{message}");
    assert!(message.contains("name: must equal the file stem `other-name`"), "{message}");
}

#[test]
fn a_schedule_needs_events_and_a_swarm_refuses_them() {
    let no_events = BASE.split("[[nemesis.events]]").next().unwrap().to_string()
        + "[expect]\nlost = 0\n";
    assert_error(&no_events, "nemesis.events: mode = \"schedule\" needs at least one [[nemesis.events]]");
    assert_error(&BASE.replace("mode = \"schedule\"", "mode = \"swarm\""), "nemesis.events: only for mode = \"schedule\"");
}

#[test]
fn a_progress_window_that_fits_the_tail_is_accepted() {
    let text = format!("{}\n[expect.progress]\ntail_acked_share = 0.9\n", BASE.replace("liveness_bound_s = 20", "liveness_bound_s = 5"));
    let scenario = Scenario::from_toml_str(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let progress = scenario.expect.progress.unwrap();
    assert_eq!((progress.tail_acked_share, progress.grace_s), (0.9, 5));
}

#[test]
fn other_rules_name_their_fields() {
    let cases = [
        (BASE.replace("name = \"base\"", "name = \"Base_1\""), "name: must match ^[a-z0-9-]+$, got `Base_1`"),
        (BASE.replace("duration_s = 30", "duration_s = 0"), "duration_s: must be at least 1, got 0"),
        (
            BASE.replace("duration_s = 30", "duration_s = 1").replace("tail_s = 20", "tail_s = 3"),
            "duration_s: the producers would stop at 1000 ms, before the workload starts at 3000 ms",
        ),
        (BASE.replace("flush = \"sync\"", "flush = \"sync\"\nreplicas = 4"), "topology.replicas: must be in 1..=3, got 4"),
        (BASE.replace("flush = \"sync\"", "flush = \"sync\"\nreplication = \"sync\""), "topology.replication: sync replication needs a slave: set topology.replicas to 2 or 3"),
        (BASE.replace("count = 2", "count = 0"), "workload.consumers[0].count: must be at least 1, got 0"),
        (BASE.replace("group = \"audit\"", "group = \"billing\""), "workload.consumers[1].group: group `billing` is declared twice"),
        (BASE.replace("topic = \"orders\"\ncount = 1", "topic = \"payments\"\ncount = 1"), "workload.consumers[1].topic: no producer sends to topic `payments`"),
        (BASE.replace("rate_per_s = 10", "rate_per_s = -1"), "workload.producers[0].rate_per_s: must be a finite number >= 0, got -1"),
        (BASE.replace("at_s = 5", "at_s = 30"), "nemesis.events[0].at_s: must be in 0..30"),
        (BASE.replace("restart_after_s = 5", "restart_after_s = 26"), "nemesis.events[0].restart_after_s: the fault would end at 31 s"),
        (BASE.replace("liveness_bound_s = 20", "liveness_bound_s = 21"), "expect.liveness_bound_s: must be in 1..=20 (tail_s), got 21"),
        (BASE.replace("exactly_once = true", "order = true"), "expect.order: needs a producer with fifo = true"),
        (
            with_events("[[nemesis.events]]\nat_s = 7\nfault = \"power-loss\"\ntarget = \"broker-0\"\n"),
            "nemesis.events[1].target: `broker-0` is still under nemesis.events[0] (kill) until 10 s",
        ),
        (
            with_events("[[nemesis.events]]\nat_s = 7\nfault = \"partition\"\npartition = \"halves\"\ntargets = [\"broker-0\"]\n"),
            "nemesis.events[1].targets: `halves` splits the whole cluster",
        ),
        (
            with_events("[[nemesis.events]]\nat_s = 7\nfault = \"latency\"\ntargets = [\"all\"]\nlatency_ms = [50, 10]\n"),
            "nemesis.events[1].latency_ms: must be [min, max] with min <= max",
        ),
        (
            BASE.replace("[expect]", "[nemesis.swarm]\nkill_per_min = 1.0\n\n[expect]"),
            "nemesis.swarm: only for mode = \"swarm\"",
        ),
        (
            with_events("[[nemesis.events]]\nat_s = 7\nfault = \"link-latency\"\ntargets = [\"broker-0\"]\nlatency_ms = [10, 50]\n"),
            "missing field `from`",
        ),
        (
            with_events("[[nemesis.events]]\nat_s = 7\nfault = \"link-latency\"\ntargets = [\"broker-0\"]\nfrom = [\"namesrv-0\"]\nlatency_ms = [50, 10]\n"),
            "nemesis.events[1].latency_ms: must be [min, max] with min <= max",
        ),
        (
            BASE.replace("[expect]", "[nemesis.swarm]\nslow_disk_per_min = 1.0\n\n[expect]"),
            "unknown field `slow_disk_per_min`, expected one of kill_per_min,",
        ),
        (
            format!("{BASE}\n[expect.progress]\ntail_acked_share = 0.9\n"),
            "expect.progress.grace_s: the window would open at 35 s, when producers have stopped (30 s",
        ),
        (
            format!("{}\n[expect.progress]\ntail_acked_share = 1.5\n", BASE.replace("liveness_bound_s = 20", "liveness_bound_s = 5")),
            "expect.progress.tail_acked_share: must be in (0, 1], got 1.5",
        ),
    ];
    for (text, wanted) in cases {
        assert_error(&text, wanted);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = BASE.replace("duration_s = 30", "duration_s = 0").replace("tail_s = 20", "tail_s = 0");
    let message = error_text(&text);
    assert!(message.contains("duration_s: must be at least 1"), "{message}");
    assert!(message.contains("tail_s: must be at least 1"), "{message}");
}


/// BASE with a `[topology.cost]` table holding `lines`.
fn with_cost(lines: &str) -> String {
    BASE.replace("flush = \"sync\"\n", &format!("flush = \"sync\"\n\n[topology.cost]\n{lines}\n"))
}

/// No table, no cost; an empty one takes the calibrated defaults; a field
/// set overrides its default alone.
#[test]
fn a_cost_table_takes_defaults_field_by_field() {
    let none = Scenario::from_toml_str(BASE, "test.toml").unwrap();
    assert_eq!(none.topology.cost, None);
    let empty = Scenario::from_toml_str(&with_cost(""), "test.toml").unwrap();
    assert_eq!(empty.topology.cost, Some(Cost::default()));
    let some = Scenario::from_toml_str(&with_cost("broker_workers = 8\nfsync_ms = [1.0, 5.0]"), "test.toml").unwrap();
    let cost = some.topology.cost.clone().unwrap();
    assert_eq!((cost.broker_workers, cost.fsync_ms, cost.send_us), (8, [1.0, 5.0], Cost::default().send_us));
    // Resolved options print every field of the model.
    let options = some.resolve(1).options();
    assert!(options.iter().any(|(k, v)| k == "topology.cost.send_us" && v == "10.7"), "{options:?}");
}

#[test]
fn a_cost_model_out_of_range_is_refused() {
    assert_error(&with_cost("broker_workers = 0"), "topology.cost.broker_workers: must be at least 1");
    assert_error(&with_cost("send_us = -1.0"), "topology.cost.send_us: must be a finite number >= 0");
    assert_error(&with_cost("disk_mib_s = 0.0"), "topology.cost.disk_mib_s: must be a finite number > 0");
    assert_error(&with_cost("fsync_ms = [2.0, 1.0]"), "topology.cost.fsync_ms: the 99th percentile must be at least the median");
    assert_error(&with_cost("link_latency_ms = [5.0, 1.0]"), "topology.cost.link_latency_ms: must be [low, high]");
    assert_error(&with_cost("clock_step_us = 0"), "topology.cost.clock_step_us: must be in 1..=1000, got 0");
    assert_error(&with_cost("clock_step_us = 2000"), "topology.cost.clock_step_us: must be in 1..=1000, got 2000");
    assert_error(&with_cost("worker_stall_ms = [2.0, 1.0]"), "topology.cost.worker_stall_ms: the 99th percentile must be at least the median");
    assert_error(&with_cost("worker_stall_every_ms = -1.0"), "topology.cost.worker_stall_every_ms: must be a finite number >= 0");
    assert_error(&with_cost("worker_late_share = 1.5"), "topology.cost.worker_late_share: must be in 0.0..=1.0");
    assert_error(&with_cost("sync_send_us = -8.0"), "topology.cost.sync_send_us: must be a finite number >= 0");
    assert_error(&with_cost("flush_us = -1.0"), "topology.cost.flush_us: must be a finite number >= 0");
    assert_error(&with_cost("cpu = 3"), "unknown field `cpu`");
}

/// Every capacity experiment's scenario (`experiments/<name>/<name>.toml`)
/// loads, validates and has a cost model, so a change of the format cannot
/// leave them behind unnoticed.
#[test]
fn every_experiment_loads_with_a_cost_model() {
    let dir = catalogue_dir().join("../experiments");
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).expect("experiments/ exists") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if !path.is_dir() {
            continue;
        }
        let scenario = Scenario::load(path.join(format!("{name}.toml"))).unwrap_or_else(|e| panic!("{e}"));
        assert!(scenario.topology.cost.is_some(), "{name} has no [topology.cost]");
        found += 1;
    }
    assert!(found >= 5, "only {found} experiments in {}", dir.display());
}

/// A link-latency event is read, resolved to its two ends, and written back
/// as it was read; swarm mode draws it like any other kind.
#[test]
fn a_link_latency_fault_resolves_to_its_two_ends_and_swarm_draws_it() {
    let text = format!(
        "{}\n[[nemesis.events]]\nat_s = 7\nfault = \"link-latency\"\ntargets = [\"broker-0\"]\nfrom = [\"random-namesrv\"]\nlatency_ms = [10, 50]\nheal_after_s = 3\n",
        BASE
    );
    let scenario = Scenario::from_toml_str(&text, "link.toml").unwrap_or_else(|e| panic!("{e}"));
    let again = Scenario::from_toml_str(&scenario.to_toml_string(), "again.toml").unwrap();
    assert_eq!(again, scenario);
    let resolved = scenario.resolve(3);
    let link = resolved.schedule.iter().find(|f| f.fault.kind() == FaultKind::LinkLatency).expect("the link-latency fault");
    let Fault::LinkLatency { targets, from, latency_ms } = &link.fault else { unreachable!() };
    assert_eq!((targets.as_slice(), latency_ms), (&["broker-0".to_string()][..], &[10, 50]));
    assert!(from.len() == 1 && from[0].starts_with("namesrv-"), "{from:?}");
    let drawn = (1..50).any(|seed| find("swarm").unwrap().resolve(seed).schedule.iter().any(|f| f.fault.kind() == FaultKind::LinkLatency));
    assert!(drawn, "no swarm seed of 1..50 drew a link-latency fault");
}
