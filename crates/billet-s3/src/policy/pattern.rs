//! IAM wildcard matching: `*` matches any run of characters (also none),
//! `?` exactly one; everything else literally.

/// Whether `text` matches `pattern`, comparing characters with `eq`.
fn matches_by(pattern: &str, text: &str, eq: impl Fn(char, char) -> bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy with one backtrack point (the last `*`): linear in practice and
    // O(|p|·|t|) at worst, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || eq(c, t[ti]) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Case-sensitive wildcard match (resources, `StringLike`).
pub fn matches(pattern: &str, text: &str) -> bool {
    matches_by(pattern, text, |a, b| a == b)
}

/// ASCII-case-insensitive wildcard match (action names).
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    matches_by(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.txt", "dir/file.txt", true),
            ("*.txt", "dir/file.txt.gz", false),
            ("public/*", "public/", true),
            ("public/*", "publicity", false),
            ("a*b*c", "aXbYbZc", true),
            ("", "", true),
            ("", "x", false),
            ("ünï*", "ünïcode", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p:?} against {t:?}");
        }
        assert!(matches_ignore_case("s3:get*", "s3:GetObject"));
        assert!(!matches("s3:get*", "s3:GetObject"));
    }
}
