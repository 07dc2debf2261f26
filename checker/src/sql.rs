//! The checker's own reading of an SQL92 property filter (RocketMQ's
//! `MessageSelector.bySql`), written apart from the broker's so that a
//! filtering mistake on the broker is not repeated here: which messages a
//! group subscribed by SQL must receive (`lost`) and may receive
//! (`integrity`'s filter leaks).
//!
//! The semantics the broker documents (`broker/src/model/sql.rs`): keywords
//! in any case; `TAGS` is the tag; compared with an integer a value must be
//! an integer, with a decimal any number, two properties order as
//! decimals; `= TRUE` holds for "true" in any case; a missing property or a
//! value that is not the number asked for makes a comparison, BETWEEN and
//! IN unknown; CONTAINS, STARTSWITH, ENDSWITH and their NOT forms are false
//! on a missing property or an empty text; AND, OR, NOT are three-valued;
//! a message is selected when the condition is true. It evaluates while it
//! parses, so a condition is read once per message; the filters are short.

use std::collections::BTreeMap;
use std::rc::Rc;

/// A literal or a property's text.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// A missing property, or `NULL`.
    Null,
}

/// Whether the condition `sql` selects a message with this tag and these
/// user properties; an error when `sql` is not a condition.
pub fn sql_selects(sql: &str, tag: Option<&str>, props: &BTreeMap<String, String>) -> Result<bool, String> {
    let tokens = tokens_of(sql)?;
    let mut reader = Reader { tokens: &tokens, at: 0, tag, props };
    let truth = reader.or()?;
    if reader.at != tokens.len() {
        return Err(format!("trailing input after token {}", reader.at));
    }
    Ok(truth == Some(true))
}

thread_local! {
    /// Each condition's tokens, read once: the checks ask of every message
    /// whether each group selects it, with a handful of conditions.
    static TOKENS: std::cell::RefCell<BTreeMap<String, Rc<Vec<Tok>>>> = const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// The tokens of `sql`, from the cache when it was read before.
fn tokens_of(sql: &str) -> Result<Rc<Vec<Tok>>, String> {
    if let Some(tokens) = TOKENS.with(|cache| cache.borrow().get(sql).cloned()) {
        return Ok(tokens);
    }
    let tokens = Rc::new(tokenize(sql)?);
    TOKENS.with(|cache| cache.borrow_mut().insert(sql.to_owned(), tokens.clone()));
    Ok(tokens)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Int(i64),
    Num(f64),
    Sym(String),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unclosed string".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().collect();
            if i < chars.len() && (chars[i] == 'L' || chars[i] == 'l') {
                i += 1;
            }
            match text.parse::<i64>() {
                Ok(n) => out.push(Tok::Int(n)),
                Err(_) => out.push(Tok::Num(text.parse::<f64>().map_err(|_| format!("bad number {text}"))?)),
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["<>", ">=", "<="].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else if "=<>(),-+".contains(c) {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected {c:?}"));
            }
        }
    }
    Ok(out)
}

struct Reader<'t> {
    tokens: &'t [Tok],
    at: usize,
    tag: Option<&'t str>,
    props: &'t BTreeMap<String, String>,
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

impl Reader<'_> {
    fn is_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let hit = self.is_word(word);
        self.at += usize::from(hit);
        hit
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let hit = matches!(self.tokens.get(self.at), Some(Tok::Sym(s)) if s == sym);
        self.at += usize::from(hit);
        hit
    }

    fn or(&mut self) -> Result<Option<bool>, String> {
        let mut truth = self.and()?;
        while self.eat_word("OR") {
            let right = self.and()?;
            truth = match (truth, right) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
        }
        Ok(truth)
    }

    fn and(&mut self) -> Result<Option<bool>, String> {
        let mut truth = self.not()?;
        while self.eat_word("AND") {
            truth = and3(truth, self.not()?);
        }
        Ok(truth)
    }

    fn not(&mut self) -> Result<Option<bool>, String> {
        if self.eat_word("NOT") {
            return Ok(self.not()?.map(|b| !b));
        }
        self.test()
    }

    fn test(&mut self) -> Result<Option<bool>, String> {
        if self.eat_sym("(") {
            let inner = self.or()?;
            if !self.eat_sym(")") {
                return Err("missing )".into());
            }
            return Ok(inner);
        }
        let left = self.value()?;
        let negated = self.eat_word("NOT");
        for (sym, want) in [("=", "="), ("<>", "<>"), (">=", ">="), ("<=", "<="), (">", ">"), ("<", "<")] {
            if self.eat_sym(sym) {
                let right = self.value()?;
                return Ok(compare(want, &left, &right));
            }
        }
        if self.eat_word("BETWEEN") {
            let low = self.value()?;
            if !self.eat_word("AND") {
                return Err("BETWEEN without AND".into());
            }
            let high = self.value()?;
            let inside = and3(compare(">=", &left, &low), compare("<=", &left, &high));
            return Ok(if negated { inside.map(|b| !b) } else { inside });
        }
        if self.eat_word("IN") {
            if !self.eat_sym("(") {
                return Err("IN without (".into());
            }
            let mut list = Vec::new();
            loop {
                match self.tokens.get(self.at) {
                    Some(Tok::Str(s)) => list.push(s.clone()),
                    _ => return Err("IN lists strings".into()),
                }
                self.at += 1;
                if self.eat_sym(")") {
                    break;
                }
                if !self.eat_sym(",") {
                    return Err("IN list without , or )".into());
                }
            }
            return Ok(match left {
                Val::Text(t) => Some(list.contains(&t) != negated),
                _ => None,
            });
        }
        for word in ["CONTAINS", "STARTSWITH", "ENDSWITH"] {
            if self.eat_word(word) {
                let Some(Tok::Str(needle)) = self.tokens.get(self.at).cloned() else {
                    return Err(format!("{word} takes a string"));
                };
                self.at += 1;
                let Val::Text(hay) = left else { return Ok(Some(false)) };
                if needle.is_empty() {
                    return Ok(Some(false));
                }
                let hit = match word {
                    "CONTAINS" => hay.contains(&needle),
                    "STARTSWITH" => hay.starts_with(&needle),
                    _ => hay.ends_with(&needle),
                };
                return Ok(Some(hit != negated));
            }
        }
        if self.eat_word("IS") {
            let not_null = self.eat_word("NOT");
            if !self.eat_word("NULL") {
                return Err("IS without NULL".into());
            }
            return Ok(Some((left == Val::Null) != not_null));
        }
        match left {
            Val::Bool(b) => Ok(Some(b)),
            other => Err(format!("{other:?} is not a condition")),
        }
    }

    fn value(&mut self) -> Result<Val, String> {
        let negative = self.eat_sym("-");
        if !negative {
            self.eat_sym("+");
        }
        let token = self.tokens.get(self.at).cloned().ok_or("a value is missing")?;
        self.at += 1;
        Ok(match token {
            Tok::Int(n) => Val::Int(if negative { -n } else { n }),
            Tok::Num(x) => Val::Num(if negative { -x } else { x }),
            Tok::Str(s) => Val::Text(s),
            Tok::Word(w) if w.eq_ignore_ascii_case("TRUE") => Val::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("FALSE") => Val::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => Val::Null,
            Tok::Word(w) => {
                let found = if w == "TAGS" { self.tag.map(str::to_owned) } else { self.props.get(&w).cloned() };
                found.map_or(Val::Null, Val::Text)
            }
            Tok::Sym(s) => return Err(format!("unexpected {s}")),
        })
    }
}

