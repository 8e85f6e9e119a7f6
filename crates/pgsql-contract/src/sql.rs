//! Names and values on their way into SQL: quoting, and the rules for names
//! a remote application may ask for.
//!
//! Two layers, both always applied:
//!
//! 1. **Validation** ([`Name::parse`]): a remote application may only name
//!    databases, roles, extensions and schemas made of ASCII letters, digits,
//!    `_` and `-`, starting with a letter or `_`, at most 63 bytes, and not
//!    one of the reserved names of its [`NameKind`]. This refuses quotes,
//!    semicolons, whitespace, newlines, `/` (a `pg_hba.conf` regular
//!    expression), `+` and `@` (`pg_hba.conf` group and file syntax), `,`
//!    (`pg_hba.conf` lists) and non-ASCII text outright, so a valid name is
//!    safe in SQL, in `pg_hba.conf` and in a libpq connection string.
//! 2. **Quoting** ([`quote_ident`], [`quote_literal`]): every identifier is
//!    double-quoted and every value single-quoted anyway, so safety never
//!    rests on validation alone. Quoted identifiers keep their case, so the
//!    name in SQL is exactly the name published to the consumer.
//!
//! 63 bytes is PostgreSQL's identifier limit (`NAMEDATALEN - 1`); longer
//! names would be silently truncated by the server, so they are refused.

use std::fmt;

use super::excerpt;

/// Longest identifier PostgreSQL keeps without truncating: `NAMEDATALEN - 1`.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Why a text cannot be quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteError {
    /// An identifier cannot be empty (`""` is a syntax error).
    Empty,
    /// An identifier longer than [`MAX_IDENTIFIER_BYTES`] would be truncated.
    TooLong { bytes: usize },
    /// PostgreSQL text cannot hold a NUL byte.
    ContainsNul,
}

impl fmt::Display for QuoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuoteError::Empty => f.write_str("an identifier cannot be empty"),
            QuoteError::TooLong { bytes } => write!(
                f,
                "an identifier has at most {MAX_IDENTIFIER_BYTES} bytes, this one has {bytes}"
            ),
            QuoteError::ContainsNul => f.write_str("PostgreSQL text cannot contain a NUL byte"),
        }
    }
}

impl std::error::Error for QuoteError {}

/// `name` as a double-quoted SQL identifier, embedded `"` doubled:
/// `my"db` → `"my""db"`. Refuses empty names, names over
/// [`MAX_IDENTIFIER_BYTES`] bytes and NUL bytes.
pub fn quote_ident(name: &str) -> Result<String, QuoteError> {
    if name.is_empty() {
        return Err(QuoteError::Empty);
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(QuoteError::TooLong { bytes: name.len() });
    }
    if name.contains('\0') {
        return Err(QuoteError::ContainsNul);
    }
    Ok(double_quote(name))
}

/// `text` in double quotes with embedded `"` doubled. Both SQL and
/// `pg_hba.conf` read a doubled quote inside a quoted token as one `"`.
pub(crate) fn double_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `value` as an SQL string literal, correct whatever the server's
/// `standard_conforming_strings` setting:
///
/// * without backslashes: `'…'` with embedded `'` doubled. Both settings
///   read this the same way.
/// * with backslashes: `E'…'` with `\` and `'` doubled. An escape string
///   means the same under both settings. (This is what PostgreSQL's own
///   `quote_literal()` does.)
///
/// Refuses NUL bytes. Assumes the connection's `client_encoding` is UTF8,
/// which tokio-postgres always sets; in encodings such as SJIS a multibyte
/// character can end in the byte `\`.
pub fn quote_literal(value: &str) -> Result<String, QuoteError> {
    if value.contains('\0') {
        return Err(QuoteError::ContainsNul);
    }
    let quotes_doubled = value.replace('\'', "''");
    if value.contains('\\') {
        Ok(format!("E'{}'", quotes_doubled.replace('\\', "\\\\")))
    } else {
        Ok(format!("'{quotes_doubled}'"))
    }
}

