//! The S3 wire protocol for billet, through [`s3s`]: routing, XML, SigV4
//! (header, presigned, `aws-chunked` with signed chunks or trailing
//! checksums) come from s3s; this crate maps each operation onto the
//! engine and engine errors onto S3 error codes.

mod access;
mod auth;
mod authz;
mod body;
mod bucket_config;
mod checksums;
mod copy;
pub mod cors;
mod delete;
mod error;
mod get;
mod lifecycle;
mod listing;
mod multipart;
mod object_lock;
pub mod policy;
mod post_object;
mod put;
mod request_body;
mod s3;
mod sigv4;
mod tagging;
pub mod unsized_body;
mod util;

use std::sync::Arc;

use billet_engine::Engine;
use s3s::S3Result;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};

pub use access::{Access, ClientAddr, OpSlot, RequestKey, presigned_expiry_error};
pub use auth::Keys;
pub use authz::bucket_access;
pub use authz::{Authorizer, Decision, decide};
pub use error::to_s3;
pub use post_object::{PostTarget, handle as post_object};
pub use request_body::{BodyStalled, XML_MAX_BYTES};
pub use s3::BilletS3;

#[derive(Debug, Clone)]
pub struct S3Options {
    /// Region reported by GetBucketLocation and HeadBucket.
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`bucket.domain`);
    /// path style always works.
    pub domain: Option<String>,
    /// Largest single PutObject body.
    pub max_put_bytes: u64,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            region: "us-east-1".into(),
            domain: None,
            max_put_bytes: 5 << 30,
        }
    }
}

/// The one name outside S3's bucket namespace that paths may start with:
/// `/_billet/v1/...` is billet's own API, routed by `route` (which s3s
/// authenticates like any S3 request); no bucket can take the name.
pub const API_NAME: &str = "_billet";

/// S3's bucket name rules, plus [`API_NAME`] so that s3s parses
/// `/_billet/v1/...` far enough to check its signature.
struct BucketNames;

impl s3s::validation::NameValidation for BucketNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        name == API_NAME || s3s::path::check_bucket_name(name)
    }
}

/// The S3 service over `engine`, authenticating with the index's keys and
/// authorizing through `authz` (shared with the `/_billet/v1` endpoints,
/// which `route` answers after s3s checked their signature).
pub fn service(
    engine: Engine,
    authz: Authorizer,
    options: &S3Options,
    route: impl s3s::route::S3Route,
) -> Result<S3Service, String> {
    let s3 = BilletS3 {
        engine,
        authz: authz.clone(),
        region: options.region.clone(),
        max_put_bytes: options.max_put_bytes,
    };
    let mut b = S3ServiceBuilder::new(s3);
    b.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3s_config()))));
    b.set_auth(authz.keys().clone());
    b.set_validation(BucketNames);
    b.set_route(route);
    b.set_access(Access {
        authz,
        region: options.region.clone(),
        xml_max_bytes: XML_MAX_BYTES as u64,
    });
    if let Some(domain) = &options.domain {
        b.set_host(BaseDomain::new(domain)?);
    }
    Ok(b.build())
}

/// What s3s may buffer. XML bodies are read only after [`Access`] passed
/// (and checked their declared length); form uploads never reach s3s (the
/// HTTP layer hands them to `post_object`, which streams the file), but their bounds are
/// kept small anyway.
fn s3s_config() -> S3Config {
    let mut c = S3Config::default();
    c.xml_max_body_size = XML_MAX_BYTES;
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 64 << 10;
    c.form_max_fields_size = 256 << 10;
    c.form_max_parts = 64;
    c
}

/// Virtual-hosted-style addressing under one base domain: `b.domain[:port]`
/// names bucket `b`; any other host (the domain itself, an IP address,
/// `localhost`) is path style.
#[derive(Debug)]
pub struct BaseDomain {
    domain: String,
}

impl BaseDomain {
    pub fn new(domain: &str) -> Result<Self, String> {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.split('.').all(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(format!("base domain {domain:?} is not a domain name"));
        }
        Ok(BaseDomain { domain: d })
    }
}

/// The bucket a request names: by its `Host` under `domain`
/// (virtual-hosted style), else by the first segment of its path.
pub fn bucket_of(domain: Option<&BaseDomain>, host: Option<&str>, path: &str) -> Option<String> {
    if let (Some(d), Some(h)) = (domain, host)
        && let Ok(vh) = d.parse_host_header(h)
        && let Some(b) = vh.bucket()
    {
        return Some(b.to_string());
    }
    let first = path.trim_start_matches('/').split('/').next()?;
    (!first.is_empty()).then(|| first.to_string())
}

impl S3Host for BaseDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        // The port is not part of the name.
        let name = match host.rsplit_once(':') {
            Some((n, port)) if !n.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        };
        let lower = name.to_ascii_lowercase();
        if let Some(bucket) = lower
            .strip_suffix(self.domain.as_str())
            .and_then(|b| b.strip_suffix('.'))
            && !bucket.is_empty()
        {
            return Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket.to_string()));
        }
        Ok(VirtualHost::new(self.domain.as_str()))
    }
}
