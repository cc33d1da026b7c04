//! `--expect 'faults.by_order.0 <= 64'`: bounds on a recording, for CI.
//!
//! A bound is `PATH OP NUMBER` with OP one of `<` `<=` `==` `!=` `>=` `>`.
//! PATH names a field of the JSON document with dots (`lost_events`,
//! `devices.0.zaps.count`); a device can be named by its address in
//! brackets (`devices[0000:01:00.0].faults.total`), since the address has
//! dots itself. A path that is not a field of the document but is one of
//! each device (`faults.by_order.0`, `zaps.count`) is summed over devices.
//!
//! The verdict is under `verdict`, as `report --format json` prints it. An
//! element of any list can be picked by one of its fields with `[FIELD=VALUE]`:
//! `verdict.devices.0.bars[index=2].mappings.0.projections[order=9].faults`.

use std::fmt;

use serde_json::Value;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Ge => ">=",
            Self::Gt => ">",
        }
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Eq => (left - right).abs() < f64::EPSILON,
            Self::Ne => (left - right).abs() >= f64::EPSILON,
            Self::Ge => left >= right,
            Self::Gt => left > right,
        }
    }
}

/// One parsed bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    pub text: String,
    pub path: Vec<String>,
    pub op: Op,
    pub bound: f64,
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpectError {
    #[error("bad --expect '{text}': {why}")]
    Syntax { text: String, why: String },
    #[error("bad --expect '{text}': no field {path} in the document, its devices or the verdict")]
    NoField { text: String, path: String },
    #[error("bad --expect '{text}': {path} is not a number")]
    NotANumber { text: String, path: String },
}

/// Splits `a.b[c.d].e` into `a`, `b`, `c.d`, `e`.
fn split_path(path: &str) -> Result<Vec<String>, String> {
    let mut segs = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']').ok_or("unclosed '['")?;
            segs.push(inner[..end].to_owned());
            rest = &inner[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end == 0 {
                return Err("empty name in the path".into());
            }
            segs.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        if let Some(next) = rest.strip_prefix('.') {
            if next.is_empty() {
                return Err("path ends with '.'".into());
            }
            rest = next;
        } else if !rest.is_empty() && !rest.starts_with('[') {
            return Err(format!("unexpected '{rest}'"));
        }
    }
    if segs.iter().any(String::is_empty) {
        return Err("empty name in the path".into());
    }
    Ok(segs)
}

impl Expect {
    /// # Errors
    /// When `text` is not `PATH OP NUMBER`.
    pub fn parse(text: &str) -> Result<Self, ExpectError> {
        let fail = |why: &str| ExpectError::Syntax {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        // Two-character operators first, so `<=` is not read as `<`.
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| text.find(sym).map(|at| (at, *sym, *op)))
            .min_by_key(|(at, sym, _)| (*at, std::cmp::Reverse(sym.len())))
            .ok_or_else(|| fail("expected PATH OP NUMBER with OP one of < <= == != >= >"))?;
        let path = text[..at].trim();
        let number = text[at + sym.len()..].trim();
        if path.is_empty() {
            return Err(fail("no path before the operator"));
        }
        let bound: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| fail(&format!("'{number}' is not a number")))?;
        let path = split_path(path).map_err(|why| fail(&why))?;
        Ok(Self {
            text: text.trim().to_owned(),
            path,
            op,
            bound,
        })
    }
}

/// The value at `path` under `v`; array elements by index, by `FIELD=VALUE`,
/// or, for devices, by `bdf`.
fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(items) => {
            if let Ok(i) = seg.parse::<usize>() {
                return items.get(i);
            }
            let (field, want) = seg.split_once('=').unwrap_or(("bdf", seg));
            items
                .iter()
                .find(|i| i.get(field).is_some_and(|f| same(f, want)))
        }
        _ => None,
    })
}

/// Whether a JSON scalar reads as `want`: a string equal to it, or a number
/// equal to it parsed.
fn same(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => want.parse::<f64>().ok() == n.as_f64(),
        _ => false,
    }
}

/// The value a bound compares: the document's field, or the sum over devices.
///
/// # Errors
/// When the path names no field, or one that is not a number.
pub fn value(doc: &Value, e: &Expect) -> Result<f64, ExpectError> {
    let shown = || e.path.join(".");
    let number = |v: &Value| {
        v.as_f64().ok_or_else(|| ExpectError::NotANumber {
            text: e.text.clone(),
            path: shown(),
        })
    };
    if let Some(v) = at(doc, &e.path) {
        return number(v);
    }
    let devices = doc.get("devices").and_then(Value::as_array);
    let found: Vec<&Value> = devices
        .into_iter()
        .flatten()
        .filter_map(|d| at(d, &e.path))
        .collect();
    if found.is_empty() {
        return Err(ExpectError::NoField {
            text: e.text.clone(),
            path: shown(),
        });
    }
    found.into_iter().map(number).sum()
}

