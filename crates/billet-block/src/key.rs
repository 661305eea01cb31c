//! Object keys: what S3 allows and the MST can order.

/// S3's limit on a key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is empty")]
    Empty,
    #[error("key is {0} bytes, above the {MAX_KEY_BYTES}-byte limit")]
    TooLong(usize),
    #[error("key is not valid UTF-8")]
    NotUtf8,
    #[error("key contains a NUL byte")]
    Nul,
}

/// Checks a key: 1..=1024 bytes of UTF-8 without NUL.
pub fn validate_key(key: &[u8]) -> Result<&str, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(key.len()));
    }
    if key.contains(&0) {
        return Err(KeyError::Nul);
    }
    std::str::from_utf8(key).map_err(|_| KeyError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(validate_key(b""), Err(KeyError::Empty));
        assert_eq!(validate_key(&[b'a'; 1025]), Err(KeyError::TooLong(1025)));
        assert!(validate_key(&[b'a'; 1024]).is_ok());
        assert_eq!(validate_key(b"a\0b"), Err(KeyError::Nul));
        assert_eq!(validate_key(&[0xff, 0xfe]), Err(KeyError::NotUtf8));
        assert_eq!(validate_key("dir/ü ñ\n".as_bytes()), Ok("dir/ü ñ\n"));
    }
}
