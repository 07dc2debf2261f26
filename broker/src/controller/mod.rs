//! The controller (RocketMQ 5's controller mode): a few controller
//! processes agree, through Raft (openraft), on each broker group's master,
//! its term (epoch) and its sync-state set. Brokers heartbeat the leader;
//! when a master's heartbeats stop, the leader elects a new master from
//! the sync-state set, in a new term. Every answer about a group is read
//! through the leader after it has confirmed with a quorum that it still
//! leads (`ensure_linearizable`), never from its own belief: a controller
//! restarted from a crash, or cut off, may still think it leads at an old
//! term.

pub mod client;
mod network;
mod runtime;
pub mod state;
mod store;

pub use client::ControllerClient;
pub use runtime::Runtime;

use crate::bugs::{self, Bug};
use crate::clock::Clock;
use crate::net::{ConnectionPool, Service};
use crate::protocol::{Request, Response};
use crate::command::{self, AlterSyncStateSet, ControllerHeartbeat, ControllerView, GetReplicaInfo, RaftRpc, Refusal, Refused, ReplicaInfo};
use crate::store::Disk;
use futures::future::BoxFuture;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use serde::Serialize;
use state::{Command, Group, Outcome};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

openraft::declare_raft_types!(
    /// The controller's Raft types.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = Runtime,
);

/// Controller settings.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// This controller's id.
    pub id: u64,
    /// Every controller, this one included: id -> address.
    pub peers: BTreeMap<u64, String>,
    /// A replica silent this long is dead; a dead master is replaced
    /// (RocketMQ's `controllerBrokerHeartbeatTimeout`... 10 s there).
    pub broker_timeout_ms: u64,
    /// How often the leader looks for dead masters.
    pub scan_interval_ms: u64,
    /// A group's first master is elected this long after the leader first
    /// hears from the group, so that replicas starting together all
    /// register, and the lowest id among them is chosen.
    pub first_election_grace_ms: u64,
    /// Raft: the leader's heartbeat to followers.
    pub raft_heartbeat_ms: u64,
    /// Raft: a follower that hears no leader for a random time in
    /// `[min, max)` stands for election.
    pub election_timeout_ms: (u64, u64),
    /// Timeout of a call to another controller.
    pub request_timeout_ms: u64,
}

impl ControllerConfig {
    /// Defaults for controller `id` of `peers`.
    pub fn new(id: u64, peers: BTreeMap<u64, String>) -> ControllerConfig {
        ControllerConfig {
            id,
            peers,
            broker_timeout_ms: 5_000,
            scan_interval_ms: 1_000,
            first_election_grace_ms: 2_000,
            raft_heartbeat_ms: 300,
            election_timeout_ms: (1_000, 2_000),
            request_timeout_ms: 3_000,
        }
    }

    /// Parses `id:addr;id:addr;...` (RocketMQ's `controllerDLegerPeers`
    /// uses `n0-host:port;n1-host:port`; ids here are numbers).
    pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, String> {
        let mut peers = BTreeMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part.split_once('-').ok_or_else(|| format!("peer `{part}`: expected <id>-<host:port>"))?;
            let id: u64 = id.trim_start_matches('n').parse().map_err(|_| format!("peer `{part}`: `{id}` is not an id like n0"))?;
            addr.parse::<SocketAddr>().map_err(|e| format!("peer `{part}`: `{addr}` is not an address: {e}"))?;
            if peers.insert(id, addr.to_string()).is_some() {
                return Err(format!("peer id n{id} is named twice"));
            }
        }
        if peers.is_empty() {
            return Err("no controller peers".into());
        }
        Ok(peers)
    }
}

/// When the leader last heard from a replica, and what it said.
#[derive(Clone, Copy, Debug)]
pub struct Heard {
    /// When.
    pub at: Instant,
    /// Where its log ended.
    pub max_offset: u64,
    /// Whether it took writes.
    pub serving: bool,
    /// The last term its epoch file recorded.
    pub last_term: u64,
}

