//! Real mode, in one process over loopback TCP: three controllers agree on
//! a broker group's master. The first master is elected from the replicas
//! that heartbeat; the master grows its sync-state set; when its heartbeats
//! stop, a member of the set is elected in a new term and the deposed
//! master is fenced; the leader controller stops and another leads with the
//! same state; the stopped one comes back from its disk and catches up.
#![cfg(not(madsim))]

use broker::clock::Clock;
use broker::controller::{Controller, ControllerClient, ControllerConfig};
use broker::net::ConnectionPool;
use broker::command::{AlterSyncStateSet, ControllerHeartbeat, GetControllerState, GetReplicaInfo, Refused, ReplicaInfo};
use broker::Error;
use broker::store::MemDisk;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

struct Running {
    controller: Arc<Controller>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(id: u64, peers: &BTreeMap<u64, String>, listener: TcpListener, disk: &MemDisk) -> Running {
    let mut config = ControllerConfig::new(id, peers.clone());
    config.broker_timeout_ms = 1_500;
    config.scan_interval_ms = 200;
    config.first_election_grace_ms = 500;
    let controller = Controller::open(config, Arc::new(disk.clone()), Clock::new()).await.expect("controller opens");
    let serving = tokio::spawn(controller.clone().serve(listener));
    Running { controller, serving }
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn heartbeat(client: &ControllerClient, id: u64) -> Option<ReplicaInfo> {
    let heartbeat = ControllerHeartbeat {
        broker_name: "broker-a".into(),
        broker_id: id,
        addr: format!("127.0.0.1:{}", 20_000 + id),
        epoch: 0,
        max_offset: 100 * id,
        serving: false,
        last_term: 0,
    };
    client.call(heartbeat).await.ok()
}

#[tokio::test]
async fn controllers_elect_fence_and_survive_their_leader() {
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 0..3u64 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        peers.insert(id, listener.local_addr().unwrap().to_string());
        listeners.push(listener);
    }
    let disks: Vec<MemDisk> = (0..3).map(|_| MemDisk::new()).collect();
    let mut running = Vec::new();
    for (id, listener) in listeners.into_iter().enumerate() {
        running.push(Some(start(id as u64, &peers, listener, &disks[id]).await));
    }
    let client = ControllerClient::new(peers.values().cloned().collect(), Arc::new(ConnectionPool::new()), Duration::from_secs(2));

    // Both replicas heartbeat; the first master is one of them, in term 1.
    let first = eventually("a first master", async || {
        heartbeat(&client, 0).await?;
        let info = heartbeat(&client, 1).await?;
        info.master_id.map(|m| (m, info))
    })
    .await;
    let (master, first_info) = first;
    assert_eq!(first_info.master_epoch, 1);
    assert_eq!(first_info.sync_state_set, vec![master]);
    // The lowest id of the replicas heard within the grace.
    assert_eq!(master, 0);
    assert_eq!(first_info.master_addr.as_deref(), Some("127.0.0.1:20000"));

    // The master takes replica 1 into its sync-state set.
    let alter = |master_id, master_epoch, set_epoch, set: Vec<u64>| AlterSyncStateSet {
        broker_name: "broker-a".into(),
        master_id,
        master_epoch,
        sync_state_set_epoch: set_epoch,
        sync_state_set: set,
    };
    let grown = client.call(alter(0, 1, first_info.sync_state_set_epoch, vec![0, 1])).await.expect("set grows");
    assert_eq!(grown.sync_state_set, vec![0, 1]);

    // The master goes silent: replica 1, in the set, is elected in term 2.
    let second = eventually("a second master", async || heartbeat(&client, 1).await.filter(|i| i.master_epoch == 2)).await;
    assert_eq!((second.master_id, second.sync_state_set.clone()), (Some(1), vec![1]));

    // The deposed master of term 1 is fenced.
    let fenced = client.call(alter(0, 1, second.sync_state_set_epoch, vec![0])).await.expect_err("a deposed master is fenced");
    let Error::Refused(fenced) = fenced else { panic!("not a refusal: {fenced}") };
    assert_eq!(fenced.kind, Refused::ControllerFenced, "{}", fenced.reason);
    assert!(fenced.reason.contains("not the master"), "{}", fenced.reason);

    // The leader controller stops; another leads with the same state.
    let leader = eventually("a known leader", async || {
        let state = client.call(GetControllerState).await.ok()?;
        state.leader_id
    })
    .await;
    let stopped = running[leader as usize].take().unwrap();
    stopped.serving.abort();
    stopped.controller.shutdown().await;
    drop(stopped);
    let after = eventually("the group from a new leader", async || {
        client.call(GetReplicaInfo { broker_name: "broker-a".into() }).await.ok()
    })
    .await;
    assert_eq!((after.master_id, after.master_epoch), (Some(1), 2));

    // The stopped controller comes back from its disk and catches up.
    let listener = TcpListener::bind(&peers[&leader]).await.unwrap();
    let back = start(leader, &peers, listener, &disks[leader as usize]).await;
    let pool = ConnectionPool::new();
    eventually("the restarted controller to catch up", async || {
        let state = pool.call(&peers[&leader], GetControllerState, Duration::from_secs(2)).await.ok()?;
        state.groups.iter().find(|g| g.broker_name == "broker-a" && g.master_epoch == 2).map(|_| ())
    })
    .await;
    back.serving.abort();
    back.controller.shutdown().await;
    for r in running.into_iter().flatten() {
        r.serving.abort();
        r.controller.shutdown().await;
    }
}
