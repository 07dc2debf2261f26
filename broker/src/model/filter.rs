//! Tag expressions: `*`, or tags joined by `||`.

use super::tag_hash;
use crate::bugs::{self, Bug};
use std::collections::BTreeSet;

/// A parsed tag expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagFilter {
    /// `*` (or empty): every message.
    All,
    /// Messages whose tag is one of these.
    Tags(BTreeSet<String>),
}

impl TagFilter {
    /// Parses `*` or `TagA || TagB`; an empty tag between `||` is an error.
    pub fn parse(expression: &str) -> Result<TagFilter, String> {
        let expression = expression.trim();
        if expression.is_empty() || expression == "*" || (bugs::active(Bug::TagFilterLeak) && expression.contains("||")) {
            return Ok(TagFilter::All);
        }
        let mut tags = BTreeSet::new();
        for part in expression.split("||") {
            let tag = part.trim();
            if tag.is_empty() || tag.contains(char::is_whitespace) {
                return Err(format!("bad tag expression {expression:?}: expected `*` or `TagA || TagB`"));
            }
            tags.insert(tag.to_string());
        }
        Ok(TagFilter::Tags(tags))
    }

    /// Whether a message with this tag passes.
    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(tags) => tag.is_some_and(|t| tags.contains(t)),
        }
    }

    /// Hashes of the tags, for the broker's consume-queue check (`None`: all).
    pub fn hashes(&self) -> Option<BTreeSet<u64>> {
        match self {
            TagFilter::All => None,
            TagFilter::Tags(tags) => Some(tags.iter().map(|t| tag_hash(t)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        assert_eq!(TagFilter::parse(" * ").unwrap(), TagFilter::All);
        let f = TagFilter::parse("A || B").unwrap();
        assert!(f.matches(Some("A")) && f.matches(Some("B")));
        assert!(!f.matches(Some("C")) && !f.matches(None));
        assert!(TagFilter::parse("A || ").is_err());
        assert!(TagFilter::parse("A B").is_err());
        assert!(f.hashes().unwrap().contains(&tag_hash("B")));
    }
}