/// Whom to elect in a group that had a master (`group.epoch > 0`), given
/// the replicas heard from within the timeout: `None` while the master is
/// alive and serving, or while nobody may be elected safely.
///
/// A silent master is replaced by the live member of the sync-state set
/// whose log reaches furthest (every member holds every acknowledged
/// write). A master that restarted (alive, not serving, its term already
/// recorded) may have lost an unsynced tail its slaves hold, so it is a
/// candidate like the others, and only once every member of the set is
/// heard from: the one whose log reaches furthest holds all of it.
pub fn choose_master(group: &Group, alive: impl Fn(u64) -> Option<Heard>) -> Option<(u64, u64)> {
    let master = group.master?;
    let restarted = match alive(master) {
        Some(h) if h.serving || h.last_term < group.epoch || bugs::active(Bug::ResumeAfterRestart) => return None,
        Some(_) => true,
        // The planted defect: a silent master is never replaced.
        None if bugs::active(Bug::NoFailover) => return None,
        None => false,
    };
    let members = group.eligible();
    if restarted && members.iter().any(|id| alive(*id).is_none()) {
        return None;
    }
    members
        .iter()
        .filter(|id| restarted || **id != master)
        .filter_map(|id| alive(*id).map(|h| (h.max_offset, std::cmp::Reverse(*id))))
        .max()
        .map(|(offset, std::cmp::Reverse(id))| (offset, id))
}

/// One controller process.
pub struct Controller {
    config: ControllerConfig,
    clock: Clock,
    raft: Raft<TypeConfig>,
    machine: store::StateMachine,
    /// (group, replica) -> last heartbeat, as this controller heard it.
    heard: Mutex<BTreeMap<(String, u64), Heard>>,
    /// When this controller first heard from each group.
    first_heard: Mutex<BTreeMap<String, Instant>>,
    /// The term this controller last led in, to reset liveness when it
    /// starts leading (a new leader has heard nobody yet).
    led_term: Mutex<Option<u64>>,
}

