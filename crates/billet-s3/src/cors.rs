//! CORS: a bucket's rules (PutBucketCors), kept as JSON in its settings,
//! and what they answer — to a preflight `OPTIONS` (without
//! authentication, as S3 does) and on the actual response of a request
//! that carries `Origin`.

use http::{HeaderMap, HeaderValue, Method};
use s3s::dto::{CORSConfiguration, CORSRule};
use s3s::{S3Result, s3_error};
use serde_json::{Value, json};

use crate::authz::Authorizer;
use crate::policy::matches;

/// At most this many rules per bucket (AWS's limit).
const MAX_RULES: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One rule, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: Option<String>,
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub expose: Vec<String>,
    pub max_age: Option<i32>,
}

fn one_star(s: &str) -> bool {
    s.matches('*').count() <= 1
}

/// Rules from S3's XML (PutBucketCors), refused with MalformedXML or
/// InvalidRequest naming the problem.
pub fn from_dto(c: &CORSConfiguration) -> S3Result<Vec<Rule>> {
    if c.cors_rules.is_empty() || c.cors_rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "A CORS configuration holds 1 to {MAX_RULES} CORSRule elements"
        ));
    }
    c.cors_rules
        .iter()
        .map(|r: &CORSRule| {
            if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
                return Err(s3_error!(
                    MalformedXML,
                    "Each CORSRule needs an AllowedOrigin and an AllowedMethod"
                ));
            }
            if let Some(m) = r
                .allowed_methods
                .iter()
                .find(|m| !METHODS.contains(&m.as_str()))
            {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
            let headers = r.allowed_headers.clone().unwrap_or_default();
            if let Some(o) = r
                .allowed_origins
                .iter()
                .chain(&headers)
                .find(|o| !one_star(o))
            {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin and AllowedHeader may hold at most one wildcard: {o}"
                ));
            }
            Ok(Rule {
                id: r.id.clone(),
                origins: r.allowed_origins.clone(),
                methods: r.allowed_methods.clone(),
                headers,
                expose: r.expose_headers.clone().unwrap_or_default(),
                max_age: r.max_age_seconds,
            })
        })
        .collect()
}

pub fn to_dto(rules: &[Rule]) -> Vec<CORSRule> {
    rules
        .iter()
        .map(|r| CORSRule {
            id: r.id.clone(),
            allowed_origins: r.origins.clone(),
            allowed_methods: r.methods.clone(),
            allowed_headers: (!r.headers.is_empty()).then(|| r.headers.clone()),
            expose_headers: (!r.expose.is_empty()).then(|| r.expose.clone()),
            max_age_seconds: r.max_age,
        })
        .collect()
}

pub fn to_setting(rules: &[Rule]) -> String {
    let v: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({"id": r.id, "origins": r.origins, "methods": r.methods,
                   "headers": r.headers, "expose": r.expose, "max_age": r.max_age})
        })
        .collect();
    Value::Array(v).to_string()
}

/// Rules from their stored form (one that does not parse allows nothing).
pub fn from_setting(s: &str) -> Vec<Rule> {
    let strings = |v: &Value, k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    serde_json::from_str::<Value>(s)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|v| Rule {
            id: v.get("id").and_then(Value::as_str).map(str::to_string),
            origins: strings(v, "origins"),
            methods: strings(v, "methods"),
            headers: strings(v, "headers"),
            expose: strings(v, "expose"),
            max_age: v
                .get("max_age")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok()),
        })
        .collect()
}

