use sha2::{Digest, Sha256};

/// atproto's layer ("height") of a key: leading zero bits of SHA-256(key),
/// halved and rounded down, so each layer is four times sparser.
pub fn layer_of(key: &[u8]) -> u8 {
    let digest = Sha256::digest(key);
    let mut zeros = 0u32;
    for byte in digest.iter() {
        if *byte == 0 {
            zeros += 8;
        } else {
            zeros += byte.leading_zeros();
            break;
        }
    }
    (zeros / 2) as u8
}

/// Bytes shared at the start of `a` and `b`.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_from_the_atproto_spec_and_interop_vectors() {
        for (key, layer) in [
            ("", 0),
            ("asdf", 0),
            ("blue", 1),
            ("2653ae71", 0),
            ("88bfafc7", 2),
            ("2a92d355", 4),
            ("884976f5", 6),
            ("app.bsky.feed.post/454397e440ec", 4),
            ("app.bsky.feed.post/9adeb165882c", 8),
        ] {
            assert_eq!(layer_of(key.as_bytes()), layer, "{key}");
        }
    }

    #[test]
    fn prefix_lengths() {
        for (a, b, n) in [
            ("abc", "abc", 3),
            ("", "abc", 0),
            ("abc", "", 0),
            ("ab", "abc", 2),
            ("abcde", "abc1", 3),
            ("abcde", "abb", 2),
            ("abcde", "qbb", 0),
        ] {
            assert_eq!(common_prefix_len(a.as_bytes(), b.as_bytes()), n);
        }
    }
}