impl Controller {
    /// Opens the controller's Raft log on `disk` and starts Raft; a
    /// controller with an empty log proposes the configured peers as the
    /// first membership (every controller may: the same membership from
    /// several is safe).
    pub async fn open(config: ControllerConfig, disk: Arc<dyn Disk>, clock: Clock) -> crate::Result<Arc<Controller>> {
        let storage = store::Storage::open(disk)?;
        let fresh = storage.is_empty();
        let machine = storage.machine.clone();
        let (log, state_machine) = openraft::storage::Adaptor::new(storage);
        let raft_config = Config {
            cluster_name: "mqsim-controller".into(),
            heartbeat_interval: config.raft_heartbeat_ms,
            election_timeout_min: config.election_timeout_ms.0,
            election_timeout_max: config.election_timeout_ms.1,
            snapshot_policy: SnapshotPolicy::Never,
            ..Config::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| crate::Error::Protocol(format!("raft config: {e}")))?);
        let network = network::Network::new(Arc::new(ConnectionPool::new()));
        let raft = Raft::new(config.id, raft_config, network, log, state_machine)
            .await
            .map_err(|e| crate::Error::Protocol(format!("raft failed to start: {e}")))?;
        if fresh {
            let members: BTreeMap<u64, BasicNode> = config.peers.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "controller already initialized");
            }
        }
        Ok(Arc::new(Controller {
            config,
            clock,
            raft,
            machine,
            heard: Mutex::new(BTreeMap::new()),
            first_heard: Mutex::new(BTreeMap::new()),
            led_term: Mutex::new(None),
        }))
    }

    /// Serves brokers, admin tools and the other controllers on
    /// `listener`, and elects masters while leading, forever.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(me.config.scan_interval_ms)).await;
                me.scan().await;
            }
        });
        crate::net::serve(listener, self).await
    }

    /// Stops Raft (the serving task is the caller's to stop).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller shutdown");
        }
    }

    /// The address of the leader this controller knows of.
    fn leader_addr(&self) -> Option<String> {
        let leader = self.raft.metrics().borrow().current_leader?;
        self.config.peers.get(&leader).cloned()
    }

    fn not_leader(&self, forward: Option<&ForwardToLeader<u64, BasicNode>>) -> Refusal {
        let addr = forward.and_then(|f| f.leader_node.as_ref().map(|n| n.addr.clone())).or_else(|| self.leader_addr());
        Refusal::new(Refused::ControllerNotLeader, addr.unwrap_or_default())
    }

    /// Confirms with a quorum that this controller leads and has applied
    /// everything committed before now; else why not.
    async fn confirm_leader(&self) -> command::Outcome<()> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(self.not_leader(Some(&f))),
            Err(e) => Err(Refusal::new(Refused::ControllerNotLeader, format!("{}: {e}", self.leader_addr().unwrap_or_default()))),
        }
    }

    /// Proposes a command; the outcome once it is applied.
    async fn propose(&self, command: Command) -> command::Outcome<Outcome> {
        match self.raft.client_write(command).await {
            Ok(written) => Ok(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(self.not_leader(Some(&f))),
            Err(e) => Err(Refusal::new(Refused::System, format!("the controller could not commit: {e}"))),
        }
    }

    fn info(&self, group: &str) -> Option<ReplicaInfo> {
        self.machine.applied.lock().expect("state machine").state.info(group)
    }

    /// A replica's heartbeat: alive, in this term, its log this long.
    /// Answered with its group's replica info once this controller has
    /// confirmed it leads.
    pub async fn heartbeat(&self, command: ControllerHeartbeat) -> command::Outcome<ReplicaInfo> {
        let ControllerHeartbeat { broker_name: group, broker_id: id, addr, max_offset, serving, last_term, .. } = command;
        // Heard as it arrives: on a slow network confirming the lead can
        // outlast the caller's timeout, and the replica is alive anyway.
        let now = self.clock.instant();
        let heard = Heard { at: now, max_offset, serving, last_term };
        self.heard.lock().expect("heard").insert((group.clone(), id), heard);
        self.first_heard.lock().expect("first heard").entry(group.clone()).or_insert(now);
        self.confirm_leader().await?;
        let known = self.info(&group).is_some_and(|info| info.replicas.iter().any(|(i, a)| *i == id && *a == addr));
        if !known {
            self.propose(Command::Register { group: group.clone(), id, addr }).await?;
        }
        self.info(&group).ok_or_else(|| Refusal::new(Refused::System, format!("group {group} vanished")))
    }

    /// A master replaces its group's sync-state set; a deposed master, or
    /// one naming a stale set, is fenced.
    pub async fn alter_sync_state_set(&self, command: AlterSyncStateSet) -> command::Outcome<ReplicaInfo> {
        let AlterSyncStateSet { broker_name: group, master_id: master, master_epoch, sync_state_set_epoch: set_epoch, sync_state_set: set } = command;
        let command = Command::AlterSyncStateSet { group, master, master_epoch, set_epoch, set: set.into_iter().collect() };
        match self.propose(command).await? {
            Outcome { refused: Some(why), .. } => Err(Refusal::new(Refused::ControllerFenced, why)),
            Outcome { info: Some(info), .. } => Ok(info),
            Outcome { info: None, .. } => Err(Refusal::new(Refused::System, "no such group")),
        }
    }

    /// A group's replica info, as the confirmed leader knows it.
    pub async fn replica_info(&self, command: GetReplicaInfo) -> command::Outcome<ReplicaInfo> {
        self.confirm_leader().await?;
        let group = command.broker_name;
        self.info(&group).ok_or_else(|| Refusal::new(Refused::NotFound, format!("no broker group {group} has registered")))
    }

    fn view(&self) -> ControllerView {
        let metrics = self.raft.metrics().borrow().clone();
        let applied = self.machine.applied.lock().expect("state machine");
        ControllerView {
            controller_id: self.config.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map(|id| id.index),
            groups: applied.state.groups.keys().filter_map(|g| applied.state.info(g)).collect(),
        }
    }

    /// The leader's round: a group without a master, or whose master is
    /// silent past the timeout or restarted, gets a new one (see
    /// [`choose_master`]; for a group's first master, the lowest live id).
    async fn scan(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            return;
        }
        let now = self.clock.instant();
        {
            // A new leader has heard from nobody: everyone gets a whole
            // timeout to reach it before being called dead.
            let mut led = self.led_term.lock().expect("led term");
            if *led != Some(metrics.current_term) {
                *led = Some(metrics.current_term);
                for heard in self.heard.lock().expect("heard").values_mut() {
                    heard.at = now;
                }
                return;
            }
        }
        let timeout = Duration::from_millis(self.config.broker_timeout_ms);
        let groups = self.machine.applied.lock().expect("state machine").state.groups.clone();
        let heard = self.heard.lock().expect("heard").clone();
        for (name, group) in groups {
            let alive = |id: u64| heard.get(&(name.clone(), id)).filter(|h| now.saturating_duration_since(h.at) < timeout).copied();
            let candidate = if group.epoch == 0 {
                // The first master: once the grace has passed, the lowest
                // live id (every replica starts with an empty log).
                let grace = Duration::from_millis(self.config.first_election_grace_ms);
                let first = self.first_heard.lock().expect("first heard").get(&name).copied();
                if first.is_none_or(|at| now.saturating_duration_since(at) < grace) {
                    continue;
                }
                group.replicas.keys().copied().find(|id| alive(*id).is_some()).map(|id| (alive(id).map_or(0, |h| h.max_offset), id))
            } else {
                choose_master(&group, alive)
            };
            let Some((offset, id)) = candidate else { continue };
            tracing::warn!(group = %name, master = ?group.master, epoch = group.epoch, elected = id, offset, "electing a master");
            match self.propose(Command::Elect { group: name.clone(), epoch: group.epoch, master: id }).await {
                Ok(Outcome { refused: Some(why), .. }) => tracing::info!(group = %name, why = %why, "election refused"),
                Ok(_) => {}
                Err(refusal) => tracing::info!(group = %name, remark = %refusal.reason, "election not committed"),
            }
        }
    }

    /// One of openraft's messages from another controller, answered with
    /// openraft's reply, both as JSON.
    pub async fn raft_rpc(&self, command: command::Raft) -> command::Outcome<Vec<u8>> {
        let command::Raft { rpc, payload } = command;
        fn answer<T: Serialize>(result: &T) -> command::Outcome<Vec<u8>> {
            Ok(serde_json::to_vec(result).expect("raft answers encode"))
        }
        let bad = |e: serde_json::Error| Err(Refusal::new(Refused::BadRequest, format!("raft message: {e}")));
        let payload = payload.as_slice();
        match rpc {
            RaftRpc::AppendEntries => match serde_json::from_slice(payload) {
                Ok(request) => answer(&self.raft.append_entries(request).await),
                Err(e) => bad(e),
            },
            RaftRpc::Vote => match serde_json::from_slice(payload) {
                Ok(request) => answer(&self.raft.vote(request).await),
                Err(e) => bad(e),
            },
            RaftRpc::InstallSnapshot => match serde_json::from_slice(payload) {
                Ok(request) => answer(&self.raft.install_snapshot(request).await),
                Err(e) => bad(e),
            },
        }
    }

    /// The house protocol's front: a thin match from request to handler.
    async fn handle_request(self: Arc<Self>, request: Request) -> Response {
        match request {
            Request::Raft(c) => Response::answer(self.raft_rpc(c).await),
            Request::ControllerHeartbeat(c) => Response::answer(self.heartbeat(c).await),
            Request::GetReplicaInfo(c) => Response::answer(self.replica_info(c).await),
            Request::AlterSyncStateSet(c) => Response::answer(self.alter_sync_state_set(c).await),
            Request::GetControllerState(_) => Response::answer(Ok(self.view())),
            other => Refusal::new(Refused::NotSupported, format!("{} is not a controller request", other.name())).into(),
        }
    }
}

