//! SQL92 property filters (RocketMQ's `MessageSelector.bySql`, broker
//! setting `enablePropertyFilter`): a condition over a message's user
//! properties and its tag (`TAGS`), evaluated on the broker.
//!
//! The grammar RocketMQ 5.3 accepts: comparisons (`=`, `<>`, `>`, `>=`,
//! `<`, `<=`), `[NOT] BETWEEN lo AND hi`, `[NOT] IN ('a', 'b')`, `IS [NOT]
//! NULL`, `[NOT] CONTAINS | STARTSWITH | ENDSWITH 'text'`, `AND`, `OR`,
//! `NOT`, parentheses; string (`'it''s'`), integer (`42`, `42L`), decimal
//! (`4.2`, `.5`, `1e3`) and boolean literals, `NULL`; keywords in any
//! case; identifiers `[A-Za-z_$][A-Za-z0-9_$]*`, case-sensitive.
//!
//! Its evaluation, with property values as strings: compared with an
//! integer literal a value must be an integer (`"5.0"` is not), with a
//! decimal one any number; two properties order as decimals; `= TRUE`
//! holds for `"true"` in any case. A missing property, or a value that is
//! not the number asked for, makes a comparison, `BETWEEN` and `IN` unknown;
//! `CONTAINS` and its kin, with their `NOT` forms, are false on a missing
//! property or an empty text. `AND`, `OR` and `NOT` follow SQL's
//! three-valued logic; a message passes only when the condition is true.
//!
//! Where RocketMQ's parser is surprising this one refuses, with a reason,
//! at subscribe time, rather than filter quietly: trailing input (RocketMQ
//! stops at the first token it cannot use, so `a = 1 b = 2` means `a = 1`),
//! a bare property as a condition (RocketMQ makes it false whatever its
//! value), a string, boolean or `NULL` on either side of `>` and its kin,
//! `= NULL`, `BETWEEN` with a bound above the other, and a sign on anything
//! but a number. `NOT` binds looser than comparisons, as in SQL: `NOT a =
//! 'x'` is `NOT (a = 'x')` (in RocketMQ it compares `NOT a` with `'x'` and
//! filters every message out). A value that cannot be compared is unknown
//! rather than an error, so `a > 5 OR TRUE` passes wherever the `TRUE` is
//! (RocketMQ drops the message when the failing side is evaluated first).

use std::collections::BTreeMap;
use std::fmt;

/// Longest expression accepted, in bytes.
pub const SQL_BYTES_MAX: usize = 4096;
/// Deepest nesting accepted (parentheses and operators).
const DEPTH_MAX: usize = 64;

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `'text'`.
    Str(String),
    /// `42`, `-7`, `42L`.
    Int(i64),
    /// `4.2`, `.5`, `1e3`.
    Num(f64),
    /// `TRUE`, `FALSE`.
    Bool(bool),
    /// `NULL`.
    Null,
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A property (or `TAGS`).
    Prop(String),
    /// A literal.
    Lit(Literal),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// Text tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOp {
    /// `CONTAINS`
    Contains,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
}

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `TRUE` or `FALSE` as a condition.
    Const(bool),
    /// `left op right`.
    Cmp(CmpOp, Operand, Operand),
    /// `value [NOT] BETWEEN low AND high` (`negated` for NOT).
    Between { value: Operand, low: Operand, high: Operand, negated: bool },
    /// `prop [NOT] IN ('a', ...)`.
    In { prop: String, list: Vec<String>, negated: bool },
    /// `operand IS [NOT] NULL`.
    IsNull { value: Operand, negated: bool },
    /// `prop [NOT] CONTAINS|STARTSWITH|ENDSWITH 'text'`.
    Text { op: TextOp, prop: String, text: String, negated: bool },
    /// `NOT e`.
    Not(Box<Expr>),
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
}

/// A parsed SQL92 filter.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlFilter {
    expr: Expr,
}