/// What a name is for; each kind has its own reserved names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// A database a consumer asks for or gets by default.
    /// Reserved: `postgres`, `template0`, `template1`.
    Database,
    /// A login role the charm creates for a relation (`juju_<app>`).
    /// Reserved: `pg_*` and the SQL role keywords.
    User,
    /// A NOLOGIN role a consumer asks to be granted.
    /// Reserved: `pg_*`, `juju*`, `_juju*`, `postgres` and the SQL role
    /// keywords. Granting any of those would hand out the server's built-in
    /// powers (`pg_execute_server_program`, superuser `postgres`) or another
    /// relation's user (every role the charm creates starts with `juju`).
    Role,
    /// An extension a consumer asks for. No reserved names: `pg_trgm` and
    /// `uuid-ossp` are ordinary extensions, and whether an extension exists
    /// is for the server to say.
    Extension,
    /// The schema an extension goes into. Reserved: `pg_*` (refused by
    /// PostgreSQL) and `information_schema`.
    Schema,
}

impl NameKind {
    fn as_str(self) -> &'static str {
        match self {
            NameKind::Database => "database",
            NameKind::User => "user",
            NameKind::Role => "role",
            NameKind::Extension => "extension",
            NameKind::Schema => "schema",
        }
    }

    /// Why `lowercase` (the candidate in lower case) is reserved, if it is.
    fn reserved_reason(self, lowercase: &str) -> Option<&'static str> {
        const ROLE_KEYWORDS: [&str; 5] = [
            "public",
            "none",
            "current_user",
            "session_user",
            "current_role",
        ];
        let is_role_keyword = ROLE_KEYWORDS.contains(&lowercase);
        match self {
            NameKind::Database => ["postgres", "template0", "template1"]
                .contains(&lowercase)
                .then_some("it is one of the server's own databases"),
            NameKind::User | NameKind::Role if lowercase.starts_with("pg_") => {
                Some("names starting with pg_ are reserved for PostgreSQL's built-in roles")
            }
            NameKind::User | NameKind::Role if is_role_keyword => {
                Some("it is an SQL keyword for roles")
            }
            NameKind::Role if lowercase.starts_with("juju") || lowercase.starts_with("_juju") => {
                Some("names starting with juju are reserved for the users the charm creates")
            }
            NameKind::Role if lowercase == "postgres" => Some("it is the superuser"),
            NameKind::Schema if lowercase.starts_with("pg_") => {
                Some("names starting with pg_ are reserved for PostgreSQL's system schemas")
            }
            NameKind::Schema if lowercase == "information_schema" => Some("it is a system schema"),
            _ => None,
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated database, user, role, extension or schema name: safe to put
/// in SQL (always through [`Name::quoted`]), in `pg_hba.conf` and in a libpq
/// connection string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Checks `text` against the rules in the module docs for `kind`.
    pub fn parse(kind: NameKind, text: &str) -> Result<Name, NameError> {
        let refuse = |reason: String| NameError {
            kind,
            input: excerpt(text),
            reason,
        };
        if text.is_empty() {
            return Err(refuse("it is empty".to_string()));
        }
        if text.len() > MAX_IDENTIFIER_BYTES {
            return Err(refuse(format!(
                "it is {} bytes long; PostgreSQL names have at most {MAX_IDENTIFIER_BYTES}",
                text.len()
            )));
        }
        if let Some(bad) = text.chars().find(|&c| !is_name_char(c)) {
            return Err(refuse(format!(
                "{} is not allowed; use ASCII letters, digits, '_' and '-'",
                describe_char(bad)
            )));
        }
        if !text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Err(refuse("it must start with a letter or '_'".to_string()));
        }
        if let Some(reason) = kind.reserved_reason(&text.to_ascii_lowercase()) {
            return Err(refuse(reason.to_string()));
        }
        Ok(Name(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a double-quoted SQL identifier.
    pub fn quoted(&self) -> String {
        // A valid name holds no `"`, so this is the plain `"name"`; going
        // through the general function keeps one quoting rule.
        double_quote(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A character for an error message: printable ASCII as `'x'`, anything
/// else by its escape (`'\n'`, `'\u{202e}'`).
fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        c if c.is_ascii_graphic() && c != '\'' && c != '\\' => format!("'{c}'"),
        c => format!("'{}'", c.escape_default()),
    }
}

/// A name refused by [`Name::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub kind: NameKind,
    /// The refused text as an [`excerpt`].
    pub input: String,
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} name {} is not accepted: {}",
            self.kind, self.input, self.reason
        )
    }
}

