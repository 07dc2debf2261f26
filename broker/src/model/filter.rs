//! What a consumer selects on a topic: a tag expression (`*`, or tags
//! joined by `||`) or an SQL92 condition over the message's properties
//! ([`super::sql`]).

use super::sql::SqlFilter;
use super::{tag_hash, Message};
use crate::bugs::{self, Bug};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a selector's expression is written (RocketMQ's `ExpressionType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExpressionType {
    /// `*` or `TagA || TagB`.
    #[default]
    Tag,
    /// An SQL92 condition ([`SqlFilter`]).
    Sql92,
}

/// A consumer's selector on one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// How `expression` is written.
    pub kind: ExpressionType,
    /// The expression.
    pub expression: String,
}

impl Selector {
    /// A tag expression: `*` or `TagA || TagB`.
    pub fn tag(expression: impl Into<String>) -> Selector {
        Selector { kind: ExpressionType::Tag, expression: expression.into() }
    }

    /// An SQL92 condition (RocketMQ's `MessageSelector.bySql`).
    pub fn sql(expression: impl Into<String>) -> Selector {
        Selector { kind: ExpressionType::Sql92, expression: expression.into() }
    }
}

/// A parsed selector.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// By tag.
    Tag(TagFilter),
    /// By SQL92 condition.
    Sql(SqlFilter),
}

impl Filter {
    /// Parses a selector; the error says what is wrong with it.
    pub fn parse(kind: ExpressionType, expression: &str) -> Result<Filter, String> {
        match kind {
            ExpressionType::Tag => TagFilter::parse(expression).map(Filter::Tag),
            ExpressionType::Sql92 => SqlFilter::parse(expression).map(Filter::Sql).map_err(|e| format!("bad SQL92 filter: {e}")),
        }
    }

    /// Whether a message passes.
    pub fn matches(&self, message: &Message) -> bool {
        match self {
            Filter::Tag(tags) => tags.matches(message.tags.as_deref()),
            Filter::Sql(sql) => sql.matches(&message.properties, message.tags.as_deref()),
        }
    }

    /// Tag hashes the consume queue can check before reading a message
    /// (`None`: every message is read).
    pub fn hashes(&self) -> Option<BTreeSet<u64>> {
        match self {
            Filter::Tag(tags) => tags.hashes(),
            Filter::Sql(_) => None,
        }
    }

    /// True when every message passes.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::Tag(TagFilter::All))
    }
}

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