/// A bound that does not hold, with the value found.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub expect: String,
    pub value: f64,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expect failed: {} (got {})", self.expect, self.value)
    }
}

/// Checks every bound, returning those that fail.
///
/// # Errors
/// When a bound cannot be evaluated at all (see [`value`]).
pub fn check(doc: &Value, expects: &[Expect]) -> Result<Vec<Failed>, ExpectError> {
    let mut failed = Vec::new();
    for e in expects {
        let v = value(doc, e)?;
        if !e.op.holds(v, e.bound) {
            failed.push(Failed {
                expect: format!("{} {} {}", e.path.join("."), e.op.symbol(), e.bound),
                value: v,
            });
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::to_value(crate::record::document_tests::sample()).expect("json")
    }

    fn eval(text: &str) -> Result<Vec<Failed>, ExpectError> {
        check(&doc(), &[Expect::parse(text)?])
    }

    #[test]
    fn parses_paths_operators_and_numbers() {
        let e = Expect::parse(" faults.by_order.0 <= 64 ").expect("parses");
        assert_eq!(e.path, ["faults", "by_order", "0"]);
        assert_eq!(e.op, Op::Le);
        assert!((e.bound - 64.0).abs() < f64::EPSILON);
        let e = Expect::parse("devices[0000:01:00.0].zaps.count==1").expect("parses");
        assert_eq!(e.path, ["devices", "0000:01:00.0", "zaps", "count"]);
        assert_eq!(e.op, Op::Eq);
        for (text, op) in [
            ("a<1", Op::Lt),
            ("a>1", Op::Gt),
            ("a!=1", Op::Ne),
            ("a>=1.5", Op::Ge),
        ] {
            assert_eq!(Expect::parse(text).expect(text).op, op);
        }
    }

    #[test]
    fn bad_expressions_are_one_line() {
        for (text, why) in [
            ("faults.total", "expected PATH OP NUMBER"),
            ("<= 3", "no path before the operator"),
            ("faults.total <= many", "'many' is not a number"),
            ("faults..total < 1", "empty name in the path"),
            ("devices[0 < 1", "unclosed '['"),
        ] {
            let err = Expect::parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("bad --expect '{text}': ")),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
            assert!(!err.contains('\n'));
        }
        assert_eq!(
            eval("faults.nope < 1").expect_err("no field").to_string(),
            "bad --expect 'faults.nope < 1': no field faults.nope in the document, its devices or the verdict"
        );
        assert_eq!(
            eval("kernel.release < 1").expect_err("text").to_string(),
            "bad --expect 'kernel.release < 1': kernel.release is not a number"
        );
    }

    #[test]
    fn bounds_hold_or_fail_with_the_value() {
        // The sample: six 2 MiB faults, one zap, three events lost.
        assert_eq!(eval("faults.by_order.9 == 6"), Ok(vec![]));
        assert_eq!(eval("devices.0.zaps.count == 1"), Ok(vec![]));
        assert_eq!(eval("devices[0000:01:00.0].faults.total >= 6"), Ok(vec![]));
        assert_eq!(eval("lost_events <= 3"), Ok(vec![]));
        assert_eq!(
            eval("faults.by_order.9 <= 4"),
            Ok(vec![Failed {
                expect: "faults.by_order.9 <= 4".into(),
                value: 6.0
            }])
        );
        assert_eq!(
            eval("zaps.count != 1").expect("evaluates")[0].to_string(),
            "expect failed: zaps.count != 1 (got 1)"
        );
    }

    #[test]
    fn list_elements_by_field() {
        let v = serde_json::json!({"verdict": {"devices": [{"bdf": "0000:01:00.0", "bars": [
            {"index": 0, "faults": 1},
            {"index": 2, "projections": [{"order": 9, "faults": 32}, {"order": 18, "faults": 1}]}
        ]}]}});
        let e = |t: &str| Expect::parse(t).expect(t);
        assert_eq!(
            check(
                &v,
                &[e(
                    "verdict.devices.0.bars[index=2].projections[order=9].faults == 32"
                )]
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(
                &v,
                &[e(
                    "verdict.devices[0000:01:00.0].bars[index=2].projections[order=18].faults <= 1"
                )]
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(&v, &[e("verdict.devices.0.bars[index=7].faults < 1")])
                .expect_err("no BAR 7")
                .to_string(),
            "bad --expect 'verdict.devices.0.bars[index=7].faults < 1': no field \
             verdict.devices.0.bars.index=7.faults in the document, its devices or the verdict"
        );
    }

    #[test]
    fn device_paths_sum_over_devices() {
        let mut v = doc();
        let second = v["devices"][0].clone();
        if let Some(devices) = v["devices"].as_array_mut() {
            devices.push(second);
        }
        let e = Expect::parse("faults.total == 12").expect("parses");
        assert_eq!(check(&v, &[e]), Ok(vec![]));
    }
}
