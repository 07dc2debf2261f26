//! What serving a request costs, for capacity experiments in the
//! simulation: a broker is told of its work through its
//! [`broker::server::WorkHook`], and a [`WorkerPool`] charges it. Real mode
//! has no model (the CPU is real); in the simulation work is free unless a
//! scenario's `[topology.cost]` sets one. (The links' bandwidth is madsim's:
//! `NetSim::set_tcp_bandwidth`, a patch of the vendored copy.)
//!
//! A broker's worker pool is a set of servers in virtual microseconds: a
//! request takes the worker free soonest, holds it for its service time and
//! answers when that is done. The simulation's clock moves in steps of at
//! least [`clock_step`] (1 ms unless a cost model lowers it), so a request
//! waits only once half a step or more is owed (rounded to the step): each
//! answer is off by at most half a step, while the pool's throughput is
//! exact, since the owed work adds up in the virtual times.

use futures::future::BoxFuture;
use std::fmt;
use std::sync::{Arc, Mutex};
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
    /// A commit log fsync: the CPU it takes, on top of the disk's time.
    pub flush_us: f64,
    /// When workers lose their CPU; `None`: never.
    pub stalls: Option<Stalls>,
    /// Which requests are served out of order, late; `None`: none.
    pub late: Option<Lateness>,
}

/// Random draws a cost model takes from the simulation, one per call:
/// the simulation makes them from the run's seed.
#[derive(Clone)]
pub struct Draws<T>(Arc<Mutex<dyn FnMut() -> T + Send>>);

impl<T> Draws<T> {
    /// Draws made by `source`.
    pub fn new(source: impl FnMut() -> T + Send + 'static) -> Draws<T> {
        Draws(Arc::new(Mutex::new(source)))
    }

    fn next(&self) -> T {
        (self.0.lock().expect("draws"))()
    }
}

impl<T> fmt::Debug for Draws<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Draws")
    }
}

impl<T> PartialEq for Draws<T> {
    fn eq(&self, other: &Draws<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A worker's stalls: the operating system gives its CPU to another thread
/// (on a shared host, the clients'), at random moments and for a random
/// time. Each draw is a stall: (gap since the previous one ended, length),
/// in µs.
pub type Stalls = Draws<(f64, f64)>;

/// The pool's service order: the runtime serves ready requests out of
/// their arrival order, so some wait longer than the queue they met and
/// the rest correspondingly less. Each draw is, for one request, how many
/// times that queue's wait it is answered late by: 0 for most.
pub type Lateness = Draws<f64>;

impl Stalls {
    /// The next stall's gap and length, whole µs; the gap at least 1 µs, so
    /// stalls never pile up at one instant.
    fn draw(&self) -> (u64, u64) {
        let (gap, length) = self.next();
        ((gap.max(1.0).round()) as u64, length.max(0.0).round() as u64)
    }
}

/// The clock's shortest step: every sleep, and every delivery on a
/// simulated connection, lasts at least this long. In the simulation it is
/// madsim's shortest sleep, 1 ms unless a cost model's `clock_step_us`
/// lowers it; in real mode 1 ms (as tokio's timer), though nothing there
/// waits on a cost model.
pub fn clock_step() -> Duration {
    #[cfg(madsim)]
    {
        madsim::time::TimeHandle::try_current().map_or(Duration::from_millis(1), |time| time.min_sleep())
    }
    #[cfg(not(madsim))]
    {
        Duration::from_millis(1)
    }
}

/// [`clock_step`] in whole µs, at least 1.
pub fn clock_step_us() -> u64 {
    (clock_step().as_micros() as u64).max(1)
}

/// Whether `owed_us` is worth a wait: half a clock step or more (see the
/// module on short waits).
pub fn worth_waiting(owed_us: u64) -> bool {
    owed_us >= (clock_step_us() / 2).max(1)
}

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
    /// When servers stall, and each one's next stall (start, length), drawn
    /// at its first work.
    stalls: Option<(Stalls, Mutex<Vec<Option<(u64, u64)>>>)>,
    /// Which requests are answered late.
    late: Option<Lateness>,
}

impl Servers {
    /// `n` servers, free now.
    pub fn new(n: u32) -> Servers {
        Servers { busy_until_us: Mutex::new(vec![0; n.max(1) as usize]), epoch: tokio::time::Instant::now(), stalls: None, late: None }
    }

    /// These servers, each stalling as `stalls` draws (never when `None`).
    pub fn stalling(self, stalls: Option<Stalls>) -> Servers {
        let n = self.busy_until_us.lock().expect("servers").len();
        Servers { stalls: stalls.map(|stalls| (stalls, Mutex::new(vec![None; n]))), ..self }
    }

