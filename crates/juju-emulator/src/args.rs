//! GNU-style flag parsing as juju/cmd (gnuflag) does it: `--long`, `-s`,
//! `--flag=value` and `--flag value`, flags interspersed with positional
//! arguments, and `--` ending the flags (contract §3.1).

use std::collections::BTreeMap;

/// One flag a tool accepts.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub takes_value: bool,
}

pub const fn flag(long: &'static str, short: Option<char>, takes_value: bool) -> FlagSpec {
    FlagSpec {
        long,
        short,
        takes_value,
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// Long flag name -> values given (a boolean flag holds "true"/"false").
    pub flags: BTreeMap<&'static str, Vec<String>>,
    pub positional: Vec<String>,
}

impl Parsed {
    pub fn value(&self, long: &str) -> Option<&str> {
        self.flags
            .get(long)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn is_set(&self, long: &str) -> bool {
        match self.value(long) {
            Some(v) => v != "false",
            None => false,
        }
    }
}

/// Parses `args`; the error text is what juju/cmd prints after `ERROR `.
pub fn parse(args: &[String], specs: &[FlagSpec]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            parsed.positional.extend(iter.by_ref().cloned());
            break;
        }
        let Some(body) = arg.strip_prefix('-').filter(|b| !b.is_empty()) else {
            parsed.positional.push(arg.clone());
            continue;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let spec = specs
            .iter()
            .find(|s| {
                s.long == name || (name.chars().count() == 1 && s.short == name.chars().next())
            })
            .ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = if spec.takes_value {
            match inline {
                Some(v) => v,
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
            }
        } else {
            // Go's strconv.ParseBool, which gnuflag uses.
            match inline.as_deref() {
                None | Some("1" | "t" | "T" | "TRUE" | "true" | "True") => "true".to_string(),
                Some("0" | "f" | "F" | "FALSE" | "false" | "False") => "false".to_string(),
                Some(other) => {
                    return Err(format!(
                        "invalid boolean value {other:?} for -{name}: parse error"
                    ))
                }
            }
        };
        parsed.flags.entry(spec.long).or_default().push(value);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        flag("relation", Some('r'), true),
        flag("app", None, false),
        flag("format", None, true),
    ];

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_every_gnu_spelling_interspersed() {
        let p = parse(
            &strings(&["key", "-r", "db:3", "--app", "unit/0", "--format=json"]),
            SPECS,
        )
        .unwrap();
        assert_eq!(p.value("relation"), Some("db:3"));
        assert!(p.is_set("app"));
        assert_eq!(p.value("format"), Some("json"));
        assert_eq!(p.positional, strings(&["key", "unit/0"]));
    }

    #[test]
    fn double_dash_ends_flags_and_single_dash_is_positional() {
        let p = parse(&strings(&["-", "--", "--not-a-flag"]), SPECS).unwrap();
        assert_eq!(p.positional, strings(&["-", "--not-a-flag"]));
    }

    #[test]
    fn errors_read_like_gnuflag() {
        assert_eq!(
            parse(&strings(&["--foo"]), SPECS).unwrap_err(),
            "flag provided but not defined: -foo"
        );
        assert_eq!(
            parse(&strings(&["-r"]), SPECS).unwrap_err(),
            "flag needs an argument: -r"
        );
        assert!(parse(&strings(&["--app=maybe"]), SPECS).is_err());
        assert!(!parse(&strings(&["--app=false"]), SPECS)
            .unwrap()
            .is_set("app"));
    }
}
