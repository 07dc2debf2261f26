//! A tiny deterministic random number generator (SplitMix64).
//!
//! Resolution must give the same knobs and the same schedule for a seed on
//! every run, platform and dependency version, so this crate carries its own
//! generator instead of `rand`'s `StdRng`, whose algorithm may change between
//! releases. Only integer arithmetic and exactly rounded float operations are
//! used, so results are bit-identical everywhere.

/// A SplitMix64 stream. Each purpose (a knob, a fault kind) gets its own
/// stream derived from the seed and a label, so that changing one knob does not
/// shift the draws of every other.
#[derive(Debug, Clone)]
pub struct Rng {
    /// The generator's whole state; advanced by a fixed odd constant per draw.
    state: u64,
}

impl Rng {
    /// A stream for `label`, derived from `seed` by mixing in an FNV-1a hash of
    /// the label.
    pub fn new(seed: u64, label: &str) -> Rng {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in label.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut mixer = Rng::from_state(seed ^ hash);
        Rng::from_state(mixer.next_u64())
    }

    /// A stream starting from a raw state, as in the reference SplitMix64.
    pub(crate) fn from_state(state: u64) -> Rng {
        Rng { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (multiply-high; the bias is below 2^-32 for the small
    /// ranges used here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "between({lo}, {hi}) is an empty range");
        lo + self.below(hi - lo + 1)
    }

    /// A float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An exponential draw with the given mean (the gap between events of a
    /// Poisson process).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of `items`, or `None` when it is empty.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len() as u64) as usize])
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A log-normal distribution given by its median and 99th percentile, as
/// the cost model states latencies (fsync, a worker's stalls).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    median: f64,
    /// Of the logarithm: ln(p99 / median) / z(0.99); 0 when p99 <= median.
    sigma: f64,
}

/// z of the normal distribution's 99th percentile.
const Z_99: f64 = 2.326_347_874;

impl LogNormal {
    /// The distribution with this median and 99th percentile.
    pub fn from_percentiles([median, p99]: [f64; 2]) -> LogNormal {
        let sigma = if median > 0.0 && p99 > median { (p99 / median).ln() / Z_99 } else { 0.0 };
        LogNormal { median, sigma }
    }

    /// One draw (Box-Muller for the normal one).
    pub fn draw(&self, rng: &mut Rng) -> f64 {
        // In (0, 1]: never 0, so its logarithm is finite.
        let (u1, u2) = (1.0 - rng.unit(), 1.0 - rng.unit());
        let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        self.median * (self.sigma * normal).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::{LogNormal, Rng};

    /// Draws follow the stated median and 99th percentile, and exponential
    /// draws their mean.
    #[test]
    fn log_normal_and_exponential_draws_fit_their_parameters() {
        let mut rng = Rng::new(7, "test");
        let dist = LogNormal::from_percentiles([2.0, 8.0]);
        let mut draws: Vec<f64> = (0..20_000).map(|_| dist.draw(&mut rng)).collect();
        draws.sort_by(f64::total_cmp);
        let (p50, p99) = (draws[10_000], draws[19_800]);
        assert!((1.9..2.1).contains(&p50), "p50 {p50}");
        assert!((7.2..8.8).contains(&p99), "p99 {p99}");
        let mean = (0..20_000).map(|_| rng.exponential(3.0)).sum::<f64>() / 20_000.0;
        assert!((2.9..3.1).contains(&mean), "mean {mean}");
    }

    #[test]
    fn matches_the_reference_splitmix64() {
        // First outputs of SplitMix64 from state 0, as published with the
        // algorithm: a change here would change every resolved scenario.
        let mut rng = Rng::from_state(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn labelled_streams_are_pinned_and_distinct() {
        let a = Rng::new(42, "swarm.kill").next_u64();
        let b = Rng::new(42, "swarm.pause").next_u64();
        assert_ne!(a, b);
        assert_eq!(a, Rng::new(42, "swarm.kill").next_u64());
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut rng = Rng::new(7, "test");
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let x = rng.between(5, 9);
            assert!((5..=9).contains(&x));
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