    /// These servers, answering requests late as `late` draws (never when
    /// `None`).
    pub fn late(self, late: Option<Lateness>) -> Servers {
        Servers { late, ..self }
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
        let work = us.max(0.0).round() as u64;
        let mut start = free_at.max(now);
        if let Some((stalls, next)) = &self.stalls {
            // Stalls strike only under contention: when this request has to
            // queue, as when every core is wanted (on a shared host, the
            // clients are busy too). Those due meanwhile pass unfelt.
            let contended = free_at > now;
            let mut next = next.lock().expect("stalls");
            loop {
                let (at, length) = *next[i].get_or_insert_with(|| {
                    let (gap, length) = stalls.draw();
                    (now + gap, length)
                });
                if at >= start + work {
                    break;
                }
                // A stall before the work starts may delay its start; one
                // during it delays the rest of it by its whole length.
                if contended {
                    start = if at <= start { start.max(at + length) } else { start + length };
                }
                let (gap, following) = stalls.draw();
                next[i] = Some((at + length + gap, following));
            }
        }
        let done = start + work;
        busy[i] = done;
        // A late request is answered after requests that came after it; its
        // work stays where it was, so the pool's throughput is unchanged,
        // and its client, waiting, sends nothing meanwhile: the others find
        // the queue shorter by one.
        let queued = free_at.saturating_sub(now);
        let late = match &self.late {
            Some(late) if queued > 0 => (queued as f64 * late.next().max(0.0)).round() as u64,
            _ => 0,
        };
        done - now + late
    }

    /// [`Self::reserve`], then waits for the work to be done (see the module
    /// on short waits).
    pub async fn occupy(&self, us: f64) {
        wait(self.reserve(us)).await;
    }
}

/// Waits `owed_us` when it is [`worth_waiting`].
pub async fn wait(owed_us: u64) {
    if worth_waiting(owed_us) {
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
        let servers = Servers::new(cost.workers).stalling(cost.stalls.clone()).late(cost.late.clone());
        WorkerPool { cost, servers }
    }

    fn kib(&self, bytes: usize) -> f64 {
        self.cost.per_kib_us * bytes as f64 / 1024.0
    }

    /// Serves `us` of work on the pool.
    async fn occupy(&self, us: f64) {
        if us > 0.0 {
            self.servers.occupy(us).await;
        }
    }
}

/// The pool charges each request its service time, each reply its
/// messages' bytes and each fsync its CPU; a send that would wait past
/// [`SEND_QUEUE_WAIT_MAX_US`] for a worker is refused.
impl broker::server::WorkHook for WorkerPool {
    fn admit(&self, work: broker::server::Work) -> bool {
        !matches!(work, broker::server::Work::Send { .. }) || self.servers.queue_wait_us() <= SEND_QUEUE_WAIT_MAX_US
    }

    fn on_request(&self, work: broker::server::Work) -> BoxFuture<'_, ()> {
        let us = match work {
            broker::server::Work::Send { body_bytes } => self.cost.send_us + self.kib(body_bytes),
            broker::server::Work::Pull => self.cost.pull_us,
            broker::server::Work::Other => self.cost.other_us,
        };
        Box::pin(self.occupy(us))
    }

    fn on_response(&self, message_bytes: usize) -> BoxFuture<'_, ()> {
        Box::pin(self.occupy(self.kib(message_bytes)))
    }

    fn on_fsync(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.occupy(self.cost.flush_us))
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

    /// Under contention (the request queues), a stall before work starts
    /// delays it to the stall's end and one during work delays the rest by
    /// its length; stalls already over, or met by a request that did not
    /// queue, cost nothing.
    #[test]
    fn a_stalling_server_waits_out_its_stalls_under_contention() {
        // Stalls of 300 µs, 1,000 µs after the previous one ended.
        let servers = Servers::new(1).stalling(Some(Stalls::new(|| (1_000.0, 300.0))));
        // First stall at 0 + 1,000 = 1,000..1,300. Work at 0 of 400 ends
        // first; work at 700 queues behind it and ends at 800, before it.
        assert_eq!(servers.reserve_at(0, 400.0), 400);
        assert_eq!(servers.reserve_at(300, 400.0), 500);
        // Work queued from 800: 200 µs done, the stall, then 200 more: 1,500.
        assert_eq!(servers.reserve_at(700, 400.0), 800);
        // Next stall 2,300..2,600: work at 2,200 ends first; work queued
        // behind it from 2,250 does 50 µs, waits the stall out, ends at 2,650.
        assert_eq!(servers.reserve_at(2_200, 50.0), 50);
        assert_eq!(servers.reserve_at(2_240, 100.0), 410);
        // The stalls between (3,600..3,900, 4,900..5,200) are over, and the
        // next (6,200..6,500) meets work that did not queue: no delay.
        assert_eq!(servers.reserve_at(6_100, 200.0), 200);
    }

    /// A late request is answered its draw times the queue it met after its
    /// work is done; the work stays in its place, so the requests behind it
    /// are done as without lateness, and a request that met no queue is
    /// never late (nor draws).
    #[test]
    fn a_late_request_waits_a_multiple_of_the_queue_it_met() {
        let mut draws = [0.0, 1.5, -1.0].into_iter().cycle();
        let servers = Servers::new(1).late(Some(Lateness::new(move || draws.next().expect("cycle"))));
        assert_eq!(servers.reserve_at(0, 400.0), 400, "no queue: not late, no draw");
        assert_eq!(servers.reserve_at(0, 400.0), 800, "met 400 of queue, drew 0");
        assert_eq!(servers.reserve_at(0, 400.0), 1_200 + 1_200, "met 800 of queue, drew 1.5");
        assert_eq!(servers.reserve_at(0, 400.0), 1_600, "a negative draw is no lateness");
        assert_eq!(servers.queue_wait_at(0), 1_600, "lateness leaves the work where it was");
    }
}
