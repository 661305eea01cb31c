//! Bucket policies: IAM policy JSON parsed into statements and evaluated
//! the way AWS evaluates them — an explicit Deny wins, then any Allow,
//! else the implicit deny. Pure: the caller supplies the principal, the
//! action, the resource ARN and the request's condition keys.
//!
//! Principals are billet's owners and access keys: `"*"` (everyone, the
//! anonymous included), an access key id, an owner name, and their ARN
//! forms `arn:aws:iam::OWNER:root` (every key of OWNER) and
//! `arn:aws:iam::OWNER:user/KEY`.

mod condition;
mod pattern;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use condition::{Context, parse_date};
pub use pattern::{matches, matches_ignore_case};

use condition::Test;

/// Largest policy document accepted (AWS's bucket policy limit).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy document was refused (S3's MalformedPolicy); the message
/// names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

impl PolicyError {
    fn new(msg: impl Into<String>) -> Self {
        PolicyError(msg.into())
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Anonymous,
    Key { id: &'a str, owner: &'a str },
}

/// One request as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: Principal<'a>,
    /// `s3:GetObject` and so on.
    pub action: &'a str,
    /// `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// What a policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A statement denies it: nothing else can allow it.
    Deny,
    /// A statement allows it and none denies it.
    Allow,
    /// No statement applies.
    NotApplicable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or (for `NotAction`, `NotResource`,
/// `NotPrincipal`) everything but them.
#[derive(Debug, Clone)]
struct Patterns {
    items: Vec<String>,
    negated: bool,
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    /// `None`: any principal (`"*"`).
    principals: Option<Patterns>,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Test>,
}

/// A parsed bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// The S3 actions a policy may name (wildcards aside), lower-case.
const ACTIONS: &[&str] = &[
    "abortmultipartupload",
    "bypassgovernanceretention",
    "createbucket",
    "deletebucket",
    "deletebucketownershipcontrols",
    "deletebucketpolicy",
    "deletebuckettagging",
    "deletebucketwebsite",
    "deleteobject",
    "deleteobjecttagging",
    "deleteobjectversion",
    "deleteobjectversiontagging",
    "getaccelerateconfiguration",
    "getbucketacl",
    "getbucketcors",
    "getbucketlocation",
    "getbucketlogging",
    "getbucketnotification",
    "getbucketobjectlockconfiguration",
    "getbucketownershipcontrols",
    "getbucketpolicy",
    "getbucketpolicystatus",
    "getbucketpublicaccessblock",
    "getbuckettagging",
    "getbucketversioning",
    "getbucketwebsite",
    "getencryptionconfiguration",
    "getlifecycleconfiguration",
    "getobject",
    "getobjectacl",
    "getobjectattributes",
    "getobjectlegalhold",
    "getobjectretention",
    "getobjecttagging",
    "getobjectversion",
    "getobjectversionacl",
    "getobjectversionattributes",
    "getobjectversiontagging",
    "getreplicationconfiguration",
    "listallmybuckets",
    "listbucket",
    "listbucketmultipartuploads",
    "listbucketversions",
    "listmultipartuploadparts",
    "putbucketacl",
    "putbucketcors",
    "putbucketlogging",
    "putbucketnotification",
    "putbucketobjectlockconfiguration",
    "putbucketownershipcontrols",
    "putbucketpolicy",
    "putbucketpublicaccessblock",
    "putbuckettagging",
    "putbucketversioning",
    "putbucketwebsite",
    "putencryptionconfiguration",
    "putlifecycleconfiguration",
    "putobject",
    "putobjectacl",
    "putobjectlegalhold",
    "putobjectretention",
    "putobjecttagging",
    "putobjectversionacl",
    "putobjectversiontagging",
    "putreplicationconfiguration",
];

fn one_or_many(v: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    let items = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PolicyError::new(format!("{field} must hold only strings")))?,
        Value::Array(_) => return Err(PolicyError::new(format!("{field} must not be empty"))),
        _ => {
            return Err(PolicyError::new(format!(
                "{field} must be a string or an array of strings"
            )));
        }
    };
    Ok(items)
}