impl SqlFilter {
    /// Parses an expression; the error says where and why.
    pub fn parse(text: &str) -> Result<SqlFilter, String> {
        if text.len() > SQL_BYTES_MAX {
            return Err(format!("an SQL92 filter is at most {SQL_BYTES_MAX} bytes, this one {}", text.len()));
        }
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Err("an SQL92 filter cannot be empty".into());
        }
        let mut parser = Parser { tokens, at: 0, depth: 0 };
        let expr = parser.or()?;
        if let Some((token, pos)) = parser.tokens.get(parser.at) {
            return Err(format!("unexpected {token} at byte {pos}: the condition ended before it"));
        }
        Ok(SqlFilter { expr })
    }

    /// The parsed condition.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether a message with these user properties and this tag passes:
    /// only when the condition is true (not false, not unknown).
    pub fn matches(&self, properties: &BTreeMap<String, String>, tag: Option<&str>) -> bool {
        let lookup = |name: &str| -> Option<&str> {
            if name == "TAGS" {
                return tag;
            }
            properties.get(name).map(String::as_str)
        };
        let truth = eval(&self.expr, &lookup);
        if crate::bugs::active(crate::bugs::Bug::SqlUnknownMatches) {
            // The planted defect: two-valued logic, unknown taken as a match.
            return truth != Some(false);
        }
        truth == Some(true)
    }
}

/// Evaluates a condition: `Some(true)`, `Some(false)`, or `None` (unknown).
pub fn eval<'a>(expr: &'a Expr, lookup: &dyn Fn(&str) -> Option<&'a str>) -> Option<bool> {
    match expr {
        Expr::Const(b) => Some(*b),
        Expr::Cmp(op, left, right) => compare(*op, &value(left, lookup), &value(right, lookup)),
        Expr::Between { value: v, low, high, negated } => {
            let v = value(v, lookup);
            let inside = and3(compare(CmpOp::Ge, &v, &value(low, lookup)), compare(CmpOp::Le, &v, &value(high, lookup)));
            if *negated { inside.map(|b| !b) } else { inside }
        }
        Expr::In { prop, list, negated } => {
            let v = lookup(prop)?;
            let found = list.iter().any(|s| s == v);
            Some(found != *negated)
        }
        Expr::IsNull { value: v, negated } => {
            let null = matches!(value(v, lookup), Value::Null);
            Some(null != *negated)
        }
        Expr::Text { op, prop, text, negated } => {
            let Some(v) = lookup(prop) else { return Some(false) };
            if text.is_empty() {
                return Some(false);
            }
            let hit = match op {
                TextOp::Contains => v.contains(text.as_str()),
                TextOp::StartsWith => v.starts_with(text.as_str()),
                TextOp::EndsWith => v.ends_with(text.as_str()),
            };
            Some(hit != *negated)
        }
        Expr::Not(e) => eval(e, lookup).map(|b| !b),
        Expr::And(a, b) => and3(eval(a, lookup), eval(b, lookup)),
        Expr::Or(a, b) => match (eval(a, lookup), eval(b, lookup)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// An operand's value at evaluation.
enum Value<'a> {
    /// A property's text.
    Text(&'a str),
    /// A literal.
    Lit(&'a Literal),
    /// Missing.
    Null,
}

fn value<'a>(operand: &'a Operand, lookup: &dyn Fn(&str) -> Option<&'a str>) -> Value<'a> {
    match operand {
        Operand::Prop(name) => lookup(name).map_or(Value::Null, Value::Text),
        Operand::Lit(Literal::Null) => Value::Null,
        Operand::Lit(lit) => Value::Lit(lit),
    }
}

fn ordered(op: CmpOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
    }
}

fn float_cmp(op: CmpOp, a: f64, b: f64) -> Option<bool> {
    a.partial_cmp(&b).map(|ord| ordered(op, ord))
}

/// A property's text read as a decimal (RocketMQ's `Double.valueOf`: spaces
/// around it allowed).
fn as_decimal(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// Compares two values; unknown when either is missing or they cannot be
/// compared.
fn compare(op: CmpOp, left: &Value, right: &Value) -> Option<bool> {
    let equality = matches!(op, CmpOp::Eq | CmpOp::Ne);
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Text(a), Value::Text(b)) => {
            if equality {
                Some((a == b) == (op == CmpOp::Eq))
            } else {
                float_cmp(op, as_decimal(a)?, as_decimal(b)?)
            }
        }
        (Value::Text(t), Value::Lit(l)) => text_vs_literal(op, t, l),
        (Value::Lit(l), Value::Text(t)) => text_vs_literal(flip(op), t, l),
        (Value::Lit(a), Value::Lit(b)) => literal_vs_literal(op, a, b),
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        same => same,
    }
}

fn text_vs_literal(op: CmpOp, text: &str, literal: &Literal) -> Option<bool> {
    match literal {
        Literal::Str(s) => match op {
            CmpOp::Eq => Some(text == s),
            CmpOp::Ne => Some(text != s),
            _ => None,
        },
        // Strict, as RocketMQ's Long.valueOf: "5.0" and " 5" are not 5.
        Literal::Int(n) => Some(ordered(op, text.parse::<i64>().ok()?.cmp(n))),
        Literal::Num(x) => float_cmp(op, as_decimal(text)?, *x),
        Literal::Bool(b) => {
            let truth = text.eq_ignore_ascii_case("true");
            match op {
                CmpOp::Eq => Some(truth == *b),
                CmpOp::Ne => Some(truth != *b),
                _ => None,
            }
        }
        Literal::Null => None,
    }
}

fn literal_vs_literal(op: CmpOp, a: &Literal, b: &Literal) -> Option<bool> {
    match (a, b) {
        (Literal::Str(x), Literal::Str(y)) => text_vs_literal(op, x, &Literal::Str(y.clone())),
        (Literal::Int(x), Literal::Int(y)) => Some(ordered(op, x.cmp(y))),
        (Literal::Int(x), Literal::Num(y)) => float_cmp(op, *x as f64, *y),
        (Literal::Num(x), Literal::Int(y)) => float_cmp(op, *x, *y as f64),
        (Literal::Num(x), Literal::Num(y)) => float_cmp(op, *x, *y),
        (Literal::Bool(x), Literal::Bool(y)) => match op {
            CmpOp::Eq => Some(x == y),
            CmpOp::Ne => Some(x != y),
            _ => None,
        },
        _ => None,
    }
}

/// Tokens.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Num(f64),
    Keyword(&'static str),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "`{s}`"),
            Token::Str(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Token::Int(n) => write!(f, "{n}"),
            Token::Num(x) => write!(f, "{x}"),
            Token::Keyword(k) => write!(f, "{k}"),
            Token::Sym(s) => write!(f, "`{s}`"),
        }
    }
}

