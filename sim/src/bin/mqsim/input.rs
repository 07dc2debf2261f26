//! Reading what the user gave: scenarios, bugs, seed ranges, shards; bad
//! input is exit code 2.

use anyhow::{anyhow, Result};
use broker::bugs::Bug;
use scenarios::Scenario;

/// A failure of the input, exit code 2.
#[derive(Debug)]
pub(crate) struct BadInput(pub(crate) String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub(crate) fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow!(BadInput(msg.into()))
}

/// How the repro line names a scenario: its catalogue name, or the file it
/// was loaded from.
pub(crate) fn label_of(arg: &str, scenario: &Scenario) -> String {
    if arg.ends_with(".toml") || arg.contains('/') {
        arg.to_string()
    } else {
        scenario.name.clone()
    }
}

pub(crate) fn load(name: &str) -> Result<Scenario> {
    let result = if name.ends_with(".toml") || name.contains('/') {
        Scenario::load(name)
    } else {
        scenarios::find(name)
    };
    let scenario = result.map_err(|e| bad(e.to_string()))?;
    check_supported(&scenario)?;
    Ok(scenario)
}

pub(crate) fn check_supported(scenario: &Scenario) -> Result<()> {
    let known = sim::recorder::known_marks();
    for (i, mark) in scenario.expect.reached.iter().enumerate() {
        if !known.contains(&mark.as_str()) {
            return Err(bad(format!(
                "{}: expect.reached[{i}]: unknown mark {mark:?}; known: {}",
                scenario.name,
                known.join(", ")
            )));
        }
    }
    for (i, group) in scenario.workload.consumers.iter().enumerate() {
        if let Some(sql) = &group.sql {
            broker::model::SqlFilter::parse(sql)
                .map_err(|e| bad(format!("{}: workload.consumers[{i}].sql: {e}", scenario.name)))?;
        }
    }
    Ok(())
}

pub(crate) fn catalogue() -> Result<Vec<Scenario>> {
    let all = scenarios::catalogue(scenarios::catalogue_dir()).map_err(|e| bad(e.to_string()))?;
    all.iter().try_for_each(check_supported)?;
    Ok(all)
}

pub(crate) fn parse_bugs(names: &[String]) -> Result<Vec<Bug>> {
    let bugs = names
        .iter()
        .map(|n| {
            Bug::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                bad(format!("unknown bug {n:?}; known: {}", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if !broker::bugs::set_active(&bugs) {
        return Err(bad("this build has no planted bugs: build with the `planted-bugs` feature (`cargo mqsim` does)"));
    }
    broker::bugs::set_active(&[]);
    Ok(bugs)
}

pub(crate) fn parse_seeds(range: &str) -> Result<std::ops::Range<u64>> {
    let (a, b) = range
        .split_once("..")
        .ok_or_else(|| bad(format!("--seeds {range:?}: expected A..B")))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| bad(format!("--seeds {range:?}: {a:?} is not a number")))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| bad(format!("--seeds {range:?}: {b:?} is not a number")))?;
    if a >= b {
        return Err(bad(format!("--seeds {range:?}: the range is empty")));
    }
    Ok(a..b)
}

pub(crate) fn jobs(requested: Option<usize>) -> usize {
    requested
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

/// Parses `K/N` (1 <= K <= N).
pub(crate) fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let parsed = text.split_once('/').and_then(|(k, n)| {
        Some((
            k.trim().parse::<usize>().ok()?,
            n.trim().parse::<usize>().ok()?,
        ))
    });
    match parsed {
        Some((k, n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(bad(format!(
            "--shard {text:?}: expected K/N with 1 <= K <= N, such as 1/2"
        ))),
    }
}

/// The seeds of `range` in shard `k` of `n`: every n-th seed from the k-th.
pub(crate) fn shard_seeds(range: std::ops::Range<u64>, shard: Option<(usize, usize)>) -> Vec<u64> {
    let (k, n) = shard.unwrap_or((1, 1));
    range
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, seed)| seed)
        .collect()
}