impl Service for Controller {
    fn handle(self: Arc<Self>, request: Request, _peer: SocketAddr) -> BoxFuture<'static, Response> {
        Box::pin(self.handle_request(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let peers = ControllerConfig::parse_peers("n0-127.0.0.1:9878; n1-127.0.0.1:9879;n2-127.0.0.1:9880").unwrap();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&1], "127.0.0.1:9879");
        assert!(ControllerConfig::parse_peers("").unwrap_err().contains("no controller"));
        assert!(ControllerConfig::parse_peers("n0:127.0.0.1:1").unwrap_err().contains("expected <id>-<host:port>"));
        assert!(ControllerConfig::parse_peers("nx-127.0.0.1:1").unwrap_err().contains("not an id"));
        assert!(ControllerConfig::parse_peers("n0-nowhere").unwrap_err().contains("not an address"));
        assert!(ControllerConfig::parse_peers("n0-127.0.0.1:1;n0-127.0.0.1:2").unwrap_err().contains("twice"));
    }

    /// Master 0 of term 3 with slaves 1 and 2; 0 and 1 in sync.
    fn group() -> Group {
        Group {
            replicas: (0..3).map(|id| (id, format!("10.0.0.{id}:10911"))).collect(),
            master: Some(0),
            epoch: 3,
            sync_state_set: [0, 1].into(),
            sync_state_set_epoch: 4,
        }
    }

    fn heard(max_offset: u64, serving: bool, last_term: u64) -> Option<Heard> {
        Some(Heard { at: Instant::now(), max_offset, serving, last_term })
    }

    #[test]
    fn a_serving_master_keeps_its_term_and_a_silent_one_is_replaced_from_the_set() {
        let g = group();
        let all = |id: u64| match id {
            0 => heard(500, true, 3),
            1 => heard(400, false, 2),
            _ => heard(900, false, 2),
        };
        assert_eq!(choose_master(&g, all), None);
        // Silent master: the in-sync slave, even though 2 has a longer log.
        let silent = |id: u64| if id == 0 { None } else { all(id) };
        assert_eq!(choose_master(&g, silent), Some((400, 1)));
        // A slave elected but not yet serving is not a restarted master.
        let elected = Group { master: Some(1), epoch: 4, sync_state_set: [1].into(), ..g.clone() };
        assert_eq!(choose_master(&elected, |id| if id == 1 { heard(400, false, 3) } else { all(id) }), None);
    }

    #[test]
    fn a_restarted_master_is_elected_again_only_with_every_in_sync_replica_heard() {
        let g = group();
        // 0 restarted after a power loss took its unsynced tail: its slave
        // holds more, and is chosen.
        let restarted = |id: u64| match id {
            0 => heard(300, false, 3),
            1 => heard(400, false, 3),
            _ => heard(900, false, 2),
        };
        assert_eq!(choose_master(&g, restarted), Some((400, 1)));
        // It lost nothing: it is the one whose log reaches furthest.
        assert_eq!(choose_master(&g, |id| if id == 0 { heard(450, false, 3) } else { restarted(id) }), Some((450, 0)));
        // The in-sync slave is not heard from: nobody yet (it may hold
        // acknowledged writes the restarted master lost).
        assert_eq!(choose_master(&g, |id| if id == 1 { None } else { restarted(id) }), None);
    }
}