/// `Action`/`NotAction`, or `Resource`/`NotResource`: exactly one of the
/// two.
fn either<'a>(
    st: &'a Map<String, Value>,
    positive: &str,
    negative: &str,
) -> Result<(&'a Value, bool), PolicyError> {
    match (st.get(positive), st.get(negative)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (Some(_), Some(_)) => Err(PolicyError::new(format!(
            "A statement can not have both {positive} and {negative}"
        ))),
        (None, None) => Err(PolicyError::new(format!(
            "Missing required field {positive}"
        ))),
    }
}

fn check_action(a: &str) -> Result<(), PolicyError> {
    if a == "*" {
        return Ok(());
    }
    let Some(name) = a
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("s3:"))
        .map(|_| &a[3..])
    else {
        return Err(PolicyError::new(format!("Policy has invalid action: {a}")));
    };
    let lower = name.to_ascii_lowercase();
    let known = if lower.contains(['*', '?']) {
        ACTIONS.iter().any(|k| pattern::matches(&lower, k))
    } else {
        ACTIONS.contains(&lower.as_str())
    };
    if known {
        Ok(())
    } else {
        Err(PolicyError::new(format!("Policy has invalid action: {a}")))
    }
}

/// A resource must name this bucket or objects in it.
fn check_resource(r: &str, bucket: &str) -> Result<(), PolicyError> {
    let rest = r
        .strip_prefix("arn:aws:s3:::")
        .ok_or_else(|| PolicyError::new(format!("Policy has invalid resource: {r}")))?;
    let name = rest.split('/').next().unwrap_or(rest);
    if name == bucket || (name.contains(['*', '?']) && pattern::matches(name, bucket)) {
        Ok(())
    } else {
        Err(PolicyError::new(format!(
            "Policy has invalid resource: {r} is not in bucket {bucket}"
        )))
    }
}

fn principals(v: &Value, field: &str) -> Result<Option<Vec<String>>, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(None),
        Value::Object(m) if !m.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in m {
                if kind != "AWS" && kind != "CanonicalUser" {
                    return Err(PolicyError::new(format!(
                        "Invalid principal in policy: {field} type {kind} (AWS or CanonicalUser)"
                    )));
                }
                let ids = one_or_many(ids, &format!("{field}.{kind}"))?;
                if ids.iter().any(|i| i == "*") {
                    return Ok(None);
                }
                if let Some(bad) = ids.iter().find(|i| i.is_empty()) {
                    return Err(PolicyError::new(format!(
                        "Invalid principal in policy: {bad:?}"
                    )));
                }
                out.extend(ids);
            }
            Ok(Some(out))
        }
        _ => Err(PolicyError::new(format!(
            "Invalid principal in policy: {field} must be \"*\" or an object such as {{\"AWS\": [...]}}"
        ))),
    }
}

