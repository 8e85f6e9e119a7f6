//! libpq connection strings ("conninfo"), as published in `master` and
//! `standbys`: `dbname=discourse host=10.0.0.5 password=… port=5432 user=…`.
//!
//! The format follows libpq's `conninfo_parse` and the legacy charm:
//!
//! * `key=value` pairs separated by one space, keys in sorted order;
//! * a value is written bare when it is non-empty printable ASCII without
//!   `'` or `\`; otherwise it is put in single quotes with `\` and `'`
//!   escaped by a backslash (`it's` → `'it\'s'`, empty → `''`).
//!
//! Quoting any value outside printable ASCII (rather than only those with a
//! space, as libpq strictly needs) keeps us clear of libpq's locale-dependent
//! `isspace()`. Values may not contain newlines, because `standbys` is a
//! newline-separated list of these strings: [`conninfo`] refuses them.

use std::collections::BTreeMap;
use std::fmt;

/// A value that cannot go into a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConninfoError {
    pub key: String,
}

impl fmt::Display for ConninfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the connection string value for {:?} contains a line break or NUL byte",
            self.key
        )
    }
}

impl std::error::Error for ConninfoError {}

/// The connection string for `params`: keys sorted (the map's order), values
/// quoted as the module docs say. Refuses values holding `\n`, `\r` or NUL
/// (which would split a `standbys` line or end a C string). Keys are the
/// charm's own libpq keywords (`dbname`, `host`, …) and must be lower-case
/// ASCII letters and `_`.
pub fn conninfo(params: &BTreeMap<&str, String>) -> Result<String, ConninfoError> {
    let mut pairs = Vec::with_capacity(params.len());
    for (&key, value) in params {
        debug_assert!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "libpq keyword {key:?}"
        );
        if value.contains(['\n', '\r', '\0']) {
            return Err(ConninfoError {
                key: key.to_string(),
            });
        }
        pairs.push(format!("{key}={}", quote_value(value)));
    }
    Ok(pairs.join(" "))
}

/// One value, bare when that is unambiguous, else single-quoted.
fn quote_value(value: &str) -> String {
    let bare_is_safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'\\');
    if bare_is_safe {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\\' || c == '\'' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libpq's `conninfo_parse` (fe-connect.c), transcribed for the tests:
    /// keys up to `=` (blanks around it allowed), then a bare value up to
    /// whitespace or a single-quoted one; `\` escapes the next character in
    /// both. Returns `None` where libpq reports a syntax error.
    fn parse_conninfo(text: &str) -> Option<Vec<(String, String)>> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut pairs = Vec::new();
        loop {
            while i < chars.len() && chars[i].is_ascii_whitespace() {
                i += 1;
            }
            if i == chars.len() {
                return Some(pairs);
            }
            let mut key = String::new();
            while i < chars.len() && chars[i] != '=' && !chars[i].is_ascii_whitespace() {
                key.push(chars[i]);
                i += 1;
            }
            while i < chars.len() && chars[i].is_ascii_whitespace() {
                i += 1;
            }
            if i == chars.len() || chars[i] != '=' {
                return None;
            }
            i += 1;
            while i < chars.len() && chars[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < chars.len() && chars[i] == '\'' {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return None, // unterminated quoted string
                        Some('\\') => {
                            if let Some(&next) = chars.get(i + 1) {
                                value.push(next);
                            }
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
            } else {
                while i < chars.len() && !chars[i].is_ascii_whitespace() {
                    if chars[i] == '\\' {
                        i += 1;
                        if let Some(&next) = chars.get(i) {
                            value.push(next);
                        }
                    } else {
                        value.push(chars[i]);
                    }
                    i += 1;
                }
            }
            pairs.push((key, value));
        }
    }

    fn params<'a>(pairs: &[(&'a str, &str)]) -> BTreeMap<&'a str, String> {
        pairs.iter().map(|&(k, v)| (k, v.to_string())).collect()
    }

    #[test]
    fn builds_sorted_minimally_quoted_strings() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[], ""),
            (
                &[
                    ("user", "juju_discourse"),
                    ("host", "10.0.0.5"),
                    ("port", "5432"),
                    ("dbname", "discourse"),
                    ("password", "Xy7kQ2"),
                ],
                "dbname=discourse host=10.0.0.5 password=Xy7kQ2 port=5432 user=juju_discourse",
            ),
            (&[("host", "2001:db8::5")], "host=2001:db8::5"),
            (&[("password", "")], "password=''"),
            (&[("password", "two words")], r"password='two words'"),
            (&[("password", r"it's\here")], r"password='it\'s\\here'"),
            (
                &[("dbname", "x=y"), ("user", "ünï")],
                "dbname=x=y user='ünï'",
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(conninfo(&params(pairs)).unwrap(), expected);
        }
    }

    #[test]
    fn hostile_values_round_trip_through_libpq_rules() {
        let values = [
            "plain",
            "",
            " ",
            "'",
            "\\",
            "\\'",
            "'\\",
            "a b\tc",
            "host=evil.example.com",
            "' host=evil.example.com '",
            "\\' host=evil.example.com",
            "ünï\u{a0}code",
            "\u{202e}",
            "=",
        ];
        for value in values {
            let text = conninfo(&params(&[("dbname", "db"), ("password", value)])).unwrap();
            let parsed = parse_conninfo(&text).unwrap_or_else(|| panic!("{text} does not parse"));
            assert_eq!(
                parsed,
                vec![
                    ("dbname".to_string(), "db".to_string()),
                    ("password".to_string(), value.to_string())
                ],
                "{value:?} written as {text}"
            );
        }
    }

    #[test]
    fn refuses_line_breaks_and_nul() {
        for value in ["a\nb", "a\rb", "a\0b"] {
            let error = conninfo(&params(&[("host", value)])).unwrap_err();
            assert_eq!(error.key, "host");
            assert!(error.to_string().contains("line break"));
        }
    }
}
