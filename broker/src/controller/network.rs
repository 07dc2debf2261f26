//! openraft's messages between controllers, over the project's own
//! connections (the same code path in both builds): a request is
//! [`Request::Raft`] with openraft's request as JSON, and the answer is
//! openraft's `Result` as JSON.

use super::TypeConfig;
use crate::net::ConnectionPool;
use crate::command::{Raft, RaftRpc};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use openraft::BasicNode;
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;

type NodeId = u64;

/// Makes a [`Peer`] per controller, all sharing one pool of connections.
#[derive(Clone)]
pub struct Network {
    pool: Arc<ConnectionPool>,
}

impl Network {
    /// A network over `pool`.
    pub fn new(pool: Arc<ConnectionPool>) -> Network {
        Network { pool }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer { target, addr: node.addr.clone(), pool: self.pool.clone() }
    }
}

/// Another controller.
pub struct Peer {
    target: NodeId,
    addr: String,
    pool: Arc<ConnectionPool>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

impl Peer {
    /// Sends one message; `Ok(Err)` is the peer's own refusal.
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        rpc: RaftRpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let payload = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let bytes = match self.pool.call(&self.addr, Raft { rpc, payload }, option.hard_ttl()).await {
            Ok(bytes) => bytes,
            Err(e @ (crate::Error::Connection { .. } | crate::Error::Timeout(_))) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(other) => {
                let why = Failed(format!("{} answered {other}", self.addr));
                return Err(RPCError::Network(NetworkError::new(&why)));
            }
        };
        let answer: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RaftRpc::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>> {
        self.call(RaftRpc::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(RaftRpc::Vote, &rpc, &option).await
    }
}
