//! The crate's error type.

use std::fmt;

/// Why a scenario could not be read, parsed, validated or found.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {source}")]
    Read {
        /// The file path.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML of the scenario's shape; toml's message carries
    /// the line, the column and, for a misspelt knob, the unknown field.
    #[error("{origin}: {source}")]
    Parse {
        /// The file path (or whatever the caller named the text).
        origin: String,
        /// toml's error.
        #[source]
        source: toml::de::Error,
    },
    /// The scenario parsed but breaks one or more rules; every broken rule is
    /// listed, each naming its field path.
    #[error("{origin}: invalid scenario:{}", Problems(problems))]
    Invalid {
        /// The file path (or whatever the caller named the text).
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// No catalogue file has this name.
    #[error("no scenario named `{name}` in {dir}; have: {available}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The catalogue directory searched.
        dir: String,
        /// The names that do exist, comma separated.
        available: String,
    },
}

/// One broken rule: the dotted path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted field path, e.g. `workload.consumers[1].failure_rate`.
    pub path: String,
    /// What is wrong, e.g. `must be in 0.0..=1.0, got 1.5`.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Formats a problem list as indented lines after the error's first line.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
