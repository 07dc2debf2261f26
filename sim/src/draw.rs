//! Random draws for the clients and the world, from the simulation's
//! seeded RNG: the same seed, the same draws.

/// A draw from the simulation's seeded RNG.
pub fn draw() -> u64 {
    madsim::rand::random::<u64>()
}

/// A draw in `0.0..1.0`.
pub fn draw_unit() -> f64 {
    (draw() >> 11) as f64 / (1u64 << 53) as f64
}
