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
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn passes(sql: &str, pairs: &[(&str, &str)]) -> bool {
        SqlFilter::parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}")).matches(&props(pairs), Some("TagA"))
    }

    #[test]
    fn the_documented_examples_filter_as_rocketmq_does() {
        let gray = "(TAGS is not null and TAGS in ('TagA', 'TagB')) and (a is not null and a between 0 and 3)";
        assert!(passes(gray, &[("a", "2")]));
        assert!(!passes(gray, &[("a", "4")]));
        assert!(!passes(gray, &[]));
        assert!(passes("env = 'gray' OR region IN ('hz', 'sh')", &[("region", "sh")]));
        assert!(!passes("env = 'gray' OR region IN ('hz', 'sh')", &[("env", "prod")]));
        assert!(passes("price >= 9.5 AND price < 10.0", &[("price", "9.75")]));
        // Against an integer a value must be an integer, as in RocketMQ.
        assert!(!passes("price >= 9.5 AND price < 10", &[("price", "9.75")]));
        assert!(passes("n > 5", &[("n", "6")]));
        // Strict integers, lenient decimals.
        assert!(!passes("n > 5", &[("n", "6.0")]));
        assert!(passes("n > 5.0", &[("n", " 6 ")]));
        assert!(!passes("n > 5", &[("n", "abc")]));
        assert!(passes("flag = TRUE", &[("flag", "True")]));
        assert!(passes("flag = FALSE", &[("flag", "no")]));
        assert!(passes("id STARTSWITH 'ord-' AND id NOT ENDSWITH '-x'", &[("id", "ord-7")]));
        assert!(!passes("id NOT CONTAINS 'z'", &[]), "missing is false for the NOT forms too");
        assert!(passes("name = 'it''s'", &[("name", "it's")]));
        assert!(passes("n <> 3 and m = -2", &[("n", "4"), ("m", "-2")]));
        assert!(passes("n BETWEEN -3 AND 3L", &[("n", "0")]));
        assert!(passes("n NOT BETWEEN 1 AND 3", &[("n", "7")]));
    }

    #[test]
    fn unknown_is_neither_true_nor_false() {
        // A missing property: the comparison is unknown, so is its NOT.
        assert!(!passes("a = 'x'", &[]));
        assert!(!passes("NOT (a = 'x')", &[]));
        assert!(!passes("a <> 'x'", &[]));
        assert!(passes("a = 'x' OR b IS NULL", &[]));
        assert!(!passes("a = 'x' AND TRUE", &[]));
        assert!(!passes("a NOT IN ('x')", &[]));
        // Order does not matter where RocketMQ's short-circuit did.
        assert!(passes("n > 5 OR TRUE", &[("n", "abc")]));
        assert!(passes("TRUE OR n > 5", &[("n", "abc")]));
        // NOT binds looser than a comparison.
        assert!(passes("NOT a = 'x'", &[("a", "y")]));
        assert!(passes("not not a = 'x'", &[("a", "x")]));
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        let error = |sql: &str| SqlFilter::parse(sql).unwrap_err();
        assert!(error("").contains("empty"));
        assert!(error("a = 1 b = 2").contains("ended before it"), "{}", error("a = 1 b = 2"));
        assert!(error("a").contains("alone is not a condition"));
        assert!(error("a > 'x'").contains("only numbers are ordered"));
        assert!(error("a = NULL").contains("IS NULL"));
        assert!(error("a BETWEEN 10 AND 1").contains("low bound is above"));
        assert!(error("a BETWEEN 'a' AND 'b'").contains("BETWEEN takes numbers"));
        assert!(error("a IN (1, 2)").contains("IN lists strings"));
        assert!(error("a != 1").contains("`<>`"));
        assert!(error("a = \"x\"").contains("single quotes"));
        assert!(error("a = 'x").contains("no closing quote"));
        assert!(error("a = -b").contains("sign goes only before a number"));
        assert!(error("a = 99999999999999999999").contains("64 bits"));
        assert!(error("a = 010").contains("leading zero"));
        assert!(error("a = 0x10").contains("right after the number"));
        assert!(error("a LIKE 'x%'").contains("ended before it") || error("a LIKE 'x%'").contains("not a condition"));
        assert!(error("(a = 1").contains("expected `)`"));
        assert!(error("a NOT = 1").contains("after NOT"));
        assert!(error(&"(".repeat(100)).contains("nests deeper"));
        assert!(error(&format!("a = '{}'", "x".repeat(SQL_BYTES_MAX))).contains("at most"));
        assert!(error("in = 1").contains("expected a property"));
    }

    #[test]
    fn keywords_take_any_case_and_properties_keep_theirs() {
        assert!(passes("A = 'x' aNd b Is NoT nUlL", &[("A", "x"), ("b", "")]));
        assert!(!passes("a = 'x'", &[("A", "x")]));
        assert!(passes("TAGS = 'TagA'", &[]));
        assert!(passes("$x_1 = 1 or ANDY = 2", &[("ANDY", "2")]));
    }

    /// The reference: conditions drawn as trees, written out as text with
    /// every subcondition in parentheses and RocketMQ's keywords in random
    /// case, parsed back, and evaluated both ways over drawn properties. The
    /// reference evaluator below works on the drawn tree and knows nothing
    /// of the parser.
    mod reference {
        use super::super::*;
        use proptest::prelude::*;

        /// A drawn condition.
        #[derive(Clone, Debug)]
        enum Cond {
            Bool(bool),
            /// prop op int.
            CmpInt(&'static str, CmpOp, i64),
            /// prop op decimal.
            CmpNum(&'static str, CmpOp, f64),
            /// prop =/<> string.
            EqStr(&'static str, bool, String),
            /// prop op prop.
            CmpProps(&'static str, CmpOp, &'static str),
            Between(&'static str, i64, i64, bool),
            In(&'static str, Vec<String>, bool),
            IsNull(&'static str, bool),
            Text(&'static str, TextOp, String, bool),
            Not(Box<Cond>),
            And(Box<Cond>, Box<Cond>),
            Or(Box<Cond>, Box<Cond>),
        }

        const PROPS: [&str; 3] = ["a", "b", "TAGS"];
        const WORDS: [&str; 5] = ["x", "it's", "", "5", "gray"];

        fn op() -> impl Strategy<Value = CmpOp> {
            prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne), Just(CmpOp::Gt), Just(CmpOp::Ge), Just(CmpOp::Lt), Just(CmpOp::Le)]
        }

        fn prop_name() -> impl Strategy<Value = &'static str> {
            prop::sample::select(&PROPS[..])
        }

        fn word() -> impl Strategy<Value = String> {
            prop::sample::select(&WORDS[..]).prop_map(str::to_string)
        }

        fn leaf() -> impl Strategy<Value = Cond> {
            prop_oneof![
                any::<bool>().prop_map(Cond::Bool),
                (prop_name(), op(), -3i64..8).prop_map(|(p, o, n)| Cond::CmpInt(p, o, n)),
                (prop_name(), op(), -3i64..8).prop_map(|(p, o, n)| Cond::CmpNum(p, o, n as f64 + 0.5)),
                (prop_name(), any::<bool>(), word()).prop_map(|(p, eq, w)| Cond::EqStr(p, eq, w)),
                (prop_name(), op(), prop_name()).prop_map(|(p, o, q)| Cond::CmpProps(p, o, q)),
                (prop_name(), -3i64..4, 0i64..5, any::<bool>()).prop_map(|(p, lo, span, n)| Cond::Between(p, lo, lo + span, n)),
                (prop_name(), prop::collection::vec(word(), 1..4), any::<bool>()).prop_map(|(p, l, n)| Cond::In(p, l, n)),
                (prop_name(), any::<bool>()).prop_map(|(p, n)| Cond::IsNull(p, n)),
                (prop_name(), prop_oneof![Just(TextOp::Contains), Just(TextOp::StartsWith), Just(TextOp::EndsWith)], word(), any::<bool>())
                    .prop_map(|(p, o, w, n)| Cond::Text(p, o, w, n)),
            ]
        }

        fn cond() -> impl Strategy<Value = Cond> {
            leaf().prop_recursive(5, 32, 2, |inner| {
                prop_oneof![
                    inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
                    (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
                ]
            })
        }

        fn values() -> impl Strategy<Value = Vec<Option<String>>> {
            let value = prop_oneof![
                Just(None),
                (-4i64..9).prop_map(|n| Some(n.to_string())),
                (-4i64..9).prop_map(|n| Some(format!("{n}.5"))),
                word().prop_map(Some),
                Just(Some("TRUE".to_string())),
            ];
            prop::collection::vec(value, 3)
        }

        fn kw(word: &str, lower: bool) -> String {
            if lower { word.to_ascii_lowercase() } else { word.to_string() }
        }

        fn sym(op: CmpOp) -> &'static str {
            match op {
                CmpOp::Eq => "=",
                CmpOp::Ne => "<>",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
            }
        }

        fn quote(s: &str) -> String {
            format!("'{}'", s.replace('\'', "''"))
        }

        fn write(c: &Cond, lower: bool) -> String {
            let not = |n: bool| if n { format!("{} ", kw("NOT", lower)) } else { String::new() };
            match c {
                Cond::Bool(b) => kw(if *b { "TRUE" } else { "FALSE" }, lower),
                Cond::CmpInt(p, o, n) => format!("{p} {} {n}", sym(*o)),
                Cond::CmpNum(p, o, x) => format!("{p} {} {x:?}", sym(*o)),
                Cond::EqStr(p, eq, w) => format!("{p} {} {}", if *eq { "=" } else { "<>" }, quote(w)),
                Cond::CmpProps(p, o, q) => format!("{p} {} {q}", sym(*o)),
                Cond::Between(p, lo, hi, n) => format!("{p} {}{} {lo} {} {hi}", not(*n), kw("BETWEEN", lower), kw("AND", lower)),
                Cond::In(p, l, n) => {
                    format!("{p} {}{} ({})", not(*n), kw("IN", lower), l.iter().map(|w| quote(w)).collect::<Vec<_>>().join(", "))
                }
                Cond::IsNull(p, n) => format!("{p} {} {}{}", kw("IS", lower), not(*n), kw("NULL", lower)),
                Cond::Text(p, o, w, n) => {
                    let name = match o {
                        TextOp::Contains => "CONTAINS",
                        TextOp::StartsWith => "STARTSWITH",
                        TextOp::EndsWith => "ENDSWITH",
                    };
                    format!("{p} {}{} {}", not(*n), kw(name, lower), quote(w))
                }
                Cond::Not(inner) => format!("{}({})", not(true), write(inner, lower)),
                Cond::And(a, b) => format!("({}) {} ({})", write(a, lower), kw("AND", lower), write(b, lower)),
                Cond::Or(a, b) => format!("({}) {} ({})", write(a, lower), kw("OR", lower), write(b, lower)),
            }
        }

        /// Three-valued truth, written from the semantics in the module's
        /// documentation.
        fn truth(c: &Cond, get: &dyn Fn(&str) -> Option<String>) -> Option<bool> {
            let holds = |o: CmpOp, ord: std::cmp::Ordering| match o {
                CmpOp::Eq => ord.is_eq(),
                CmpOp::Ne => ord.is_ne(),
                CmpOp::Gt => ord.is_gt(),
                CmpOp::Ge => ord.is_ge(),
                CmpOp::Lt => ord.is_lt(),
                CmpOp::Le => ord.is_le(),
            };
            let decimal = |s: &str| s.trim().parse::<f64>().ok();
            match c {
                Cond::Bool(b) => Some(*b),
                Cond::CmpInt(p, o, n) => Some(holds(*o, get(p)?.parse::<i64>().ok()?.cmp(n))),
                Cond::CmpNum(p, o, x) => Some(holds(*o, decimal(&get(p)?)?.partial_cmp(x)?)),
                Cond::EqStr(p, eq, w) => Some((get(p)? == *w) == *eq),
                Cond::CmpProps(p, o, q) => {
                    let (l, r) = (get(p)?, get(q)?);
                    match o {
                        CmpOp::Eq => Some(l == r),
                        CmpOp::Ne => Some(l != r),
                        _ => Some(holds(*o, decimal(&l)?.partial_cmp(&decimal(&r)?)?)),
                    }
                }
                Cond::Between(p, lo, hi, n) => {
                    let v = get(p)?.parse::<i64>().ok()?;
                    Some((v >= *lo && v <= *hi) != *n)
                }
                Cond::In(p, l, n) => Some(l.contains(&get(p)?) != *n),
                Cond::IsNull(p, n) => Some(get(p).is_none() != *n),
                Cond::Text(p, o, w, n) => {
                    let Some(v) = get(p) else { return Some(false) };
                    if w.is_empty() {
                        return Some(false);
                    }
                    let hit = match o {
                        TextOp::Contains => v.contains(w.as_str()),
                        TextOp::StartsWith => v.starts_with(w.as_str()),
                        TextOp::EndsWith => v.ends_with(w.as_str()),
                    };
                    Some(hit != *n)
                }
                Cond::Not(inner) => truth(inner, get).map(|b| !b),
                Cond::And(a, b) => match (truth(a, get), truth(b, get)) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
                Cond::Or(a, b) => match (truth(a, get), truth(b, get)) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]
            #[test]
            fn the_parser_and_evaluator_agree_with_the_reference(c in cond(), vals in values(), lower in any::<bool>()) {
                let text = write(&c, lower);
                let filter = SqlFilter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                let mut props = BTreeMap::new();
                for (name, v) in ["a", "b"].iter().zip(&vals) {
                    if let Some(v) = v {
                        props.insert(name.to_string(), v.clone());
                    }
                }
                let tag = vals[2].clone();
                let get = |name: &str| if name == "TAGS" { tag.clone() } else { props.get(name).cloned() };
                let want = truth(&c, &get) == Some(true);
                prop_assert_eq!(filter.matches(&props, tag.as_deref()), want, "{} over {:?}", text, vals);
            }

            #[test]
            fn any_text_is_parsed_or_refused_without_a_panic(text in "[ -~]{0,60}") {
                let _ = SqlFilter::parse(&text);
            }
        }
    }
}
