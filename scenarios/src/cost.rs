//! The cost model of a scenario's capacity experiment (`[cost]`).

use serde::{Deserialize, Serialize};

/// The cost model of a capacity experiment. Every time is simulated; the
/// simulation's clock moves in steps of at least `clock_step_us` (madsim's
/// shortest sleep and packet delivery), so work shorter than that is
/// accounted in microseconds and waited for once half a step is owed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Threads serving requests on each broker: requests beyond them queue.
    /// Default 2 (this machine's cores).
    #[serde(default = "default_broker_workers")]
    pub broker_workers: u32,
    /// Service time of a send, µs, before its body. Default 10.7: the real
    /// broker's CPU per 1 KiB send less `per_kib_us`, fitted by `mqsim
    /// calibrate` (as are the other defaults so marked) on this machine's
    /// `cargo xtask bench --processes`, 2026-11-23.
    #[serde(default = "default_send_us")]
    pub send_us: f64,
    /// What a send costs on top under SYNC_FLUSH, µs: waiting for the
    /// flush that covers it and being woken by it. Default 1.07 (fitted).
    #[serde(default = "default_sync_send_us")]
    pub sync_send_us: f64,
    /// A worker's time per commit log fsync, µs: the CPU it takes besides
    /// the disk's time (the kernel's writeback, waking the flusher and the
    /// sends it covers). It is what makes a SYNC_FLUSH send dearer at low
    /// load, when a flush covers few sends. Default 93.5 (fitted).
    #[serde(default = "default_flush_us")]
    pub flush_us: f64,
    /// Service time of a pull, µs, before the messages it returns.
    /// Default 55 (fitted on a drain's pulls of 32).
    #[serde(default = "default_pull_us")]
    pub pull_us: f64,
    /// Service time of any other request, µs. Default 10.
    #[serde(default = "default_other_us")]
    pub other_us: f64,
    /// Service time per KiB of message bytes sent or pulled, µs. Default
    /// 1.03 (measured: 15.8 µs per 1 KiB send, 31.2 per 16 KiB).
    #[serde(default = "default_per_kib_us")]
    pub per_kib_us: f64,
    /// Disk write bandwidth, MiB/s: an fsync waits for the bytes written
    /// since the last one. Default 1,400 (a 1 MiB fdatasync here: 0.75 ms).
    #[serde(default = "default_disk_mib_s")]
    pub disk_mib_s: f64,
    /// fsync latency, ms: median and 99th percentile of a log-normal draw.
    /// Default [0.0632, 0.106] (fitted).
    #[serde(default = "default_fsync_ms")]
    pub fsync_ms: [f64; 2],
    /// One-way latency of a packet, ms, drawn uniformly from the range; a
    /// delivery takes at least `clock_step_us` whatever is drawn. Default
    /// [0.0, 0.0471] (loopback, fitted).
    #[serde(default = "default_link_latency_ms")]
    pub link_latency_ms: [f64; 2],
    /// Bandwidth of each connection in each direction, MiB/s. Default 2,000.
    #[serde(default = "default_link_mib_s")]
    pub link_mib_s: f64,
    /// The clock's shortest step, µs: every sleep and every packet delivery
    /// lasts at least this long. Default 1,000 (madsim's, as tokio's
    /// `sleep`), which makes a round trip at least 2 ms; lower it, down to
    /// 1, to model sub-millisecond round trips, at the price of more
    /// simulated events per second.
    #[serde(default = "default_clock_step_us")]
    pub clock_step_us: u64,
    /// How often a broker worker loses its CPU to another thread, ms: the
    /// mean time from one stall's end to the next (a Poisson process), per
    /// worker. On a host shared with the clients (as `cargo xtask bench`
    /// runs), the operating system's scheduler stalls the broker's threads,
    /// and the requests queued behind them wait: the tail of the latency.
    /// Default 0: never.
    #[serde(default)]
    pub worker_stall_every_ms: f64,
    /// How long a stall lasts, ms: median and 99th percentile of a
    /// log-normal draw. Default [0, 0].
    #[serde(default)]
    pub worker_stall_ms: [f64; 2],
    /// The share of requests that met a queue and are served out of their
    /// arrival order, late: the runtime's scheduler (tokio's run queues,
    /// with a task per request) does not serve ready requests first come,
    /// first served. A late request is answered after an extra wait drawn
    /// from an exponential distribution whose mean is the queue it met, so
    /// the tail grows with the queue; the others are answered that much
    /// sooner, since the pool's throughput is unchanged. Default 0: first
    /// come, first served.
    #[serde(default)]
    pub worker_late_share: f64,
}

impl Default for Cost {
    fn default() -> Cost {
        Cost {
            broker_workers: default_broker_workers(),
            send_us: default_send_us(),
            sync_send_us: default_sync_send_us(),
            flush_us: default_flush_us(),
            pull_us: default_pull_us(),
            other_us: default_other_us(),
            per_kib_us: default_per_kib_us(),
            disk_mib_s: default_disk_mib_s(),
            fsync_ms: default_fsync_ms(),
            link_latency_ms: default_link_latency_ms(),
            link_mib_s: default_link_mib_s(),
            clock_step_us: default_clock_step_us(),
            worker_stall_every_ms: 0.0,
            worker_stall_ms: [0.0, 0.0],
            worker_late_share: 0.0,
        }
    }
}

fn default_broker_workers() -> u32 {
    2
}

// What `cargo mqsim calibrate experiments/validate-one-broker/real-bench-2026-11-23.txt`
// fits; `experiments/validate-one-broker/calibration.md` shows how.
fn default_send_us() -> f64 {
    10.7
}

fn default_sync_send_us() -> f64 {
    1.07
}

fn default_flush_us() -> f64 {
    93.5
}

fn default_pull_us() -> f64 {
    55.0
}

fn default_other_us() -> f64 {
    10.0
}

fn default_per_kib_us() -> f64 {
    1.03
}

fn default_disk_mib_s() -> f64 {
    1_400.0
}

fn default_fsync_ms() -> [f64; 2] {
    [0.0632, 0.106]
}

fn default_link_latency_ms() -> [f64; 2] {
    [0.0, 0.0471]
}

fn default_link_mib_s() -> f64 {
    2_000.0
}

fn default_clock_step_us() -> u64 {
    1_000
}
