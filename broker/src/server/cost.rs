//! What serving a request costs, for capacity experiments in the
//! simulation. Real mode has no model (the CPU is real); in the simulation
//! work is free unless a scenario's `[topology.cost]` sets one.
//!
//! A broker's worker pool is a set of servers in virtual microseconds: a
//! request takes the worker free soonest, holds it for its service time and
//! answers when that is done. The simulation's clock moves in steps of at
//! least 1 ms, so a request waits only once half a millisecond or more is
//! owed (rounded to the step): each answer is off by at most half a
//! millisecond, while the pool's throughput is exact, since the owed work
//! adds up in the virtual times.

use crate::protocol::{Request, Response, ResponseBody};
use std::sync::Mutex;
use std::time::Duration;

/// Service times of a broker's requests, in µs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCost {
    /// Threads serving requests.
    pub workers: u32,
    /// A send, before its body.
    pub send_us: f64,
    /// A pull, before the messages it returns.
    pub pull_us: f64,
    /// Any other request.
    pub other_us: f64,
    /// Per KiB of message bytes sent, pulled or replicated.
    pub per_kib_us: f64,
}

/// Waits of under this many µs are not waited for (see the module).
pub const WAIT_MIN_US: u64 = 500;

/// A send that would wait longer than this for a worker is refused at once
/// as busy, as RocketMQ refuses one that waited in its send queue past
/// `waitTimeMillsInSendQueue` (200 ms): the producer tries another broker,
/// and an overloaded broker keeps serving at its capacity instead of
/// spending it on sends whose producers have given up.
pub const SEND_QUEUE_WAIT_MAX_US: u64 = 200_000;

/// Servers in virtual time: when each is next free.
#[derive(Debug)]
pub struct Servers {
    busy_until_us: Mutex<Vec<u64>>,
    epoch: tokio::time::Instant,
}

impl Servers {
    /// `n` servers, free now.
    pub fn new(n: u32) -> Servers {
        Servers { busy_until_us: Mutex::new(vec![0; n.max(1) as usize]), epoch: tokio::time::Instant::now() }
    }

    /// How long from now until a server is free.
    pub fn queue_wait_us(&self) -> u64 {
        self.queue_wait_at(self.now_us())
    }

    fn queue_wait_at(&self, now: u64) -> u64 {
        let busy = self.busy_until_us.lock().expect("servers");
        busy.iter().min().copied().unwrap_or(0).saturating_sub(now)
    }

    /// Microseconds since the servers were made.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Holds the server free soonest for `us`; returns how long from now
    /// until that work is done.
    pub fn reserve(&self, us: f64) -> u64 {
        self.reserve_at(self.now_us(), us)
    }

    /// [`Self::reserve`] at `now` µs.
    fn reserve_at(&self, now: u64, us: f64) -> u64 {
        let mut busy = self.busy_until_us.lock().expect("servers");
        let (i, free_at) = busy.iter().copied().enumerate().min_by_key(|&(_, t)| t).expect("at least one server");
        let done = free_at.max(now) + us.max(0.0).round() as u64;
        busy[i] = done;
        done - now
    }

    /// [`Self::reserve`], then waits for the work to be done (see the module
    /// on short waits).
    pub async fn occupy(&self, us: f64) {
        wait(self.reserve(us)).await;
    }
}

/// Waits `owed_us` when it is at least [`WAIT_MIN_US`].
pub async fn wait(owed_us: u64) {
    if owed_us >= WAIT_MIN_US {
        tokio::time::sleep(Duration::from_micros(owed_us)).await;
    }
}

/// A broker's worker pool under a [`ServiceCost`].
#[derive(Debug)]
pub struct WorkerPool {
    cost: ServiceCost,
    servers: Servers,
}

impl WorkerPool {
    /// A pool of `cost.workers`, all free.
    pub fn new(cost: ServiceCost) -> WorkerPool {
        let servers = Servers::new(cost.workers);
        WorkerPool { cost, servers }
    }

    /// What a request costs before it is applied.
    pub fn request_us(&self, request: &Request) -> f64 {
        match request {
            Request::SendMessage { message, .. } => self.cost.send_us + self.kib(message.body.len()),
            Request::PullMessage { .. } => self.cost.pull_us,
            _ => self.cost.other_us,
        }
    }

    /// What a response costs on top: the messages it carries.
    pub fn response_us(&self, response: &Response) -> f64 {
        match &response.body {
            ResponseBody::Pull(pull) => self.kib(pull.messages.iter().map(|m| m.store_size as usize).sum()),
            ResponseBody::Replica(chunk) => self.kib(chunk.bytes.len()),
            _ => 0.0,
        }
    }

    fn kib(&self, bytes: usize) -> f64 {
        self.cost.per_kib_us * bytes as f64 / 1024.0
    }

    /// Whether the pool takes the request now: a send is refused when it
    /// would wait past [`SEND_QUEUE_WAIT_MAX_US`].
    pub fn admits(&self, request: &Request) -> bool {
        !matches!(request, Request::SendMessage { .. }) || self.servers.queue_wait_us() <= SEND_QUEUE_WAIT_MAX_US
    }

    /// Serves `us` of work on the pool.
    pub async fn occupy(&self, us: f64) {
        if us > 0.0 {
            self.servers.occupy(us).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two servers: the third request at the same instant waits for the
    /// first to be done; throughput is two per service time.
    #[test]
    fn work_queues_behind_busy_servers() {
        let servers = Servers::new(2);
        let owed: Vec<u64> = (0..5).map(|_| servers.reserve_at(1_000, 400.0)).collect();
        assert_eq!(owed, [400, 400, 800, 800, 1200]);
        assert_eq!(servers.queue_wait_at(1_000), 800);
        // Later, the work done meanwhile is no longer owed.
        assert_eq!(servers.queue_wait_at(1_500), 300);
        assert_eq!(servers.reserve_at(5_000, 400.0), 400, "idle servers start at once");
    }
}
