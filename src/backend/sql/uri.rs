//! The URI and identifier rules of the SQL backends.

/// Why [`percent_decode`] refused its input; each backend words the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PercentError {
    /// A `%` not followed by exactly two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes the `%XX` escapes of a URI component (a `+` stays a `+`). A `%` must be followed by
/// exactly two hex digits, and the result must be UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Result<String, PercentError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits: `from_str_radix` alone would take a sign (`%+f`).
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PercentError::BadEscape)?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

/// Which names a backend puts into SQL text as identifiers (database, schema, table prefix,
/// column): ASCII letters, digits and `_` only, so that the server's quotes around them can
/// never be broken, and a bounded length. Everything else in SQL text is a bound parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identifier {
    /// Fewest bytes.
    pub(crate) min: usize,
    /// Most bytes.
    pub(crate) max: usize,
    /// Whether `A`–`Z` are accepted (PostgreSQL's rule refuses them: no case folding).
    pub(crate) upper_case: bool,
    /// Whether the name may start with a digit.
    pub(crate) leading_digit: bool,
}

impl Identifier {
    /// Whether `name` follows this rule.
    pub(crate) fn accepts(&self, name: &str) -> bool {
        let bytes = name.as_bytes();
        (self.min..=self.max).contains(&bytes.len())
            && bytes
                .first()
                .is_none_or(|b| self.leading_digit || !b.is_ascii_digit())
            && bytes.iter().all(|&b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || (self.upper_case && b.is_ascii_uppercase())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("/a%20b%2Fc").unwrap(), "/a b/c");
        assert_eq!(percent_decode("a+b").unwrap(), "a+b");
        for bad in ["%+f", "%-1", "%g0", "%2", "%", "% 1"] {
            assert_eq!(percent_decode(bad), Err(PercentError::BadEscape), "{bad}");
        }
        assert_eq!(percent_decode("%ff"), Err(PercentError::NotUtf8));
    }

    #[test]
    fn identifier_rules() {
        let strict = Identifier {
            min: 1,
            max: 3,
            upper_case: false,
            leading_digit: false,
        };
        let loose = Identifier {
            min: 0,
            max: 3,
            upper_case: true,
            leading_digit: true,
        };
        for (name, by_strict, by_loose) in [
            ("", false, true),
            ("a_1", true, true),
            ("_", true, true),
            ("A", false, true),
            ("0a", false, true),
            ("abcd", false, false),
            ("a-b", false, false),
            ("a`b", false, false),
            ("a\"", false, false),
            ("ü", false, false),
        ] {
            assert_eq!(strict.accepts(name), by_strict, "{name:?}");
            assert_eq!(loose.accepts(name), by_loose, "{name:?}");
        }
    }
}