impl std::error::Error for NameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        let at_limit = "a".repeat(MAX_IDENTIFIER_BYTES);
        let over = "a".repeat(MAX_IDENTIFIER_BYTES + 1);
        let cases: [(&str, Result<String, QuoteError>); 9] = [
            ("discourse", Ok(r#""discourse""#.into())),
            ("MixedCase", Ok(r#""MixedCase""#.into())),
            ("my\"db", Ok(r#""my""db""#.into())),
            ("\"", Ok(r#""""""#.into())),
            ("a; DROP TABLE x; --", Ok(r#""a; DROP TABLE x; --""#.into())),
            ("", Err(QuoteError::Empty)),
            ("a\0b", Err(QuoteError::ContainsNul)),
            (&at_limit, Ok(format!("\"{at_limit}\""))),
            (&over, Err(QuoteError::TooLong { bytes: 64 })),
        ];
        for (input, expected) in cases {
            assert_eq!(quote_ident(input), expected, "input {input:?}");
        }
        // 63 bytes is a byte limit, not a character limit.
        assert_eq!(
            quote_ident(&"é".repeat(32)),
            Err(QuoteError::TooLong { bytes: 64 })
        );
    }

    #[test]
    fn quotes_literals_safely_under_both_string_settings() {
        let cases = [
            ("hunter2", Ok("'hunter2'")),
            ("", Ok("''")),
            ("it's", Ok("'it''s'")),
            ("'; DROP ROLE x; --", Ok("'''; DROP ROLE x; --'")),
            (r"back\slash", Ok(r"E'back\\slash'")),
            (r"\'; DROP ROLE x; --", Ok(r"E'\\''; DROP ROLE x; --'")),
            ("multi\nline", Ok("'multi\nline'")),
            ("ünïcode", Ok("'ünïcode'")),
            ("nul\0", Err(QuoteError::ContainsNul)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                quote_literal(input).as_deref(),
                expected.as_ref().copied(),
                "input {input:?}"
            );
        }
    }

    /// Reads a literal back the way the SQL lexer does with
    /// `standard_conforming_strings` on (`off` = backslashes escape in plain
    /// literals too) and checks the value survives and the literal ends
    /// exactly at its last byte, so nothing after it could be SQL.
    fn unquote_literal(literal: &str, standard_conforming_strings: bool) -> Option<String> {
        let (escapes, body) = match literal.strip_prefix("E'") {
            Some(body) => (true, body),
            None => (!standard_conforming_strings, literal.strip_prefix('\'')?),
        };
        let mut value = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' if escapes => value.push(chars.next()?),
                '\'' => match chars.next() {
                    Some('\'') => value.push('\''),
                    None => return Some(value),
                    Some(_) => return None,
                },
                c => value.push(c),
            }
        }
        None
    }

    #[test]
    fn literals_round_trip_under_both_string_settings() {
        let values = [
            "plain",
            "",
            "it's",
            r"a\b",
            r"\'",
            r"'\",
            r"\\''\\",
            "x'); DROP DATABASE postgres; --",
            "x\\'); DROP DATABASE postgres; --",
        ];
        for value in values {
            let literal = quote_literal(value).unwrap();
            for setting in [true, false] {
                assert_eq!(
                    unquote_literal(&literal, setting).as_deref(),
                    Some(value),
                    "{value:?} as {literal} with standard_conforming_strings={setting}"
                );
            }
        }
    }

    #[test]
    fn accepts_ordinary_names() {
        let cases = [
            (NameKind::Database, "discourse"),
            (
                NameKind::Database,
                "remote-76cd96ab50f146b284912afd1cc13a0e",
            ),
            (NameKind::Database, "Landscape_Main"),
            (NameKind::Database, "_private"),
            (NameKind::Database, "all"),
            (NameKind::Database, "replication"),
            (NameKind::Database, "sameuser"),
            (NameKind::User, "juju_discourse"),
            (
                NameKind::User,
                "jujuadmin_remote-76cd96ab50f146b284912afd1cc13a0e",
            ),
            (NameKind::Role, "readonly"),
            (NameKind::Role, "samerole"),
            (NameKind::Extension, "citext"),
            (NameKind::Extension, "pg_trgm"),
            (NameKind::Extension, "uuid-ossp"),
            (NameKind::Schema, "public"),
            (NameKind::Schema, "extensions"),
        ];
        for (kind, text) in cases {
            let name = Name::parse(kind, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(name.as_str(), text);
            assert_eq!(name.quoted(), format!("\"{text}\""));
        }
        let longest = "a".repeat(MAX_IDENTIFIER_BYTES);
        assert!(Name::parse(NameKind::Database, &longest).is_ok());
    }

    #[test]
    fn refuses_hostile_and_reserved_names() {
        let too_long = "a".repeat(MAX_IDENTIFIER_BYTES + 1);
        let cases = [
            (NameKind::Database, "", "empty"),
            (NameKind::Database, &too_long, "64 bytes long"),
            (NameKind::Database, "my\"db", r#"'"' is not allowed"#),
            (NameKind::Database, "it's", r"'\'' is not allowed"),
            (NameKind::Database, "db; DROP TABLE x", "';' is not allowed"),
            (NameKind::Database, "two words", "a space is not allowed"),
            (NameKind::Database, "line\nbreak", r"'\n' is not allowed"),
            (NameKind::Database, "tab\there", r"'\t' is not allowed"),
            (NameKind::Database, "nul\0", r"'\u{0}' is not allowed"),
            (NameKind::Database, "café", r"'\u{e9}' is not allowed"),
            (
                NameKind::Database,
                "evil\u{202e}",
                r"'\u{202e}' is not allowed",
            ),
            (NameKind::Database, "/.*", "'/' is not allowed"),
            (NameKind::Database, "a,b", "',' is not allowed"),
            (NameKind::Database, "@file", "'@' is not allowed"),
            (NameKind::Database, "#comment", "'#' is not allowed"),
            (NameKind::Database, "back\\slash", r"'\\' is not allowed"),
            (NameKind::Database, "dot.ted", "'.' is not allowed"),
            (NameKind::Database, "1db", "must start with a letter"),
            (NameKind::Database, "-db", "must start with a letter"),
            (NameKind::Database, "postgres", "server's own databases"),
            (NameKind::Database, "Template1", "server's own databases"),
            (NameKind::Role, "+group", "'+' is not allowed"),
            (NameKind::Role, "postgres", "superuser"),
            (NameKind::Role, "pg_execute_server_program", "pg_"),
            (NameKind::Role, "PG_read_server_files", "pg_"),
            (NameKind::Role, "juju_otherapp", "users the charm creates"),
            (NameKind::Role, "JujuAdmin_x", "users the charm creates"),
            (NameKind::Role, "_juju_repl", "users the charm creates"),
            (NameKind::Role, "public", "SQL keyword"),
            (NameKind::Role, "CURRENT_USER", "SQL keyword"),
            (NameKind::User, "pg_monitor", "pg_"),
            (NameKind::User, "session_user", "SQL keyword"),
            (NameKind::Schema, "pg_catalog", "pg_"),
            (NameKind::Schema, "information_schema", "system schema"),
            (NameKind::Extension, "citext(x)", "'(' is not allowed"),
        ];
        for (kind, text, reason) in cases {
            let error = Name::parse(kind, text).expect_err(text);
            let message = error.to_string();
            assert!(message.contains(reason), "{text:?}: {message}");
            assert!(message.starts_with(&format!("{kind} name ")), "{message}");
            assert!(!message.contains('\n') && message.len() < 200, "{message}");
        }
    }
}
