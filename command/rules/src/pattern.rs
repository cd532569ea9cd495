//! The two pattern languages of Azure Policy conditions.
//!
//! * `like`: `*` matches any run of characters, everything else literally, case-insensitive.
//!   Azure documents a single `*`; more are accepted and behave as a glob would.
//! * `match`: `#` a digit, `?` a letter, `.` any character, anything else literally; the
//!   whole string must match, so lengths are equal. Case-sensitive unless `Insensitively`.

/// Whether `text` matches the `like` pattern.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    if text.is_ascii() && pattern.is_ascii() {
        glob(text.as_bytes(), pattern.as_bytes(), true)
    } else {
        // Lower-casing both sides keeps `*` intact and makes byte equality char equality.
        glob(text.to_lowercase().as_bytes(), pattern.to_lowercase().as_bytes(), false)
    }
}

/// Iterative glob with one backtracking point: linear in practice, never exponential.
fn glob(text: &[u8], pattern: &[u8], ascii_ci: bool) -> bool {
    let same = |a: u8, b: u8| {
        if ascii_ci { a.eq_ignore_ascii_case(&b) } else { a == b }
    };
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if text.get(t).is_some_and(|&x| same(x, c)) => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Whether `text` matches the `match` pattern.
pub(crate) fn matches(text: &str, pattern: &str, case_sensitive: bool) -> bool {
    let mut text_chars = text.chars();
    for p in pattern.chars() {
        let Some(c) = text_chars.next() else {
            return false;
        };
        let ok = match p {
            '#' => c.is_ascii_digit(),
            '?' => c.is_alphabetic(),
            '.' => true,
            literal if case_sensitive => c == literal,
            literal => c.to_lowercase().eq(literal.to_lowercase()),
        };
        if !ok {
            return false;
        }
    }
    text_chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_with_a_trailing_star_matches_prefixes_case_insensitively() {
        assert!(like("Microsoft.Network/publicIPAddresses", "microsoft.network/*"));
        assert!(!like("Microsoft.Storage/storageAccounts", "microsoft.network/*"));
    }

    #[test]
    fn like_with_a_leading_or_inner_star_matches() {
        assert!(like("prod-netrg", "*netrg"));
        assert!(like("app-prod-01", "app-*-01"));
        assert!(!like("app-prod-02", "app-*-01"));
    }

    #[test]
    fn like_without_a_star_is_case_insensitive_equality() {
        assert!(like("ABC", "abc"));
        assert!(!like("abcd", "abc"));
    }

    #[test]
    fn like_star_alone_matches_anything_including_empty() {
        assert!(like("", "*"));
        assert!(like("anything", "*"));
    }

    #[test]
    fn match_uses_digit_letter_and_any_placeholders() {
        assert!(matches("vm-01a", "vm-##?", true));
        assert!(matches("vm-01a", "vm.##?", true));
        assert!(!matches("vm-0xa", "vm-##?", true));
        assert!(!matches("vm-01", "vm-##?", true));
        assert!(!matches("vm-01ab", "vm-##?", true));
    }

    #[test]
    fn match_is_case_sensitive_and_match_insensitively_is_not() {
        assert!(!matches("VM-01", "vm-##", true));
        assert!(matches("VM-01", "vm-##", false));
    }
}
