//! What every binary shares.

use std::io::IsTerminal;

/// Logs to stderr, filtered by `RUST_LOG` or else `default_filter`; colours
/// only on a terminal, so redirected logs stay plain text.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
}
