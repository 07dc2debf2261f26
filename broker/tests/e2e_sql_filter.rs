//! Real mode, end to end, with the binaries on loopback: SQL92 property
//! filters. `mqadmin send --property` stores messages with user
//! properties; `mqadmin consume --sql` takes only those its condition
//! selects, evaluated on a broker with `enablePropertyFilter=true`; a
//! malformed condition is refused with the parser's reason.
#![cfg(not(madsim))]

mod common;

use common::*;

#[test]
fn mqadmin_consumes_only_what_an_sql92_condition_selects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = namesrv_and_broker(&mut kill, dir.path(), "broker-q", "enablePropertyFilter=true\n");
    let (code, _, err) = mqadmin(&namesrv, &["update-topic", "-t", "releases", "-w", "2", "-r", "2"]);
    assert_eq!(code, 0, "{err}");
    for (body, env, region) in [("gray-hz", "gray", "hz"), ("prod-hz", "prod", "hz"), ("gray-bj", "gray", "bj"), ("plain", "", "")] {
        let mut args = vec!["send", "-t", "releases", "-p", body, "--tags", "Release"];
        let (env_prop, region_prop) = (format!("env={env}"), format!("region={region}"));
        if !env.is_empty() {
            args.extend(["--property", &env_prop, "--property", &region_prop]);
        }
        let (code, _, err) = mqadmin(&namesrv, &args);
        assert_eq!(code, 0, "{err}");
    }
    let condition = "env = 'gray' AND region IN ('hz', 'sh') OR env IS NULL";
    let (code, out, err) = mqadmin(&namesrv, &["consume", "-t", "releases", "-g", "gray-testers", "--sql", condition, "-c", "2", "--wait-s", "20"]);
    assert_eq!(code, 0, "{err}");
    let bodies: Vec<&str> = out.lines().filter_map(|l| l.split(" body=").nth(1)).collect();
    let mut sorted = bodies.clone();
    sorted.sort();
    assert_eq!(sorted, ["gray-hz", "plain"], "{out}");

    let (code, _, err) = mqadmin(&namesrv, &["consume", "-t", "releases", "-g", "broken", "--sql", "env = gray'", "-c", "1", "--wait-s", "5"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad SQL92 filter") && err.contains("no closing quote"), "{err}");
}
