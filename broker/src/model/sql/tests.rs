//! The SQL92 filter's tests: RocketMQ's documented examples, three-valued
//! logic, refusals, and a reference evaluator over drawn conditions.

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
