//! The SigV4 signature of a POST policy: HMAC-SHA256 of the base64
//! policy under the key derived from the secret, date, region and
//! service (AWS's "Calculating a signature" for browser uploads). The
//! derivation is a few HMACs; s3s keeps its own private.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// The hex signature of `policy_b64` for `secret` on `date` (YYYYMMDD) in
/// `region`, service `s3`.
pub fn sign(secret: &str, date: &str, region: &str, policy_b64: &str) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, policy_b64.as_bytes()))
}

/// Whether `given` is the signature, compared in constant time.
pub fn verify(secret: &str, date: &str, region: &str, policy_b64: &str, given: &str) -> bool {
    let want = sign(secret, date, region, policy_b64);
    want.len() == given.len()
        && bool::from(want.as_bytes().ct_eq(given.to_ascii_lowercase().as_bytes()))
}

/// A `x-amz-credential` value: `KEY/YYYYMMDD/REGION/s3/aws4_request`.
pub struct Credential<'a> {
    pub key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

pub fn parse_credential(s: &str) -> Option<Credential<'_>> {
    let mut it = s.split('/');
    let c = Credential {
        key: it.next()?,
        date: it.next()?,
        region: it.next()?,
        service: it.next()?,
    };
    (it.next()? == "aws4_request"
        && it.next().is_none()
        && c.date.len() == 8
        && c.date.bytes().all(|b| b.is_ascii_digit()))
    .then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's worked example for browser POST (SigV4): its policy and the
    /// signature the documentation gives for it.
    #[test]
    fn aws_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let sig = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";
        assert_eq!(sign(secret, "20151229", "us-east-1", policy), sig);
        assert!(verify(secret, "20151229", "us-east-1", policy, sig));
        assert!(!verify(secret, "20151230", "us-east-1", policy, sig));
        let c =
            parse_credential("AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request").unwrap();
        assert_eq!(
            (c.key, c.date, c.region, c.service),
            ("AKIAIOSFODNN7EXAMPLE", "20151229", "us-east-1", "s3")
        );
        assert!(parse_credential("AK/2015/us-east-1/s3/aws4_request").is_none());
        assert!(parse_credential("AK/20151229/us-east-1/s3").is_none());
    }
}
