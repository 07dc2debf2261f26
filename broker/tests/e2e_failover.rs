//! Real mode, end to end, with the binaries on loopback: three
//! `controller` processes, two brokers of one group in controller mode
//! (SYNC_MASTER, SYNC_FLUSH) and a name server. Under a stream of sends the
//! master is SIGKILLed: the controllers elect the other broker in a new
//! term, sends resume on it, and every message acknowledged SEND_OK, before
//! or after the kill, is consumed from the new master.
#![cfg(not(madsim))]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONTROLLER: &str = env!("CARGO_BIN_EXE_controller");

/// `mqadmin sync-state`: (master id, epoch, sync-state set) of broker-f.
fn sync_state(namesrv: &str, controllers: &str) -> Option<(String, u64, String)> {
    let (code, out, _) = mqadmin(namesrv, &["sync-state", "--controllers", controllers]);
    if code != 0 {
        return None;
    }
    let row = out.lines().find(|l| l.starts_with("broker-f "))?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    Some((cells[1].to_string(), cells[3].parse().ok()?, cells[4].to_string()))
}

fn eventually<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn sends_resume_on_the_new_master_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = free_addr();
    start(&mut kill, NAMESRV, &["--listen", &namesrv, "--scan-interval-ms", "1000"], &dir.path().join("namesrv.log"), "namesrv listening on ");
    let controller_addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let peers = controller_addrs.iter().enumerate().map(|(i, a)| format!("n{i}-{a}")).collect::<Vec<_>>().join(";");
    for i in 0..3 {
        let store = dir.path().join(format!("controller-{i}"));
        let args = ["--id", &i.to_string(), "--peers", &peers, "--store", store.to_str().unwrap(), "--broker-timeout-ms", "3000"];
        start(&mut kill, CONTROLLER, &args, &dir.path().join(format!("controller-{i}.log")), "controller ");
    }
    let controllers = controller_addrs.join(";");
    let brokers = [free_addr(), free_addr()];
    for (id, addr) in brokers.iter().enumerate() {
        let body = format!(
            "brokerName=broker-f\nbrokerId={id}\nbrokerRole=SYNC_MASTER\nflushDiskType=SYNC_FLUSH\nnamesrvAddr={namesrv}\n\
             registerNameServerPeriod=1000\ncontrollerAddr={controllers}\nenableControllerMode=true\n\
             haMaxTimeSlaveNotCatchup=3000\nlistenAddr={addr}\nstorePathRootDir={}\n",
            dir.path().join(format!("b{id}")).display()
        );
        let path = conf(dir.path(), &format!("b{id}.conf"), &body);
        start(&mut kill, BROKER, &["-c", &path], &dir.path().join(format!("b{id}.log")), "broker broker-f listening on ");
    }

    // A master is elected, and its slave joins the sync-state set.
    let (master, epoch, _) = eventually("a master with its slave in sync", 40, || {
        sync_state(&namesrv, &controllers).filter(|(m, _, set)| m != "none" && set.contains(','))
    });
    assert_eq!(epoch, 1);
    eventually("the topic on the master", 20, || (mqadmin(&namesrv, &["update-topic", "-t", "ledger", "-w", "2", "-r", "2"]).0 == 0).then_some(()));

    // Sends, one message a process, each with its own key, until stopped.
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let after_kill = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, after_kill, stop, killed, namesrv) = (acked.clone(), after_kill.clone(), stop.clone(), killed.clone(), namesrv.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("k-{i}");
                let (_, out, _) = mqadmin(&namesrv, &["send", "-t", "ledger", "-p", &format!("body-{i}"), "-k", &key]);
                if out.contains("SEND_OK") {
                    acked.lock().unwrap().insert(key);
                    if killed.load(Ordering::SeqCst) {
                        *after_kill.lock().unwrap() += 1;
                    }
                }
                i += 1;
            }
        })
    };
    eventually("sends acknowledged before the kill", 20, || (acked.lock().unwrap().len() >= 20).then_some(()));

    // SIGKILL the master (child 4 is broker 0, child 5 broker 1).
    let index = 4 + master.parse::<usize>().expect("master id");
    let process = kill.0.get_mut(index).expect("master process");
    process.kill().expect("SIGKILL the master");
    let _ = process.wait();
    killed.store(true, Ordering::SeqCst);
    let (new_master, new_epoch, _) = eventually("a new master", 40, || sync_state(&namesrv, &controllers).filter(|(m, _, _)| *m != master));
    assert_eq!(new_epoch, 2, "elected in a new term");
    eventually("sends acknowledged by the new master", 40, || (*after_kill.lock().unwrap() >= 20).then_some(()));
    stop.store(true, Ordering::SeqCst);
    sender.join().expect("sender");

    // Every acknowledged message is there, on the new master.
    let acked = acked.lock().unwrap().clone();
    let want = (acked.len() + 50).to_string();
    let (_, out, _) = mqadmin(&namesrv, &["consume", "-t", "ledger", "-g", "audit", "--from", "first", "-c", &want, "--wait-s", "20"]);
    let consumed: BTreeSet<String> =
        out.lines().filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("keys="))).map(str::to_string).collect();
    let missing: Vec<&String> = acked.difference(&consumed).collect();
    assert!(missing.is_empty(), "acknowledged but not consumed from new master {new_master}: {missing:?}");
}