fn statement(v: &Value, bucket: &str, n: usize) -> Result<Statement, PolicyError> {
    let Value::Object(st) = v else {
        return Err(PolicyError::new(format!("Statement {n} must be an object")));
    };
    for field in st.keys() {
        if !matches!(
            field.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(PolicyError::new(format!(
                "Unknown field {field} in statement {n}"
            )));
        }
    }
    if let Some(sid) = st.get("Sid")
        && !sid.is_string()
    {
        return Err(PolicyError::new("Sid must be a string"));
    }
    let effect = match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(PolicyError::new(format!("Invalid effect: {other}"))),
        None => return Err(PolicyError::new("Missing required field Effect")),
    };
    let principals = match (st.get("Principal"), st.get("NotPrincipal")) {
        (Some(p), None) => principals(p, "Principal")?.map(|items| Patterns {
            items,
            negated: false,
        }),
        (None, Some(p)) => Some(Patterns {
            items: principals(p, "NotPrincipal")?.unwrap_or_default(),
            negated: true,
        }),
        (Some(_), Some(_)) => {
            return Err(PolicyError::new(
                "A statement can not have both Principal and NotPrincipal",
            ));
        }
        (None, None) => return Err(PolicyError::new("Missing required field Principal")),
    };
    let (actions, negated) = either(st, "Action", "NotAction")?;
    let actions = one_or_many(actions, if negated { "NotAction" } else { "Action" })?;
    actions.iter().try_for_each(|a| check_action(a))?;
    let actions = Patterns {
        items: actions,
        negated,
    };
    let (resources, negated) = either(st, "Resource", "NotResource")?;
    let resources = one_or_many(resources, if negated { "NotResource" } else { "Resource" })?;
    resources
        .iter()
        .try_for_each(|r| check_resource(r, bucket))?;
    let resources = Patterns {
        items: resources,
        negated,
    };
    let conditions = match st.get("Condition") {
        Some(c) => condition::parse(c)?,
        None => Vec::new(),
    };
    Ok(Statement {
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

impl Policy {
    /// Parses a bucket policy for `bucket`, refusing anything AWS would
    /// refuse as MalformedPolicy (and anything billet cannot honour).
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::new(format!(
                "Policy exceeds the maximum allowed document size of {MAX_POLICY_BYTES} bytes"
            )));
        }
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError::new(format!("Policies must be valid JSON ({e})")))?;
        let Value::Object(doc) = doc else {
            return Err(PolicyError::new(
                "Policies must be valid JSON and the first byte must be '{'",
            ));
        };
        for field in doc.keys() {
            if !matches!(field.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::new(format!("Unknown field {field}")));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => {
                return Err(PolicyError::new(format!(
                    "The policy must contain a valid version string (2012-10-17 or 2008-10-17), not {v}"
                )));
            }
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
            Some(Value::Array(_)) => {
                return Err(PolicyError::new("Statement must not be empty"));
            }
            Some(v @ Value::Object(_)) => vec![v],
            Some(_) => {
                return Err(PolicyError::new(
                    "Statement must be an object or an array of objects",
                ));
            }
            None => return Err(PolicyError::new("Missing required field Statement")),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| statement(s, bucket, i + 1))
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// What the policy says about `req`.
    pub fn evaluate(&self, req: &Request<'_>) -> Outcome {
        let mut allowed = false;
        for st in &self.statements {
            if !st.applies(req) {
                continue;
            }
            match st.effect {
                Effect::Deny => return Outcome::Deny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            Outcome::Allow
        } else {
            Outcome::NotApplicable
        }
    }

    /// Whether the policy allows anything to everyone: an Allow statement
    /// for any principal (or all but some) not narrowed to address ranges.
    /// Such a policy is what a public access block refuses or restricts.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|st| {
            st.effect == Effect::Allow
                && st.principals.as_ref().is_none_or(|p| p.negated)
                && !st.conditions.iter().any(Test::limits_source)
        })
    }
}

impl Statement {
    fn applies(&self, req: &Request<'_>) -> bool {
        let principal = match &self.principals {
            None => true,
            Some(p) => p.negated != p.items.iter().any(|i| principal_matches(i, req.principal)),
        };
        principal
            && self.actions.negated
                != self
                    .actions
                    .items
                    .iter()
                    .any(|a| pattern::matches_ignore_case(a, req.action))
            && self.resources.negated
                != self
                    .resources
                    .items
                    .iter()
                    .any(|r| pattern::matches(r, req.resource))
            && self.conditions.iter().all(|c| c.holds(req.context))
    }
}

/// Whether a policy's principal entry names the request's principal.
fn principal_matches(entry: &str, who: Principal<'_>) -> bool {
    let Principal::Key { id, owner } = who else {
        return false;
    };
    if entry == id || entry == owner {
        return true;
    }
    match entry.strip_prefix("arn:aws:iam::") {
        Some(rest) => match rest.split_once(':') {
            Some((o, "root")) => o == owner,
            Some((o, user)) => o == owner && user.strip_prefix("user/") == Some(id),
            None => false,
        },
        None => false,
    }
}