/// The first rule allowing `origin` to use `method` with `headers` (the
/// preflight's `Access-Control-Request-Headers`, lower-case).
pub fn find<'a>(
    rules: &'a [Rule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a Rule> {
    rules.iter().find(|r| {
        r.origins.iter().any(|o| matches(o, origin))
            && r.methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.headers
                    .iter()
                    .any(|p| matches(&p.to_ascii_lowercase(), h))
            })
    })
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// What a matched rule adds to a response to `origin`.
pub fn allow_headers(h: &mut HeaderMap, rule: &Rule, origin: &str) {
    let any = rule.origins.iter().any(|o| o == "*");
    set(
        h,
        "access-control-allow-origin",
        if any { "*" } else { origin },
    );
    set(h, "access-control-allow-methods", &rule.methods.join(", "));
    if !rule.expose.is_empty() {
        set(h, "access-control-expose-headers", &rule.expose.join(", "));
    }
    if let Some(age) = rule.max_age {
        set(h, "access-control-max-age", &age.to_string());
    }
    if !any {
        set(h, "access-control-allow-credentials", "true");
    }
    h.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

/// A preflight's answer: the headers to send, or why it is refused.
pub fn preflight(
    rules: Option<&[Rule]>,
    origin: Option<&str>,
    method: Option<&str>,
    request_headers: Option<&str>,
) -> Result<HeaderMap, &'static str> {
    let (Some(origin), Some(method)) = (origin, method) else {
        return Err("Insufficient information. Origin request header needed.");
    };
    let Some(rules) = rules else {
        return Err("CORSResponse: CORS is not enabled for this bucket.");
    };
    if Method::from_bytes(method.as_bytes()).is_err() {
        return Err("CORSResponse: Invalid access control request method.");
    }
    let headers: Vec<String> = request_headers
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let rule = find(rules, origin, method, &headers)
        .ok_or("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")?;
    let mut h = HeaderMap::new();
    allow_headers(&mut h, rule, origin);
    if !headers.is_empty() {
        set(&mut h, "access-control-allow-headers", &headers.join(", "));
    }
    Ok(h)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Why a preflight is refused: status, S3 code, message.
pub type Refusal = (http::StatusCode, &'static str, &'static str);

/// The answer to a preflight `OPTIONS` on `bucket`: the headers to send
/// with a 200, or the refusal. No authentication: the rules answer.
pub async fn answer_preflight(
    authz: &Authorizer,
    bucket: &str,
    headers: &HeaderMap,
) -> Result<HeaderMap, Refusal> {
    let access = authz.bucket(bucket).await.map_err(|_| {
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "reading the bucket's CORS rules failed",
        )
    })?;
    let Some(access) = access else {
        return Err((
            http::StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        ));
    };
    preflight(
        access.cors.as_deref(),
        header(headers, "origin"),
        header(headers, "access-control-request-method"),
        header(headers, "access-control-request-headers"),
    )
    .map_err(|msg| (http::StatusCode::FORBIDDEN, "AccessForbidden", msg))
}

/// The CORS headers for the response to a request that carries `Origin`
/// (`None`: no rule allows that origin and method, or no such bucket).
pub async fn response_headers(
    authz: &Authorizer,
    bucket: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<HeaderMap> {
    let origin = header(headers, "origin")?;
    let access = authz.bucket(bucket).await.ok()??;
    let rules = access.cors.as_deref()?;
    let rule = find(rules, origin, method.as_str(), &[])?;
    let mut h = HeaderMap::new();
    allow_headers(&mut h, rule, origin);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> Rule {
        Rule {
            id: None,
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            headers: headers.iter().map(|s| s.to_string()).collect(),
            expose: vec!["ETag".into()],
            max_age: Some(600),
        }
    }

    #[test]
    fn rules_match_origin_method_and_headers() {
        let rules = vec![
            rule(
                &["https://app.example.com"],
                &["GET", "PUT"],
                &["Content-Type", "x-amz-*"],
            ),
            rule(&["http://*.example.org"], &["GET"], &[]),
            rule(&["*"], &["HEAD"], &["*"]),
        ];
        let hs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            find(
                &rules,
                "https://app.example.com",
                "PUT",
                &hs(&["content-type", "x-amz-date"])
            ),
            Some(&rules[0])
        );
        assert_eq!(find(&rules, "https://app.example.com", "DELETE", &[]), None);
        assert_eq!(
            find(
                &rules,
                "https://app.example.com",
                "PUT",
                &hs(&["authorization"])
            ),
            None
        );
        assert_eq!(
            find(&rules, "http://a.example.org", "GET", &[]),
            Some(&rules[1])
        );
        assert_eq!(
            find(&rules, "http://a.example.org", "GET", &hs(&["x-custom"])),
            None
        );
        assert_eq!(
            find(&rules, "https://evil.test", "HEAD", &hs(&["anything"])),
            Some(&rules[2])
        );
        assert_eq!(find(&rules, "https://evil.test", "GET", &[]), None);
        let round = from_setting(&to_setting(&rules));
        assert_eq!(round, rules);
    }

    #[test]
    fn preflights() {
        let rules = vec![rule(
            &["https://app.example.com"],
            &["PUT"],
            &["content-type"],
        )];
        let h = preflight(
            Some(&rules),
            Some("https://app.example.com"),
            Some("PUT"),
            Some("Content-Type"),
        )
        .unwrap();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-methods"], "PUT");
        assert_eq!(h["access-control-allow-headers"], "content-type");
        assert_eq!(h["access-control-max-age"], "600");
        assert!(preflight(Some(&rules), Some("https://other"), Some("PUT"), None).is_err());
        assert!(preflight(None, Some("https://app.example.com"), Some("PUT"), None).is_err());
        assert!(preflight(Some(&rules), None, Some("PUT"), None).is_err());
    }
}
