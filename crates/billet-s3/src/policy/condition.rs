//! A statement's `Condition` block: operators, their `IfExists` and set
//! (`ForAnyValue:` / `ForAllValues:`) forms, and evaluation against the
//! request's condition keys.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::PolicyError;
use super::pattern;

/// The condition keys billet sets (lower-case; keys compare
/// case-insensitively). A policy naming any other key is malformed.
pub const KNOWN_KEYS: &[&str] = &[
    "aws:currenttime",
    "aws:epochtime",
    "aws:principaltype",
    "aws:referer",
    "aws:securetransport",
    "aws:sourceip",
    "aws:useragent",
    "aws:userid",
    "aws:username",
    "s3:authtype",
    "s3:delimiter",
    "s3:max-keys",
    "s3:prefix",
    "s3:signatureversion",
    "s3:versionid",
    "s3:x-amz-acl",
    "s3:x-amz-content-sha256",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-storage-class",
];

/// The condition keys of one request: lower-case key → its values.
#[derive(Debug, Clone, Default)]
pub struct Context {
    values: HashMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets `key` (any case) to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    fn get(&self, key: &str) -> Option<&[String]> {
        self.values.get(key).map(Vec::as_slice)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Ordering),
    Date(Ordering),
    Bool,
    Ip,
    Null,
}

/// How a numeric or date operator compares the request's value with the
/// policy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordering {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl Ordering {
    fn holds(self, request: f64, policy: f64) -> bool {
        match self {
            Ordering::Equals => request == policy,
            Ordering::LessThan => request < policy,
            Ordering::LessThanEquals => request <= policy,
            Ordering::GreaterThan => request > policy,
            Ordering::GreaterThanEquals => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// A policy value, parsed once for its operator.
#[derive(Debug, Clone)]
enum Operand {
    Text(String),
    Number(f64),
    Net(IpNet),
}

/// One operator applied to one condition key.
#[derive(Debug, Clone)]
pub struct Test {
    kind: Kind,
    negated: bool,
    if_exists: bool,
    set: SetQualifier,
    key: String,
    values: Vec<Operand>,
}

fn operator(name: &str) -> Option<(Kind, bool)> {
    use Ordering::*;
    Some(match name {
        "StringEquals" | "ArnEquals" => (Kind::StringEquals, false),
        "StringNotEquals" | "ArnNotEquals" => (Kind::StringEquals, true),
        "StringEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Kind::StringEqualsIgnoreCase, true),
        "StringLike" | "ArnLike" => (Kind::StringLike, false),
        "StringNotLike" | "ArnNotLike" => (Kind::StringLike, true),
        "NumericEquals" => (Kind::Numeric(Equals), false),
        "NumericNotEquals" => (Kind::Numeric(Equals), true),
        "NumericLessThan" => (Kind::Numeric(LessThan), false),
        "NumericLessThanEquals" => (Kind::Numeric(LessThanEquals), false),
        "NumericGreaterThan" => (Kind::Numeric(GreaterThan), false),
        "NumericGreaterThanEquals" => (Kind::Numeric(GreaterThanEquals), false),
        "DateEquals" => (Kind::Date(Equals), false),
        "DateNotEquals" => (Kind::Date(Equals), true),
        "DateLessThan" => (Kind::Date(LessThan), false),
        "DateLessThanEquals" => (Kind::Date(LessThanEquals), false),
        "DateGreaterThan" => (Kind::Date(GreaterThan), false),
        "DateGreaterThanEquals" => (Kind::Date(GreaterThanEquals), false),
        "Bool" => (Kind::Bool, false),
        "IpAddress" => (Kind::Ip, false),
        "NotIpAddress" => (Kind::Ip, true),
        "Null" => (Kind::Null, false),
        _ => return None,
    })
}

/// Seconds since the epoch of an ISO 8601 date-time (`2026-01-01T00:00:00Z`,
/// a plain date) or of an epoch number.
pub fn parse_date(s: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(n) = s.parse::<i64>() {
        return Some(n as f64);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp() as f64);
    }
    let mut parts = s.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    time::Date::from_calendar_date(year, month, day)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() as f64)
}