const KEYWORDS: [&str; 12] = ["NOT", "AND", "OR", "BETWEEN", "IN", "TRUE", "FALSE", "NULL", "IS", "CONTAINS", "STARTSWITH", "ENDSWITH"];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$') {
                i += 1;
            }
            let word = &text[start..i];
            let upper = word.to_ascii_uppercase();
            match KEYWORDS.iter().find(|k| **k == upper) {
                Some(k) => out.push((Token::Keyword(k), start)),
                None => out.push((Token::Ident(word.to_string()), start)),
            }
            continue;
        }
        if c == b'\'' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(rest) = text.get(i..) else { unreachable!("char boundaries are kept") };
                let Some(q) = rest.find('\'') else {
                    return Err(format!("the string starting at byte {start} has no closing quote"));
                };
                s.push_str(&rest[..q]);
                i += q + 1;
                if bytes.get(i) == Some(&b'\'') {
                    s.push('\'');
                    i += 1;
                } else {
                    break;
                }
            }
            out.push((Token::Str(s), start));
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let mut decimal = false;
            if bytes.get(i) == Some(&b'.') {
                decimal = true;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if matches!(bytes.get(i), Some(b'e' | b'E')) {
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                    decimal = true;
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let literal = &text[start..i];
            if decimal {
                let x: f64 = literal.parse().map_err(|_| format!("bad number {literal} at byte {start}"))?;
                if !x.is_finite() {
                    return Err(format!("the number {literal} at byte {start} is too large"));
                }
                out.push((Token::Num(x), start));
            } else {
                if literal.len() > 1 && literal.starts_with('0') {
                    return Err(format!("the number {literal} at byte {start} has a leading zero (no octal here)"));
                }
                if matches!(bytes.get(i), Some(b'l' | b'L')) {
                    i += 1;
                }
                let n: i64 = literal.parse().map_err(|_| format!("the integer {literal} at byte {start} does not fit in 64 bits"))?;
                out.push((Token::Int(n), start));
            }
            if bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$' || *b == b'.') {
                return Err(format!("unexpected {:?} right after the number at byte {start}", text[i..].chars().next().unwrap_or(' ')));
            }
            continue;
        }
        let two = text.get(i..i + 2);
        let sym = match (c, two) {
            (_, Some("<>")) => "<>",
            (_, Some(">=")) => ">=",
            (_, Some("<=")) => "<=",
            (b'=', _) => "=",
            (b'>', _) => ">",
            (b'<', _) => "<",
            (b'(', _) => "(",
            (b')', _) => ")",
            (b',', _) => ",",
            (b'-', _) => "-",
            (b'+', _) => "+",
            _ => {
                let ch = text[i..].chars().next().unwrap_or(' ');
                let hint = match ch {
                    '!' => " (not equal is `<>`)",
                    '"' => " (strings take single quotes)",
                    '&' | '|' => " (use AND and OR)",
                    _ => "",
                };
                return Err(format!("unexpected {ch:?} at byte {i}{hint}"));
            }
        };
        i += sym.len();
        out.push((Token::Sym(sym), start));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn where_(&self) -> String {
        match self.tokens.get(self.at) {
            Some((t, pos)) => format!("{t} at byte {pos}"),
            None => "the end".to_string(),
        }
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Token::Keyword(x)) if *x == k) {
            self.at += 1;
            return true;
        }
        false
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(x)) if *x == s) {
            self.at += 1;
            return true;
        }
        false
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(format!("the filter nests deeper than {DEPTH_MAX} levels"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, String> {
        self.deeper()?;
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.condition()
    }

    /// A comparison, a test, or a parenthesized condition / boolean.
    fn condition(&mut self) -> Result<Expr, String> {
        // A parenthesized condition (not an operand: operands are never
        // parenthesized alone).
        if self.sym("(") {
            let inner = self.or()?;
            if !self.sym(")") {
                return Err(format!("expected `)` at {}", self.where_()));
            }
            return Ok(inner);
        }
        let left_at = self.where_();
        let left = self.operand()?;
        let negated = self.keyword("NOT");
        if negated && !matches!(self.peek(), Some(Token::Keyword("BETWEEN" | "IN" | "CONTAINS" | "STARTSWITH" | "ENDSWITH"))) {
            return Err(format!("expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT, found {}", self.where_()));
        }
        let op = match self.peek() {
            Some(Token::Sym("=")) => Some(CmpOp::Eq),
            Some(Token::Sym("<>")) => Some(CmpOp::Ne),
            Some(Token::Sym(">")) => Some(CmpOp::Gt),
            Some(Token::Sym(">=")) => Some(CmpOp::Ge),
            Some(Token::Sym("<")) => Some(CmpOp::Lt),
            Some(Token::Sym("<=")) => Some(CmpOp::Le),
            _ => None,
        };
        if let Some(op) = op {
            self.at += 1;
            let right_at = self.where_();
            let right = self.operand()?;
            for (side, at) in [(&left, &left_at), (&right, &right_at)] {
                match side {
                    Operand::Lit(Literal::Null) => {
                        return Err(format!("NULL at {at} is never equal to anything: test with IS NULL or IS NOT NULL"));
                    }
                    Operand::Lit(Literal::Str(_) | Literal::Bool(_)) if !matches!(op, CmpOp::Eq | CmpOp::Ne) => {
                        return Err(format!("{at}: only numbers are ordered; strings and booleans take = or <>"));
                    }
                    _ => {}
                }
            }
            return Ok(Expr::Cmp(op, left, right));
        }
        if self.keyword("BETWEEN") {
            let low_at = self.where_();
            let low = self.operand()?;
            if !self.keyword("AND") {
                return Err(format!("expected AND in BETWEEN at {}", self.where_()));
            }
            let high_at = self.where_();
            let high = self.operand()?;
            for (bound, at) in [(&low, &low_at), (&high, &high_at)] {
                if matches!(bound, Operand::Lit(Literal::Str(_) | Literal::Bool(_) | Literal::Null)) {
                    return Err(format!("BETWEEN takes numbers or properties, not {at}"));
                }
            }
            if let (Operand::Lit(l), Operand::Lit(h)) = (&low, &high) {
                if literal_vs_literal(CmpOp::Gt, l, h) == Some(true) {
                    return Err(format!("BETWEEN at {low_at}: the low bound is above the high one, so nothing is between"));
                }
            }
            return Ok(Expr::Between { value: left, low, high, negated });
        }
        if self.keyword("IN") {
            let Operand::Prop(prop) = left else {
                return Err(format!("IN tests a property, not {left_at}"));
            };
            if !self.sym("(") {
                return Err(format!("expected `(` after IN at {}", self.where_()));
            }
            let mut list = Vec::new();
            loop {
                match self.tokens.get(self.at) {
                    Some((Token::Str(s), _)) => {
                        list.push(s.clone());
                        self.at += 1;
                    }
                    _ => return Err(format!("IN lists strings ('a', 'b'), found {}", self.where_())),
                }
                if self.sym(")") {
                    break;
                }
                if !self.sym(",") {
                    return Err(format!("expected `,` or `)` in IN at {}", self.where_()));
                }
            }
            return Ok(Expr::In { prop, list, negated });
        }
        let text_op = if self.keyword("CONTAINS") {
            Some(TextOp::Contains)
        } else if self.keyword("STARTSWITH") {
            Some(TextOp::StartsWith)
        } else if self.keyword("ENDSWITH") {
            Some(TextOp::EndsWith)
        } else {
            None
        };
        if let Some(op) = text_op {
            let Operand::Prop(prop) = left else {
                return Err(format!("{op:?} tests a property, not {left_at}"));
            };
            let text = match self.tokens.get(self.at) {
                Some((Token::Str(s), _)) => s.clone(),
                _ => return Err(format!("{op:?} takes a string, found {}", self.where_())),
            };
            self.at += 1;
            return Ok(Expr::Text { op, prop, text, negated });
        }
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(format!("expected NULL after IS at {}", self.where_()));
            }
            return Ok(Expr::IsNull { value: left, negated });
        }
        match left {
            Operand::Lit(Literal::Bool(b)) => Ok(Expr::Const(b)),
            Operand::Prop(name) => Err(format!(
                "the property {name} alone is not a condition (at {left_at}): compare it ({name} = 'x') or test it ({name} IS NOT NULL)"
            )),
            _ => Err(format!("{left_at} is a value, not a condition: compare it with =, <>, >, >=, <, <=")),
        }
    }

    /// A property or a literal; a sign only before a number.
    fn operand(&mut self) -> Result<Operand, String> {
        let at = self.where_();
        let negative = self.sym("-");
        let signed = negative || self.sym("+");
        let Some((token, _)) = self.tokens.get(self.at).cloned() else {
            return Err(format!("expected a property or a value at {at}"));
        };
        self.at += 1;
        let operand = match token {
            Token::Int(n) => Operand::Lit(Literal::Int(if negative { -n } else { n })),
            Token::Num(x) => Operand::Lit(Literal::Num(if negative { -x } else { x })),
            _ if signed => return Err(format!("a sign goes only before a number (no arithmetic), at {at}")),
            Token::Ident(name) => Operand::Prop(name),
            Token::Str(s) => Operand::Lit(Literal::Str(s)),
            Token::Keyword("TRUE") => Operand::Lit(Literal::Bool(true)),
            Token::Keyword("FALSE") => Operand::Lit(Literal::Bool(false)),
            Token::Keyword("NULL") => Operand::Lit(Literal::Null),
            other => return Err(format!("expected a property or a value, found {other} at {at}")),
        };
        Ok(operand)
    }
}

#[cfg(test)]
mod tests;
