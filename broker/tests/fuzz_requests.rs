//! The request-path fuzz (`src/bin/fuzz.rs`) for a bounded number of cases,
//! so every test run sends the broker a few thousand hostile frames. The
//! long run is `cargo xtask fuzz --cases 100000`.
#![cfg(not(madsim))]

use std::process::Command;

#[test]
fn the_request_path_survives_two_thousand_fuzzed_frames() {
    let output = Command::new(env!("CARGO_BIN_EXE_fuzz")).args(["--cases", "2000", "--seed", "7"]).output().expect("fuzz runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the fuzz failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("panics=0") && stdout.contains("unreadable=0"), "{stdout}");
    let acknowledged: u64 = stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix("acknowledged-sends="))
        .and_then(|n| n.parse().ok())
        .expect("the summary names the acknowledged sends");
    assert!(acknowledged > 100, "too few sends were acknowledged to check anything: {stdout}");
}
