//! The evaluator against AWS's rules, case by case: explicit deny beats
//! allow beats the implicit deny; wildcards; the negated elements; each
//! condition operator; documents refused as MalformedPolicy.

use super::*;

const B: &str = "photos";

fn anon() -> Principal<'static> {
    Principal::Anonymous
}
fn alice() -> Principal<'static> {
    Principal::Key {
        id: "AKALICE1",
        owner: "alice",
    }
}
fn bob() -> Principal<'static> {
    Principal::Key {
        id: "AKBOB1",
        owner: "bob",
    }
}

fn doc(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

fn allow(principal: &str, action: &str, resource: &str, condition: &str) -> String {
    statement("Allow", principal, action, resource, condition)
}

fn deny(principal: &str, action: &str, resource: &str, condition: &str) -> String {
    statement("Deny", principal, action, resource, condition)
}

fn statement(
    effect: &str,
    principal: &str,
    action: &str,
    resource: &str,
    condition: &str,
) -> String {
    let cond = if condition.is_empty() {
        String::new()
    } else {
        format!(r#","Condition":{condition}"#)
    };
    format!(
        r#"{{"Effect":"{effect}","Principal":{principal},"Action":{action},"Resource":{resource}{cond}}}"#
    )
}

const ANY: &str = r#""*""#;
const GET: &str = r#""s3:GetObject""#;
const ALL_OBJECTS: &str = r#""arn:aws:s3:::photos/*""#;

struct Case {
    name: &'static str,
    policy: String,
    who: Principal<'static>,
    action: &'static str,
    resource: &'static str,
    context: Context,
    want: Outcome,
}

fn case(
    name: &'static str,
    policy: String,
    who: Principal<'static>,
    action: &'static str,
    key: &'static str,
    want: Outcome,
) -> Case {
    Case {
        name,
        policy,
        who,
        action,
        resource: key,
        context: Context::new(),
        want,
    }
}

fn obj(key: &str) -> String {
    format!("arn:aws:s3:::{B}/{key}")
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn with_cx(mut c: Case, cx: Context) -> Case {
    c.context = cx;
    c
}

fn cases() -> Vec<Case> {
    use Outcome::*;
    let o = |k: &str| leak(obj(k));
    let bucket = "arn:aws:s3:::photos";
    let public_prefix = doc(&allow(ANY, GET, r#""arn:aws:s3:::photos/public/*""#, ""));
    let cond = |c: &str| doc(&allow(ANY, GET, ALL_OBJECTS, c));
    let mut v = vec![
        // Effects and their precedence.
        case(
            "allow applies",
            public_prefix.clone(),
            anon(),
            "s3:GetObject",
            o("public/a.jpg"),
            Allow,
        ),
        case(
            "outside the prefix",
            public_prefix.clone(),
            anon(),
            "s3:GetObject",
            o("private/a.jpg"),
            NotApplicable,
        ),
        case(
            "other action",
            public_prefix.clone(),
            anon(),
            "s3:PutObject",
            o("public/a.jpg"),
            NotApplicable,
        ),
        case(
            "bucket is not its objects",
            public_prefix.clone(),
            anon(),
            "s3:GetObject",
            bucket,
            NotApplicable,
        ),
        case(
            "explicit deny beats allow",
            doc(&format!(
                "{},{}",
                allow(ANY, GET, ALL_OBJECTS, ""),
                deny(ANY, GET, r#""arn:aws:s3:::photos/secret/*""#, "")
            )),
            alice(),
            "s3:GetObject",
            o("secret/x"),
            Deny,
        ),
        case(
            "deny listed first still wins",
            doc(&format!(
                "{},{}",
                deny(ANY, r#""s3:*""#, ALL_OBJECTS, ""),
                allow(ANY, GET, ALL_OBJECTS, "")
            )),
            bob(),
            "s3:GetObject",
            o("a"),
            Deny,
        ),
        case(
            "deny elsewhere leaves the allow",
            doc(&format!(
                "{},{}",
                allow(ANY, GET, ALL_OBJECTS, ""),
                deny(ANY, GET, r#""arn:aws:s3:::photos/secret/*""#, "")
            )),
            alice(),
            "s3:GetObject",
            o("open/x"),
            Allow,
        ),
        case(
            "deny only",
            doc(&deny(ANY, GET, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObject",
            o("a"),
            Deny,
        ),
        case(
            "deny of another action",
            doc(&deny(ANY, r#""s3:DeleteObject""#, ALL_OBJECTS, "")),
            alice(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        // Principals.
        case(
            "key id names the key",
            doc(&allow(r#"{"AWS":"AKBOB1"}"#, GET, ALL_OBJECTS, "")),
            bob(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "key id is not another key",
            doc(&allow(r#"{"AWS":"AKBOB1"}"#, GET, ALL_OBJECTS, "")),
            alice(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "owner names every key of it",
            doc(&allow(r#"{"AWS":["bob"]}"#, GET, ALL_OBJECTS, "")),
            bob(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "root ARN",
            doc(&allow(
                r#"{"AWS":"arn:aws:iam::bob:root"}"#,
                GET,
                ALL_OBJECTS,
                "",
            )),
            bob(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "user ARN",
            doc(&allow(
                r#"{"AWS":"arn:aws:iam::bob:user/AKBOB1"}"#,
                GET,
                ALL_OBJECTS,
                "",
            )),
            bob(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "user ARN of another owner",
            doc(&allow(
                r#"{"AWS":"arn:aws:iam::alice:user/AKBOB1"}"#,
                GET,
                ALL_OBJECTS,
                "",
            )),
            bob(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "named principals exclude the anonymous",
            doc(&allow(r#"{"AWS":"bob"}"#, GET, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "AWS * is everyone",
            doc(&allow(r#"{"AWS":"*"}"#, GET, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "CanonicalUser",
            doc(&allow(r#"{"CanonicalUser":"bob"}"#, GET, ALL_OBJECTS, "")),
            bob(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "NotPrincipal denies all others",
            doc(
                r#"{"Effect":"Deny","NotPrincipal":{"AWS":"alice"},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            bob(),
            "s3:GetObject",
            o("a"),
            Deny,
        ),
        case(
            "NotPrincipal spares its principal",
            doc(
                r#"{"Effect":"Deny","NotPrincipal":{"AWS":"alice"},"Action":"s3:*","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            alice(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        // Actions.
        case(
            "action wildcard",
            doc(&allow(ANY, r#""s3:Get*""#, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObjectTagging",
            o("a"),
            Allow,
        ),
        case(
            "action wildcard misses",
            doc(&allow(ANY, r#""s3:Get*""#, ALL_OBJECTS, "")),
            anon(),
            "s3:PutObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "action names ignore case",
            doc(&allow(ANY, r#""S3:getobject""#, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "star action",
            doc(&allow(ANY, r#""*""#, ALL_OBJECTS, "")),
            anon(),
            "s3:DeleteObject",
            o("a"),
            Allow,
        ),
        case(
            "action list",
            doc(&allow(
                ANY,
                r#"["s3:PutObject","s3:GetObject"]"#,
                ALL_OBJECTS,
                "",
            )),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "question-mark action",
            doc(&allow(ANY, r#""s3:?etObject""#, ALL_OBJECTS, "")),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "NotAction allows the rest",
            doc(
                r#"{"Effect":"Allow","Principal":"*","NotAction":"s3:DeleteObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "NotAction excludes its action",
            doc(
                r#"{"Effect":"Allow","Principal":"*","NotAction":"s3:DeleteObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            anon(),
            "s3:DeleteObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "Deny with NotAction",
            doc(
                r#"{"Effect":"Deny","Principal":"*","NotAction":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::photos","arn:aws:s3:::photos/*"]}"#,
            ),
            alice(),
            "s3:PutObject",
            o("a"),
            Deny,
        ),
        // Resources.
        case(
            "bucket resource",
            doc(&allow(
                ANY,
                r#""s3:ListBucket""#,
                r#""arn:aws:s3:::photos""#,
                "",
            )),
            anon(),
            "s3:ListBucket",
            bucket,
            Allow,
        ),
        case(
            "resource ? wildcard",
            doc(&allow(ANY, GET, r#""arn:aws:s3:::photos/img?.jpg""#, "")),
            anon(),
            "s3:GetObject",
            o("img1.jpg"),
            Allow,
        ),
        case(
            "resource ? needs one char",
            doc(&allow(ANY, GET, r#""arn:aws:s3:::photos/img?.jpg""#, "")),
            anon(),
            "s3:GetObject",
            o("img.jpg"),
            NotApplicable,
        ),
        case(
            "resource is case-sensitive",
            doc(&allow(ANY, GET, r#""arn:aws:s3:::photos/Public/*""#, "")),
            anon(),
            "s3:GetObject",
            o("public/a"),
            NotApplicable,
        ),
        case(
            "middle wildcard",
            doc(&allow(ANY, GET, r#""arn:aws:s3:::photos/*/thumbs/*""#, "")),
            anon(),
            "s3:GetObject",
            o("2026/thumbs/a.png"),
            Allow,
        ),
        case(
            "NotResource",
            doc(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotResource":"arn:aws:s3:::photos/private/*"}"#,
            ),
            anon(),
            "s3:GetObject",
            o("open/a"),
            Allow,
        ),
        case(
            "NotResource excludes",
            doc(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotResource":"arn:aws:s3:::photos/private/*"}"#,
            ),
            anon(),
            "s3:GetObject",
            o("private/a"),
            NotApplicable,
        ),
        // Conditions: strings.
        case(
            "StringEquals with no key fails",
            cond(r#"{"StringEquals":{"s3:prefix":"a/"}}"#),
            anon(),
            "s3:GetObject",
            o("a"),
            NotApplicable,
        ),
        case(
            "StringNotEquals with no key holds",
            cond(r#"{"StringNotEquals":{"s3:prefix":"a/"}}"#),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "StringEqualsIfExists with no key holds",
            cond(r#"{"StringEqualsIfExists":{"s3:prefix":"a/"}}"#),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
        case(
            "Null true: key absent",
            cond(r#"{"Null":{"s3:x-amz-acl":"true"}}"#),
            anon(),
            "s3:GetObject",
            o("a"),
            Allow,
        ),
    ];
    let acl = |v: &str| Context::new().with("s3:x-amz-acl", v);
    let ip = |v: &str| Context::new().with("aws:SourceIp", v);
    let more = vec![
        with_cx(
            case(
                "StringEquals",
                cond(r#"{"StringEquals":{"s3:x-amz-acl":"public-read"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            acl("public-read"),
        ),
        with_cx(
            case(
                "StringEquals is case-sensitive",
                cond(r#"{"StringEquals":{"s3:x-amz-acl":"public-read"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            acl("Public-Read"),
        ),
        with_cx(
            case(
                "StringEqualsIgnoreCase",
                cond(r#"{"StringEqualsIgnoreCase":{"s3:x-amz-acl":"public-read"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            acl("PUBLIC-READ"),
        ),
        with_cx(
            case(
                "StringNotEqualsIgnoreCase",
                cond(r#"{"StringNotEqualsIgnoreCase":{"s3:x-amz-acl":"public-read"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            acl("PUBLIC-READ"),
        ),
        with_cx(
            case(
                "values are ORed",
                cond(r#"{"StringEquals":{"s3:x-amz-acl":["private","public-read"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            acl("public-read"),
        ),
        with_cx(
            case(
                "StringNotEquals excludes each value",
                cond(r#"{"StringNotEquals":{"s3:x-amz-acl":["private","public-read"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            acl("public-read"),
        ),
        with_cx(
            case(
                "StringLike",
                cond(r#"{"StringLike":{"s3:prefix":["home/*"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:prefix", "home/alice/"),
        ),
        with_cx(
            case(
                "StringNotLike",
                cond(r#"{"StringNotLike":{"s3:prefix":["home/*"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:prefix", "home/alice/"),
        ),
        with_cx(
            case(
                "keys ANDed",
                cond(r#"{"StringEquals":{"s3:prefix":"a/","s3:delimiter":"/"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:prefix", "a/"),
        ),
        with_cx(
            case(
                "operators ANDed",
                cond(
                    r#"{"StringEquals":{"s3:prefix":"a/"},"StringEquals":{"s3:prefix":"a/"},"Bool":{"aws:SecureTransport":"true"}}"#,
                ),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new()
                .with("s3:prefix", "a/")
                .with("aws:SecureTransport", "false"),
        ),
        with_cx(
            case(
                "condition keys ignore case",
                cond(r#"{"StringEquals":{"S3:X-AMZ-ACL":"private"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            acl("private"),
        ),
        with_cx(
            case(
                "Null false: key present",
                cond(r#"{"Null":{"s3:x-amz-acl":"false"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            acl("private"),
        ),
        with_cx(
            case(
                "ForAllValues",
                cond(r#"{"ForAllValues:StringLike":{"s3:prefix":["a*","b*"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:prefix", "b1"),
        ),
        with_cx(
            case(
                "ForAnyValue",
                cond(r#"{"ForAnyValue:StringEquals":{"s3:prefix":["x","y"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:prefix", "z"),
        ),
        // Numbers.
        with_cx(
            case(
                "NumericLessThanEquals",
                cond(r#"{"NumericLessThanEquals":{"s3:max-keys":"100"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:max-keys", "100"),
        ),
        with_cx(
            case(
                "NumericLessThan",
                cond(r#"{"NumericLessThan":{"s3:max-keys":100}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:max-keys", "100"),
        ),
        with_cx(
            case(
                "NumericGreaterThan",
                cond(r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:max-keys", "11"),
        ),
        with_cx(
            case(
                "NumericGreaterThanEquals",
                cond(r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:max-keys", "9"),
        ),
        with_cx(
            case(
                "NumericEquals",
                cond(r#"{"NumericEquals":{"s3:max-keys":"10"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:max-keys", "10.0"),
        ),
        with_cx(
            case(
                "NumericNotEquals",
                cond(r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("s3:max-keys", "11"),
        ),
        with_cx(
            case(
                "a non-number never matches",
                cond(r#"{"NumericEquals":{"s3:max-keys":"10"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("s3:max-keys", "ten"),
        ),
        // Dates.
        with_cx(
            case(
                "DateLessThan",
                cond(r#"{"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("aws:CurrentTime", "2026-12-05T10:00:00Z"),
        ),
        with_cx(
            case(
                "DateGreaterThan",
                cond(r#"{"DateGreaterThan":{"aws:CurrentTime":"2027-01-01"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("aws:CurrentTime", "2026-12-05T10:00:00Z"),
        ),
        with_cx(
            case(
                "DateGreaterThanEquals by epoch",
                cond(r#"{"DateGreaterThanEquals":{"aws:EpochTime":"1700000000"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("aws:EpochTime", "1700000000"),
        ),
        with_cx(
            case(
                "DateLessThanEquals",
                cond(r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-12-05T10:00:00Z"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("aws:CurrentTime", "2026-12-05T10:00:00Z"),
        ),
        with_cx(
            case(
                "DateEquals",
                cond(r#"{"DateEquals":{"aws:CurrentTime":"2026-12-05T10:00:00+00:00"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("aws:CurrentTime", "2026-12-05T10:00:00Z"),
        ),
        with_cx(
            case(
                "DateNotEquals",
                cond(r#"{"DateNotEquals":{"aws:CurrentTime":"2026-12-05T10:00:00Z"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("aws:CurrentTime", "2026-12-05T10:00:00Z"),
        ),
        // Bool and addresses.
        with_cx(
            case(
                "Bool",
                cond(r#"{"Bool":{"aws:SecureTransport":"false"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            Context::new().with("aws:SecureTransport", "false"),
        ),
        with_cx(
            case(
                "Bool mismatch",
                cond(r#"{"Bool":{"aws:SecureTransport":true}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            Context::new().with("aws:SecureTransport", "false"),
        ),
        with_cx(
            case(
                "IpAddress range",
                cond(r#"{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            ip("127.0.0.1"),
        ),
        with_cx(
            case(
                "IpAddress outside",
                cond(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.7"]}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            ip("127.0.0.1"),
        ),
        with_cx(
            case(
                "IpAddress single address",
                cond(r#"{"IpAddress":{"aws:SourceIp":"192.168.1.7"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            ip("192.168.1.7"),
        ),
        with_cx(
            case(
                "NotIpAddress",
                cond(r#"{"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::NotApplicable,
            ),
            ip("127.0.0.1"),
        ),
        with_cx(
            case(
                "IPv6 range",
                cond(r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#),
                anon(),
                "s3:GetObject",
                o("a"),
                Outcome::Allow,
            ),
            ip("2001:db8::1"),
        ),
        with_cx(
            case(
                "deny without TLS beats the allow",
                doc(&format!(
                    "{},{}",
                    allow(ANY, GET, ALL_OBJECTS, ""),
                    deny(
                        ANY,
                        r#""s3:*""#,
                        ALL_OBJECTS,
                        r#"{"Bool":{"aws:SecureTransport":"false"}}"#
                    )
                )),
                alice(),
                "s3:GetObject",
                o("a"),
                Outcome::Deny,
            ),
            Context::new().with("aws:SecureTransport", "false"),
        ),
    ];
    v.extend(more);
    v
}

#[test]
fn evaluation_follows_aws_rules() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for c in &cases {
        let policy = Policy::parse(&c.policy, B)
            .unwrap_or_else(|e| panic!("{}: policy refused: {e}\n{}", c.name, c.policy));
        let req = Request {
            principal: c.who,
            action: c.action,
            resource: c.resource,
            context: &c.context,
        };
        assert_eq!(policy.evaluate(&req), c.want, "{}", c.name);
    }
}

#[test]
fn malformed_documents_name_their_problem() {
    let ok = allow(ANY, GET, ALL_OBJECTS, "");
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "valid JSON"),
        ("[]".into(), "first byte must be '{'"),
        (
            r#"{"Version":"2012-10-17"}"#.into(),
            "Missing required field Statement",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#.into(),
            "Statement must not be empty",
        ),
        (
            format!(r#"{{"Version":"2011-01-01","Statement":[{ok}]}}"#),
            "valid version string",
        ),
        (
            format!(r#"{{"Version":"2012-10-17","Statment":[{ok}]}}"#),
            "Unknown field Statment",
        ),
        (
            doc(
                r#"{"Effect":"Permit","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "Invalid effect: Permit",
        ),
        (
            doc(r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Effect",
        ),
        (
            doc(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Principal",
        ),
        (
            doc(r#"{"Effect":"Allow","Principal":"*","Resource":"arn:aws:s3:::photos/*"}"#),
            "Missing required field Action",
        ),
        (
            doc(r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#),
            "Missing required field Resource",
        ),
        (
            doc(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"arn:aws:s3:::photos/*"}"#,
            ),
            "both Action and NotAction",
        ),
        (
            doc(&allow(ANY, r#""s3:GetObjekt""#, ALL_OBJECTS, "")),
            "invalid action: s3:GetObjekt",
        ),
        (
            doc(&allow(ANY, r#""ec2:RunInstances""#, ALL_OBJECTS, "")),
            "invalid action",
        ),
        (
            doc(&allow(ANY, GET, r#""arn:aws:s3:::other/*""#, "")),
            "invalid resource",
        ),
        (
            doc(&allow(ANY, GET, r#""photos/*""#, "")),
            "invalid resource",
        ),
        (
            doc(&allow(r#""someone""#, GET, ALL_OBJECTS, "")),
            "Invalid principal",
        ),
        (
            doc(&allow(
                r#"{"Service":"s3.amazonaws.com"}"#,
                GET,
                ALL_OBJECTS,
                "",
            )),
            "Invalid principal",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"StringEquality":{"s3:prefix":"a"}}"#,
            )),
            "Invalid Condition operator: StringEquality",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"StringEquals":{"s3:nosuchkey":"a"}}"#,
            )),
            "invalid condition key: s3:nosuchkey",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"IpAddress":{"aws:SourceIp":"300.1.1.1"}}"#,
            )),
            "Invalid IP address",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"DateLessThan":{"aws:CurrentTime":"soon"}}"#,
            )),
            "Invalid date",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"NumericLessThan":{"s3:max-keys":"many"}}"#,
            )),
            "Invalid number",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"Bool":{"aws:SecureTransport":"yes"}}"#,
            )),
            "Invalid boolean",
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"StringEquals":{"s3:prefix":{"a":1}}}"#,
            )),
            "must be strings",
        ),
        (
            doc(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::photos/*","Extra":1}"#,
            ),
            "Unknown field Extra",
        ),
        (
            doc(&allow(ANY, "[]", ALL_OBJECTS, "")),
            "Action must not be empty",
        ),
        (
            doc(&allow(ANY, "7", ALL_OBJECTS, "")),
            "Action must be a string",
        ),
        (
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                vec![ok.clone(); 300].join(",")
            ),
            "maximum allowed document size",
        ),
    ];
    for (text, want) in cases {
        match Policy::parse(&text, B) {
            Ok(_) => panic!("accepted: {}", &text[..text.len().min(300)]),
            Err(e) => assert!(
                e.0.contains(want),
                "{text}\n  said {:?}, wanted {want:?}",
                e.0
            ),
        }
    }
}

#[test]
fn public_policies_are_told_apart() {
    let cases = [
        (doc(&allow(ANY, GET, ALL_OBJECTS, "")), true),
        (doc(&allow(r#"{"AWS":"*"}"#, GET, ALL_OBJECTS, "")), true),
        (doc(&allow(r#"{"AWS":"bob"}"#, GET, ALL_OBJECTS, "")), false),
        (doc(&deny(ANY, GET, ALL_OBJECTS, "")), false),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            )),
            false,
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
            )),
            true,
        ),
        (
            doc(&allow(
                ANY,
                GET,
                ALL_OBJECTS,
                r#"{"StringEquals":{"s3:prefix":"a"}}"#,
            )),
            true,
        ),
    ];
    for (text, want) in cases {
        let p = Policy::parse(&text, B).expect("valid");
        assert_eq!(p.is_public(), want, "{text}");
    }
}
