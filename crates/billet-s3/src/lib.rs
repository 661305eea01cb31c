//! The S3 wire protocol for billet, through [`s3s`]: routing, XML, SigV4
//! (header, presigned, `aws-chunked` with signed chunks or trailing
//! checksums) come from s3s; this crate maps each operation onto the
//! engine and engine errors onto S3 error codes.

mod auth;
mod error;
mod listing;
mod multipart;
mod objects;
mod s3;
mod tagging;
mod util;

use billet_engine::Engine;
use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};

pub use auth::{Access, IndexAuth, OpSlot};
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

/// The S3 service over `engine`, authenticating with the index's keys.
pub fn service(engine: Engine, options: &S3Options) -> Result<S3Service, String> {
    let auth = IndexAuth::new(engine.index().clone());
    let s3 = BilletS3 {
        engine,
        auth: auth.clone(),
        region: options.region.clone(),
        max_put_bytes: options.max_put_bytes,
    };
    let mut b = S3ServiceBuilder::new(s3);
    b.set_auth(auth);
    b.set_access(Access);
    if let Some(domain) = &options.domain {
        b.set_host(BaseDomain::new(domain)?);
    }
    Ok(b.build())
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
