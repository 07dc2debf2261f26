//! Reports of a small hand-written run: the Markdown is a snapshot, the
//! HTML is checked for structure and escaping, the sweep index for totals
//! and links.

use checker::history::HistoryBuilder;
use checker::{
    check_all, CheckConfig, ConsumeOutcome, Event, Expect, GroupSpec, Kind, Op, Validity,
};
use reports::{
    html, markdown, sweep_index_html, sweep_index_markdown, write_run, RunReport, SweepEntry,
};

/// A 6-second run: broker-0 is killed and restarted, a partition heals, the
/// tail starts at 4 s; m3 is acknowledged but never consumed.
fn sample(scenario: &str) -> RunReport {
    let mut h = HistoryBuilder::new();
    let send = |msg_id: &str| {
        Event::new(0, "producer-1", Kind::Invoke, Op::Send)
            .msg_id(msg_id)
            .topic("orders")
            .key(msg_id.replace('m', "k"))
    };
    h.send(100, send("m1"), Some((104, Kind::Ok)));
    h.send(200, send("m2"), Some((230, Kind::Ok)));
    h.nemesis(1000, Op::Fault, "kill", Some("broker-0"));
    h.send(1100, send("m3"), Some((1150, Kind::Ok)));
    h.push(
        Event::new(1200, "nemesis", Kind::Info, Op::Fault)
            .fault("partition")
            .target("broker-1")
            .detail("{broker-1} | rest"),
    );
    h.deliver(
        1300,
        "consumer-billing-1",
        "billing",
        "m1",
        ConsumeOutcome::Success,
    );
    h.nemesis(2000, Op::Heal, "kill", Some("broker-0"));
    h.nemesis(2500, Op::Fault, "clock-skew", Some("broker-1"));
    h.nemesis(3000, Op::Heal, "partition", Some("broker-1"));
    h.deliver(
        3200,
        "consumer-billing-1",
        "billing",
        "m2",
        ConsumeOutcome::RetryLater,
    );
    h.deliver(
        3400,
        "consumer-billing-1",
        "billing",
        "m2",
        ConsumeOutcome::Success,
    );
    h.deliver(
        3500,
        "consumer-billing-2",
        "billing",
        "m2",
        ConsumeOutcome::Success,
    );
    h.harness(4000, Op::TailStart);
    h.harness(6000, Op::End);
    let history = h.build();
    let cfg = CheckConfig {
        groups: vec![GroupSpec {
            group: "billing".into(),
            topic: "orders".into(),
            tags: "*".into(),
            sql: None,
            broadcast: false,
            pop: false,
            idempotent: true,
            max_reconsume_times: 16,
            replies: false,
        }],
        fifo_topics: vec![],
        expect: Expect {
            liveness_bound_ms: Some(1000),
            ..Expect::default()
        },
    };
    RunReport {
        scenario: scenario.to_owned(),
        seed: 42,
        verdict: check_all(&history, &cfg),
        digest: checker::digest_hex(&history),
        history,
        resolved_options: vec![
            ("topology.brokers".into(), "2".into()),
            ("flush".into(), "sync".into()),
        ],
        repro: format!("mqsim run {scenario} --seed 42"),
        sim_duration_ms: 6000,
        wall_ms: 3,
    }
}