fn parse_ip(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn operand(kind: Kind, op: &str, key: &str, raw: &str) -> Result<Operand, PolicyError> {
    let bad = |what: &str| {
        PolicyError::new(format!(
            "Invalid {what} {raw:?} for condition operator {op} on key {key}"
        ))
    };
    Ok(match kind {
        Kind::Numeric(_) => Operand::Number(raw.parse().map_err(|_| bad("number"))?),
        Kind::Date(_) => Operand::Number(parse_date(raw).ok_or_else(|| bad("date"))?),
        Kind::Ip => Operand::Net(parse_ip(raw).ok_or_else(|| bad("IP address or range"))?),
        Kind::Bool | Kind::Null => match raw.to_ascii_lowercase().as_str() {
            "true" | "false" => Operand::Text(raw.to_ascii_lowercase()),
            _ => return Err(bad("boolean")),
        },
        _ => Operand::Text(raw.to_string()),
    })
}

/// Parses a `Condition` object into its tests (all must hold).
pub fn parse(block: &Value) -> Result<Vec<Test>, PolicyError> {
    let Value::Object(ops) = block else {
        return Err(PolicyError::new("Condition must be an object"));
    };
    let mut tests = Vec::new();
    for (full, keys) in ops {
        let (set, rest) = if let Some(r) = full.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else if let Some(r) = full.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else {
            (SetQualifier::None, full.as_str())
        };
        let (name, if_exists) = match rest.strip_suffix("IfExists") {
            Some(n) if n != "Null" => (n, true),
            _ => (rest, false),
        };
        let (kind, negated) = operator(name)
            .ok_or_else(|| PolicyError::new(format!("Invalid Condition operator: {full}")))?;
        let Value::Object(keys) = keys else {
            return Err(PolicyError::new(format!(
                "Condition operator {full} must map condition keys to values"
            )));
        };
        if keys.is_empty() {
            return Err(PolicyError::new(format!(
                "Condition operator {full} names no condition key"
            )));
        }
        for (key, values) in keys {
            let lower = key.to_ascii_lowercase();
            if !KNOWN_KEYS.contains(&lower.as_str()) {
                return Err(PolicyError::new(format!(
                    "Policy has an invalid condition key: {key}"
                )));
            }
            let raw: Vec<String> = match values {
                Value::Array(a) => a.iter().map(scalar).collect::<Option<_>>(),
                v => scalar(v).map(|s| vec![s]),
            }
            .ok_or_else(|| {
                PolicyError::new(format!(
                    "Condition values for {key} must be strings, numbers or booleans"
                ))
            })?;
            if raw.is_empty() {
                return Err(PolicyError::new(format!(
                    "Condition {full} gives no value for {key}"
                )));
            }
            let values = raw
                .iter()
                .map(|r| operand(kind, full, key, r))
                .collect::<Result<_, _>>()?;
            tests.push(Test {
                kind,
                negated,
                if_exists,
                set,
                key: lower,
                values,
            });
        }
    }
    Ok(tests)
}

impl Test {
    /// Whether one request value matches one of the policy's values.
    fn matches_one(&self, value: &str) -> bool {
        self.values.iter().any(|p| match (self.kind, p) {
            (Kind::StringEquals, Operand::Text(p)) => p == value,
            (Kind::StringEqualsIgnoreCase, Operand::Text(p)) => p.eq_ignore_ascii_case(value),
            (Kind::StringLike, Operand::Text(p)) => pattern::matches(p, value),
            (Kind::Bool, Operand::Text(p)) => p.eq_ignore_ascii_case(value),
            (Kind::Numeric(o), Operand::Number(p)) => {
                value.parse::<f64>().is_ok_and(|v| o.holds(v, *p))
            }
            (Kind::Date(o), Operand::Number(p)) => {
                parse_date(value).is_some_and(|v| o.holds(v, *p))
            }
            (Kind::Ip, Operand::Net(net)) => {
                value.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip))
            }
            _ => false,
        })
    }

    /// Whether the test holds for the request's keys.
    pub fn holds(&self, cx: &Context) -> bool {
        let values = cx.get(&self.key).filter(|v| !v.is_empty());
        if self.kind == Kind::Null {
            let want_absent = matches!(self.values.first(), Some(Operand::Text(t)) if t == "true");
            return want_absent == values.is_none();
        }
        let Some(values) = values else {
            // An absent key matches nothing: the positive operators fail,
            // the negated ones hold; `IfExists` holds either way, and so
            // does ForAllValues (every one of no values matches).
            return self.if_exists || self.negated || self.set == SetQualifier::ForAllValues;
        };
        let matched = match self.set {
            SetQualifier::ForAllValues => values.iter().all(|v| self.matches_one(v)),
            _ => values.iter().any(|v| self.matches_one(v)),
        };
        matched != self.negated
    }

    /// Whether this test narrows who can use a statement by address (a
    /// statement so limited does not make a policy public).
    pub fn limits_source(&self) -> bool {
        !self.negated
            && self.kind == Kind::Ip
            && self.key == "aws:sourceip"
            && self.values.iter().all(|v| match v {
                Operand::Net(n) => n.prefix_len() > 0,
                _ => false,
            })
    }
}