/// A three-valued comparison; a property's text is `Text`, literals their
/// own kind.
fn compare(op: &str, left: &Val, right: &Val) -> Option<bool> {
    use std::cmp::Ordering;
    let holds = |ord: Ordering| match op {
        "=" => ord == Ordering::Equal,
        "<>" => ord != Ordering::Equal,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        "<" => ord == Ordering::Less,
        _ => ord != Ordering::Greater,
    };
    let decimal = |s: &str| s.trim().parse::<f64>().ok();
    let equality = op == "=" || op == "<>";
    match (left, right) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Text(a), Val::Text(b)) if equality => Some((a == b) == (op == "=")),
        (Val::Text(a), Val::Text(b)) => Some(holds(decimal(a)?.partial_cmp(&decimal(b)?)?)),
        (Val::Text(t), Val::Int(n)) => Some(holds(t.parse::<i64>().ok()?.cmp(n))),
        (Val::Int(n), Val::Text(t)) => Some(holds(n.cmp(&t.parse::<i64>().ok()?))),
        (Val::Text(t), Val::Num(x)) => Some(holds(decimal(t)?.partial_cmp(x)?)),
        (Val::Num(x), Val::Text(t)) => Some(holds(x.partial_cmp(&decimal(t)?)?)),
        (Val::Text(t), Val::Bool(b)) | (Val::Bool(b), Val::Text(t)) if equality => {
            Some((t.eq_ignore_ascii_case("true") == *b) == (op == "="))
        }
        (Val::Int(a), Val::Int(b)) => Some(holds(a.cmp(b))),
        (Val::Int(a), Val::Num(b)) => Some(holds((*a as f64).partial_cmp(b)?)),
        (Val::Num(a), Val::Int(b)) => Some(holds(a.partial_cmp(&(*b as f64))?)),
        (Val::Num(a), Val::Num(b)) => Some(holds(a.partial_cmp(b)?)),
        (Val::Bool(a), Val::Bool(b)) if equality => Some((a == b) == (op == "=")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(sql: &str, pairs: &[(&str, &str)]) -> bool {
        let props = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        sql_selects(sql, Some("TagA"), &props).unwrap()
    }

    #[test]
    fn selects_as_the_broker_documents() {
        assert!(selects("ENV = 'gray' AND REGION IN ('eu-west', 'us-east')", &[("ENV", "gray"), ("REGION", "us-east")]));
        assert!(!selects("ENV = 'gray' AND REGION IN ('eu-west', 'us-east')", &[("REGION", "us-east")]));
        assert!(selects("ENV IS NULL OR NOT (ENV = 'gray')", &[]));
        assert!(!selects("NOT (ENV = 'gray')", &[]), "unknown stays unknown under NOT");
        assert!(selects("AMOUNT BETWEEN 50000 AND 99999 and TAGS = 'TagA'", &[("AMOUNT", "50000")]));
        assert!(!selects("AMOUNT < 10", &[("AMOUNT", "9.5")]), "strict against an integer");
        assert!(selects("AMOUNT < 10.0", &[("AMOUNT", "9.5")]));
        assert!(selects("a <> 'x' and b = -2 and c = TRUE", &[("a", "y"), ("b", "-2"), ("c", "TRUE")]));
        assert!(!selects("a NOT CONTAINS 'z'", &[]));
        assert!(selects("a STARTSWITH 'o' AND a ENDSWITH '7' AND a NOT CONTAINS 'x'", &[("a", "ord-7")]));
        assert!(sql_selects("a = ", None, &BTreeMap::new()).is_err());
        assert!(sql_selects("a = 1 b", None, &BTreeMap::new()).is_err());
    }
}