#[test]
fn markdown_report_has_verdict_latency_faults_options_and_repro() {
    let report = sample("broker-crash");
    assert_eq!(report.verdict.validity, Validity::Invalid);
    let md = markdown(&report);
    assert!(md.starts_with("# mqsim run: broker-crash seed 42\n"));
    assert!(
        md.contains(
            "| lost | invalid | acknowledged=3 dead-lettered=0 destroyed=0 lost=1 unsubscribed=0 | lost: m3 "
        ),
        "{md}"
    );
    assert!(
        md.contains("| order | valid (not expected by this scenario) |  |  |"),
        "{md}"
    );
    assert!(
        md.contains("| end-to-end | 2 | 1200 | 3200 | 3200 | 3200 | 3200 |"),
        "{md}"
    );
    assert!(md.contains("| send | 3 | 30 | 50 | 50 | 50 | 50 |"), "{md}");
    assert!(
        md.contains("| 1200 | partition | broker-1 | {broker-1} \\| rest |"),
        "{md}"
    );
    assert!(md.contains("```sh\nmqsim run broker-crash --seed 42\n```"));
    insta::assert_snapshot!(md);
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let report = sample("<script>alert('x')</script>");
    let page = html(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    assert!(
        !page.contains("<script"),
        "an input string reached the page unescaped"
    );
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    // No external resource: the only URLs are the SVG namespaces.
    assert_eq!(
        page.matches("http").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(!page.contains("src=") && !page.contains("<link"));
    // Timeline, throughput and latency charts.
    assert_eq!(page.matches("<svg").count(), 3);
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    assert_eq!(
        page.matches("<table>").count(),
        page.matches("</table>").count()
    );
    assert_eq!(page.matches("<tr>").count(), page.matches("</tr>").count());
    // Kill..restart and partition..heal are bands; the clock skew a tick; the tail a dashed line.
    assert!(
        page.contains("<title>kill broker-0: 1.000 s to 2.000 s</title></rect>"),
        "{page}"
    );
    assert!(page.contains("<title>partition broker-1: 1.200 s to 3.000 s</title></rect>"));
    assert!(page.contains("<title>clock-skew broker-1 at 2.500 s</title></line>"));
    assert!(page.contains("tail-start at 4.000 s"));
    assert!(page.contains("acknowledged sends/s") && page.contains("successful deliveries/s"));
    assert!(page.contains("<polyline"));
    assert!(page.contains(r#"<span class="invalid">invalid</span>"#));
}

#[test]
fn write_run_writes_the_four_files() {
    let report = sample("broker-crash");
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("broker-crash-42");
    write_run(&run_dir, &report).unwrap();
    let read = |name: &str| std::fs::read_to_string(run_dir.join(name)).unwrap();
    assert_eq!(read("report.md"), markdown(&report));
    assert_eq!(read("report.html"), html(&report));
    assert_eq!(
        checker::parse_jsonl(&read("history.jsonl")).unwrap(),
        report.history
    );
    let verdict: checker::Verdict = serde_json::from_str(&read("verdict.json")).unwrap();
    assert_eq!(verdict, report.verdict);
}

#[test]
fn sweep_index_totals_and_links() {
    let entry = |seed: u64, validity: Validity, report_dir: Option<&str>| SweepEntry {
        scenario: "failover-sync".into(),
        seed,
        validity,
        digest: format!("{seed:016x}"),
        counts: "lost=0 unexpected=0 dup=0 order=0 eo=0".into(),
        repro: format!("mqsim run failover-sync --seed {seed}"),
        report_dir: report_dir.map(str::to_owned),
        reached: Vec::new(),
        sim_ms: 90_000,
        invalid_checks: Vec::new(),
        figures: Default::default(),
    };
    let entries = [
        entry(1, Validity::Valid, None),
        entry(2, Validity::Invalid, Some("failover-sync-2")),
        entry(3, Validity::Unknown, None),
    ];
    let md = sweep_index_markdown(&entries, &[]);
    assert!(md.contains("**3 runs: 1 pass, 1 fail, 1 unknown**"), "{md}");
    assert!(md.contains("| failover-sync | 2 | FAIL | lost=0 unexpected=0 dup=0 order=0 eo=0 | `0000000000000002` | `mqsim run failover-sync --seed 2` | [report](failover-sync-2/report.md) |"), "{md}");
    assert!(md.contains("| failover-sync | 1 | PASS |"));
    let page = sweep_index_html(&entries, &[]);
    assert!(page.contains(r#"<a href="failover-sync-2/report.html">report</a>"#));
    assert!(page.contains(r#"<span class="invalid">FAIL</span>"#));
    assert_eq!(page.matches("<tr>").count(), 4);
}

#[test]
fn reached_table_counts_seeds_per_mark_and_flags_missed_requirements() {
    let entry = |scenario: &str, seed: u64, reached: &[&str]| SweepEntry {
        scenario: scenario.into(),
        seed,
        validity: Validity::Valid,
        digest: format!("{seed:016x}"),
        counts: String::new(),
        repro: String::new(),
        report_dir: None,
        reached: reached.iter().map(|m| m.to_string()).collect(),
        sim_ms: 1,
        invalid_checks: Vec::new(),
        figures: Default::default(),
    };
    let entries = [
        entry("power-loss", 1, &["torn-write-cut"]),
        entry("power-loss", 2, &[]),
        entry("power-loss", 3, &["torn-write-cut", "duplicate-delivered"]),
        entry("partition", 1, &[]),
    ];
    let required = |scenario: &str| match scenario {
        "power-loss" => vec!["torn-write-cut".to_string()],
        _ => vec!["ack-during-partition".to_string()],
    };
    let rows = reports::reached_rows(&entries, &["torn-write-cut"], &required);
    let torn = rows.iter().find(|r| r.scenario == "power-loss" && r.mark == "torn-write-cut").unwrap();
    assert_eq!((torn.seeds_reached, torn.seeds, torn.required, torn.missed()), (2, 3, true, false));
    let ack = rows.iter().find(|r| r.scenario == "partition" && r.mark == "ack-during-partition").unwrap();
    assert!(ack.missed());
    let table = reports::reached_table_markdown(&rows);
    assert!(table.starts_with("| scenario | seeds | ack-during-partition | duplicate-delivered | torn-write-cut |"), "{table}");
    assert!(table.contains("| power-loss | 3 |  | 33% | 67%* |"), "{table}");
    assert!(table.contains("| partition | 1 | MISSED* |  | 0% |"), "{table}");
    let index = reports::sweep_index_markdown(&entries, &rows);
    assert!(index.contains("## Reached marks") && index.contains(&table), "{index}");
    let page = reports::sweep_index_html(&entries, &rows);
    assert!(page.contains(r#"<td class="num invalid">MISSED*</td>"#), "{page}");
    assert!(page.contains(r#"<td class="num">67%*</td>"#), "{page}");
}

/// A run with two transactions (one committed on check-back by another
/// producer, one rolled back) and a timer: the report lists the
/// transactions, draws the check-backs on the timeline, and gives timer
/// lateness and check-back resolution percentiles.
#[test]
fn transactions_check_backs_and_timer_lateness_are_reported() {
    use checker::TxState;
    let mut h = HistoryBuilder::new();
    let tx = |msg_id: &str, truth: TxState| {
        Event::new(0, "producer-0", Kind::Invoke, Op::Send).msg_id(msg_id).topic("payments").group("pay").tx(truth)
    };
    h.send(100, tx("t1", TxState::Commit), Some((110, Kind::Ok)));
    h.push(Event::new(120, "producer-0", Kind::Info, Op::TxEnd).msg_id("t1").tx(TxState::Unknown));
    h.push(Event::new(2_500, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t1").tx(TxState::Commit));
    h.deliver(2_600, "consumer-billing-0", "billing", "t1", ConsumeOutcome::Success);
    h.send(200, tx("t2", TxState::Rollback), Some((210, Kind::Ok)));
    h.push(Event::new(220, "producer-0", Kind::Ok, Op::TxEnd).msg_id("t2").tx(TxState::Rollback));
    let timer = Event::new(0, "producer-2", Kind::Invoke, Op::Send).msg_id("w1").topic("wakeups").deliver_at_ms(3_000);
    h.send(300, timer, Some((310, Kind::Ok)));
    h.deliver(3_040, "consumer-alarms-0", "alarms", "w1", ConsumeOutcome::Success);
    h.harness(4_000, Op::End);
    let history = h.build();
    let report = RunReport {
        scenario: "tx".into(),
        seed: 1,
        verdict: check_all(&history, &CheckConfig::default()),
        history,
        resolved_options: Vec::new(),
        repro: "cargo mqsim run tx --seed 1".into(),
        digest: "0".into(),
        sim_duration_ms: 4_000,
        wall_ms: 1,
    };
    let latency = report.latency();
    assert_eq!((latency.timer_lateness.count, latency.timer_lateness.max), (1, 40));
    assert_eq!((latency.check_back.count, latency.check_back.max), (1, 2_390), "from the half's ack to the commit answer");
    let md = markdown(&report);
    assert!(md.contains("| timer lateness | 1 |") && md.contains("| check-back resolution | 1 |"), "{md}");
    assert!(md.contains("## Transactions\n\n2 transactions"), "{md}");
    assert!(md.contains("| t1 | commit | unknown (not taken) | commit by producer-1 at 2500 ms | delivered at 2600 ms to billing |"), "{md}");
    assert!(md.contains("| t2 | rollback | rollback (taken) |  | not delivered |"), "{md}");
    let page = html(&report);
    assert!(page.contains("check-backs") && page.contains("t1 answered commit by producer-1"), "the timeline has no check-back lane");
    assert!(page.contains("<h2>Timer lateness</h2>"), "no timer lateness chart");
}

#[test]
fn sweep_figures_give_median_p99_and_max_across_seeds() {
    let entry = |seed: u64, late_max: Option<u64>| SweepEntry {
        scenario: "timers".into(),
        seed,
        validity: Validity::Valid,
        digest: "0".into(),
        counts: String::new(),
        repro: String::new(),
        report_dir: None,
        reached: Vec::new(),
        sim_ms: 1,
        invalid_checks: Vec::new(),
        figures: late_max.map(|v| ("delay.late-max-ms".to_string(), v)).into_iter().collect(),
    };
    assert_eq!(reports::figures_text(&[entry(1, None)]), None);
    let entries: Vec<SweepEntry> = (1..=10).map(|s| entry(s, Some(s * 10))).chain([entry(11, None)]).collect();
    let text = reports::figures_text(&entries).unwrap();
    assert!(text.contains("delay.late-max-ms") && text.contains("seeds=10") && text.contains("median=50") && text.contains("p99=100") && text.contains("max=100"), "{text}");
}
