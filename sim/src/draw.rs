//! Random draws for the clients and the world. Under the simulator they
//! come from its seeded RNG: the same seed, the same draws. Outside it (the
//! workloads driving a cluster of real processes) from the thread's RNG:
//! such a run is not deterministic anyway.

/// A draw from the simulation's seeded RNG (the thread's outside it).
pub fn draw() -> u64 {
    #[cfg(madsim)]
    return madsim::rand::random::<u64>();
    #[cfg(not(madsim))]
    return rand::random::<u64>();
}

/// A draw in `0.0..1.0`.
pub fn draw_unit() -> f64 {
    (draw() >> 11) as f64 / (1u64 << 53) as f64
}
