//! Real mode, end to end, with the binaries on loopback: a SYNC_MASTER and
//! its slave. Every message `mqadmin send` had acknowledged SEND_OK is read
//! from the slave after the master is SIGKILLed, by a consumer that was
//! told nothing: its pulls to the master fail and go to the slave.
#![cfg(not(madsim))]

mod common;

use common::*;

#[test]
fn messages_a_sync_master_acknowledged_are_read_from_its_slave_once_it_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let (master, slave) = (free_addr(), free_addr());
    let common = format!("brokerName=broker-r\nnamesrvAddr={namesrv}\nregisterNameServerPeriod=1000\nflushDiskType=SYNC_FLUSH\n");
    let master_conf = conf(
        dir.path(),
        "master.conf",
        &format!("{common}listenAddr={master}\nbrokerRole=SYNC_MASTER\nstorePathRootDir={}\n", dir.path().join("m").display()),
    );
    let slave_conf = conf(
        dir.path(),
        "slave.conf",
        &format!(
            "{common}listenAddr={slave}\nbrokerRole=SLAVE\nbrokerId=1\nhaMasterAddress={master}\nstorePathRootDir={}\n",
            dir.path().join("s").display()
        ),
    );
    start(&mut kill, BROKER, &["-c", &master_conf], &dir.path().join("master.log"), "broker broker-r listening on ");
    start(&mut kill, BROKER, &["-c", &slave_conf], &dir.path().join("slave.log"), "broker broker-r listening on ");
    assert_eq!(mqadmin(&namesrv, &["update-topic", "-t", "ledger", "-w", "2", "-r", "2"]).0, 0);

    // The first sends may find the slave not pulling yet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut probes = 0;
    loop {
        let (code, out, _) = mqadmin(&namesrv, &["send", "-t", "ledger", "-p", "probe", "-k", "probe"]);
        // A probe the master stored without its slave is a message too.
        probes += usize::from(out.contains("broker-r@"));
        if code == 0 && out.contains("SEND_OK") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slave never caught up: {out}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, out, err) = mqadmin(&namesrv, &["send", "-t", "ledger", "-p", "entry", "-k", "acct-7", "-c", "20"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("SEND_OK").count(), 20, "{out}");
    let (_, cluster, _) = mqadmin(&namesrv, &["cluster-list"]);
    assert!(cluster.contains("SLAVE") && cluster.contains("MASTER"), "{cluster}");

    let master_process = kill.0.get_mut(1).expect("master");
    master_process.kill().expect("SIGKILL the master");
    let _ = master_process.wait();

    let count = (probes + 20).to_string();
    let (code, out, err) = mqadmin(&namesrv, &["consume", "-t", "ledger", "-g", "audit", "--from", "first", "-c", &count, "--wait-s", "40"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("keys=acct-7")).count(), 20, "{out}");
}
