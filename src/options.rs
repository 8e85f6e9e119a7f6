//! The charm's config options that shape the cluster itself, parsed and
//! validated (pure). A bad value becomes an [`OptionError`] that names the
//! option, which the charm shows as a `blocked` status while PostgreSQL keeps
//! running on the last good configuration.

use std::fmt;

use crate::ha::options::{HaOptions, FAILOVER_PROFILE, SYNC_MODE_STRICT, SYNC_NODE_COUNT};
use crate::juju::Config;
use crate::relations::access::cidr::{AddressLimits, Cidr};
use crate::relations::postgresql_client::roles::ConsumerPrivileges;
use crate::relations::tenancy::extensions::AllowedExtensions;
use crate::relations::tenancy::ownership::SharedDatabases;
use crate::tuning::TuningConfig;

/// One rejected option and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    pub option: &'static str,
    pub reason: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}: {}", self.option, self.reason)
    }
}

impl std::error::Error for OptionError {}

fn reject(option: &'static str, reason: impl Into<String>) -> OptionError {
    OptionError {
        option,
        reason: reason.into(),
    }
}

/// Options the cluster is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Requested major version; `None` means the distribution's default.
    pub version: Option<u32>,
    pub locale: String,
    pub encoding: String,
    /// `extra-pg-conf`, one `(name, value)` per setting, value already in
    /// postgresql.conf syntax.
    pub extra_pg_conf: Vec<(String, String)>,
    /// `admin-addresses`: networks allowed in as any user to any database.
    pub admin_addresses: Vec<Cidr>,
    /// `profile`, `max-connections`, `memory-limit`, `storage-type`.
    pub tuning: TuningConfig,
    /// `host-tuning`: whether the charm may tune the kernel for PostgreSQL.
    pub host_tuning: bool,
    /// `client-tls`: whether remote clients must use TLS.
    pub client_tls: ClientTls,
    /// What consumers may be given.
    pub clients: ClientOptions,
    /// `synchronous-node-count`, `synchronous-mode-strict`,
    /// `failover-profile`: how the replicated cluster commits and fails over.
    pub ha: HaOptions,
}

/// `client-tls`: the server always offers TLS; `require` also refuses
/// clear-text connections from remote clients (`hostssl` rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientTls {
    #[default]
    Prefer,
    Require,
}

impl ClientTls {
    pub fn parse(raw: &str) -> Result<Self, OptionError> {
        match raw.to_ascii_lowercase().as_str() {
            "" | "prefer" => Ok(ClientTls::Prefer),
            "require" => Ok(ClientTls::Require),
            _ => Err(reject(
                "client-tls",
                format!("{:?} is neither \"prefer\" nor \"require\"", excerpt(raw)),
            )),
        }
    }

    pub fn required(self) -> bool {
        self == ClientTls::Require
    }
}

/// At most 40 characters of an operator's value, for a message.
fn excerpt(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// The options that bound what client relations may be given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// `shared-databases`: who may use a database not created for them.
    pub shared_databases: SharedDatabases,
    /// `allowed-extensions`: which untrusted extensions `db` consumers may
    /// ask for.
    pub allowed_extensions: AllowedExtensions,
    /// `relation-ipv4-breadth`, `relation-ipv6-breadth`.
    pub address_limits: AddressLimits,
    /// `consumer-privileges`: which `database` consumers may be given
    /// SUPERUSER or CREATEROLE.
    pub consumer_privileges: ConsumerPrivileges,
}

impl ClusterOptions {
    pub fn from_config(config: &Config) -> Result<Self, OptionError> {
        let text = |option: &'static str| {
            config
                .string(option)
                .map(str::trim)
                .map(str::to_string)
                .map_err(|e| reject(option, e.to_string()))
        };
        Ok(Self {
            version: parse_version(&text("version")?)?,
            locale: parse_locale(&text("locale")?)?,
            encoding: parse_encoding(&text("encoding")?)?,
            extra_pg_conf: parse_extra_pg_conf(&text("extra-pg-conf")?)?,
            admin_addresses: parse_admin_addresses(&text("admin-addresses")?)?,
            tuning: TuningConfig::from_options(
                &text("profile")?,
                config
                    .int("max-connections")
                    .map_err(|e| reject("max-connections", e.to_string()))?
                    .unwrap_or(100),
                &text("memory-limit")?,
                &text("storage-type")?,
            )
            .map_err(|e| reject(e.option, e.message))?,
            host_tuning: config
                .bool("host-tuning")
                .map_err(|e| reject("host-tuning", e.to_string()))?
                .unwrap_or(true),
            client_tls: ClientTls::parse(&text("client-tls")?)?,
            clients: ClientOptions {
                shared_databases: SharedDatabases::parse(&text("shared-databases")?)
                    .map_err(|e| reject("shared-databases", e))?,
                allowed_extensions: AllowedExtensions::parse(&text("allowed-extensions")?)
                    .map_err(|e| reject("allowed-extensions", e))?,
                consumer_privileges: ConsumerPrivileges::parse(&text("consumer-privileges")?)
                    .map_err(|e| reject("consumer-privileges", e))?,
                address_limits: AddressLimits {
                    ipv4_prefix_len: prefix_len_option(
                        config,
                        "relation-ipv4-breadth",
                        AddressLimits::WIDEST_IPV4..=32,
                        AddressLimits::default().ipv4_prefix_len,
                    )?,
                    ipv6_prefix_len: prefix_len_option(
                        config,
                        "relation-ipv6-breadth",
                        AddressLimits::WIDEST_IPV6..=128,
                        AddressLimits::default().ipv6_prefix_len,
                    )?,
                },
            },
            ha: ha_options(config, &text)?,
        })
    }
}

/// The HA options; every problem is reported, each already naming its
/// option (the first is the one the error is filed under).
fn ha_options(
    config: &Config,
    text: &dyn Fn(&'static str) -> Result<String, OptionError>,
) -> Result<HaOptions, OptionError> {
    let sync_node_count = text(SYNC_NODE_COUNT)?;
    let profile = text(FAILOVER_PROFILE)?;
    let strict = config
        .bool(SYNC_MODE_STRICT)
        .map_err(|e| reject(SYNC_MODE_STRICT, e.to_string()))?;
    HaOptions::parse(
        Some(sync_node_count.as_str()).filter(|v| !v.is_empty()),
        strict,
        Some(profile.as_str()).filter(|v| !v.is_empty()),
    )
    .map_err(|errors| {
        let option = [SYNC_NODE_COUNT, SYNC_MODE_STRICT, FAILOVER_PROFILE]
            .into_iter()
            .find(|o| errors[0].starts_with(o))
            .unwrap_or(SYNC_NODE_COUNT);
        let reason = errors
            .iter()
            .map(|e| e.strip_prefix(&format!("{option}: ")).unwrap_or(e))
            .collect::<Vec<_>>()
            .join("; ");
        reject(option, reason)
    })
}

/// An integer option holding a prefix length within `range`.
fn prefix_len_option(
    config: &Config,
    option: &'static str,
    range: std::ops::RangeInclusive<u8>,
    default: u8,
) -> Result<u8, OptionError> {
    let value = config
        .int(option)
        .map_err(|e| reject(option, e.to_string()))?
        .unwrap_or(i64::from(default));
    u8::try_from(value)
        .ok()
        .filter(|len| range.contains(len))
        .ok_or_else(|| {
            reject(
                option,
                format!(
                    "{value} is not a prefix length from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn parse_version(raw: &str) -> Result<Option<u32>, OptionError> {
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<u32>() {
        Ok(v) if (10..=99).contains(&v) => Ok(Some(v)),
        _ => Err(reject(
            "version",
            format!("{raw:?} is not a PostgreSQL major version such as \"15\" or \"16\""),
        )),
    }
}

/// Comma- or space-separated addresses or CIDRs; the operator may grant
/// broad networks here (unlike relation data, which is checked for breadth).
pub fn parse_admin_addresses(raw: &str) -> Result<Vec<Cidr>, OptionError> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(|item| {
            Cidr::parse(item).map_err(|e| reject("admin-addresses", format!("{item:?}: {e}")))
        })
        .collect()
}

fn parse_locale(raw: &str) -> Result<String, OptionError> {
    let valid = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if valid {
        Ok(raw.to_string())
    } else {
        Err(reject(
            "locale",
            format!("{raw:?} is not a locale name such as \"C.UTF-8\" or \"en_US.UTF-8\""),
        ))
    }
}

fn parse_encoding(raw: &str) -> Result<String, OptionError> {
    let valid = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(raw.to_string())
    } else {
        Err(reject(
            "encoding",
            format!("{raw:?} is not an encoding name such as \"UTF8\""),
        ))
    }
}

/// Settings the charm owns: letting `extra-pg-conf` move them would break
/// the cluster's layout, the charm's own access, or the data's location.
pub const RESERVED_SETTINGS: &[&str] = &[
    "config_file",
    "data_directory",
    "external_pid_file",
    "hba_file",
    "ident_file",
    "include",
    "include_dir",
    "include_if_exists",
    "port",
    "unix_socket_directories",
];

/// Parses `name = value` lines (`#` comments and blank lines allowed).
/// Values may be bare words or single-quoted strings; anything else is
/// quoted, so a value can never smuggle a second setting onto the line.
pub fn parse_extra_pg_conf(text: &str) -> Result<Vec<(String, String)>, OptionError> {
    let mut settings: Vec<(String, String)> = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw_line).trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| reject("extra-pg-conf", format!("line {line_no}: {why}"));
        let (name, value) = line
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .or_else(|| {
                line.split_once(char::is_whitespace)
                    .map(|(n, v)| (n.trim(), v.trim()))
            })
            .ok_or_else(|| bad("expected `name = value`"))?;
        let name = name.to_ascii_lowercase();
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !name_ok {
            return Err(bad(&format!("{name:?} is not a setting name")));
        }
        if RESERVED_SETTINGS.contains(&name.as_str()) {
            return Err(bad(&format!(
                "{name} is managed by the charm and cannot be set here"
            )));
        }
        if value.is_empty() {
            return Err(bad(&format!("{name} has no value")));
        }
        let value = quote_conf_value(value)
            .ok_or_else(|| bad(&format!("{name} has an unterminated quoted value")))?;
        settings.retain(|(n, _)| *n != name);
        settings.push((name, value));
    }
    Ok(settings)
}

/// Removes a trailing `# comment` that is not inside single quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// A value in postgresql.conf syntax: bare words stay bare, quoted strings
/// stay as written, everything else is single-quoted with `'` doubled.
pub fn quote_conf_value(value: &str) -> Option<String> {
    let bare = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-+:".contains(c));
    if bare {
        return Some(value.to_string());
    }
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        // Inside, a quote must be doubled ('' ) or backslash-escaped.
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next()?;
                }
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                }
                '\'' => return None,
                _ => {}
            }
        }
        return Some(value.to_string());
    }
    if value.starts_with('\'') {
        return None;
    }
    Some(format!(
        "'{}'",
        value.replace('\\', "\\\\").replace('\'', "''")
    ))
}

/// config.yaml's defaults for the options without one, then `pairs`: the
/// configuration every test of the options starts from.
#[cfg(test)]
pub(crate) fn test_config(pairs: &[(&str, serde_json::Value)]) -> Config {
    let mut options: std::collections::BTreeMap<String, serde_json::Value> = [
        ("locale", "C.UTF-8"),
        ("encoding", "UTF8"),
        ("profile", "mixed"),
        ("storage-type", "auto"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
    .collect();
    options.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Config::from_map(options)
}

#[cfg(test)]
mod tests {
    use super::test_config as config;

    #[test]
    fn client_tls_is_prefer_or_require() {
        for (raw, wanted) in [
            ("", ClientTls::Prefer),
            ("prefer", ClientTls::Prefer),
            ("Require", ClientTls::Require),
            ("require", ClientTls::Require),
        ] {
            assert_eq!(ClientTls::parse(raw), Ok(wanted), "{raw}");
        }
        for raw in ["disable", "required", "verify-full", "on"] {
            let err = ClientTls::parse(raw).unwrap_err().to_string();
            assert!(err.starts_with("config client-tls: "), "{err}");
            assert!(err.contains(raw), "{err}");
        }
        assert!(ClientTls::Require.required() && !ClientTls::Prefer.required());
    }

    use super::*;
    use crate::relations::postgresql_client::roles::Privilege;

    #[test]
    fn extra_pg_conf_accepts_the_usual_spellings() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("# only a comment\n\n", &[]),
            ("work_mem = 64MB", &[("work_mem", "64MB")]),
            ("work_mem=64MB # tuned", &[("work_mem", "64MB")]),
            ("Work_Mem 64MB", &[("work_mem", "64MB")]),
            (
                "log_line_prefix = '%m [%p] '",
                &[("log_line_prefix", "'%m [%p] '")],
            ),
            (
                "search_path = \"$user\", public",
                &[("search_path", "'\"$user\", public'")],
            ),
            ("a = 1\na = 2", &[("a", "2")]),
            (
                "application_name = 'it''s'",
                &[("application_name", "'it''s'")],
            ),
            (
                "auto_explain.log_min_duration = 250ms",
                &[("auto_explain.log_min_duration", "250ms")],
            ),
        ];
        for (text, want) in cases {
            let got = parse_extra_pg_conf(text).unwrap();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn extra_pg_conf_rejects_what_could_break_the_cluster() {
        let cases = [
            ("work_mem", "line 1: expected `name = value`"),
            ("= 5", "line 1: \"\" is not a setting name"),
            (
                "port = 5433",
                "line 1: port is managed by the charm and cannot be set here",
            ),
            (
                "ok = 1\ndata_directory = '/tmp'",
                "line 2: data_directory is managed by the charm",
            ),
            ("x = 'open", "line 1: x has an unterminated quoted value"),
            ("x = 'a' b'", "line 1: x has an unterminated quoted value"),
            ("bad-name = 1", "line 1: \"bad-name\" is not a setting name"),
            ("x =", "line 1: x has no value"),
        ];
        for (text, want) in cases {
            let err = parse_extra_pg_conf(text).unwrap_err();
            assert_eq!(err.option, "extra-pg-conf");
            assert!(err.reason.starts_with(want), "{text:?}: {}", err.reason);
        }
    }

    #[test]
    fn quoting_cannot_smuggle_a_second_setting() {
        let value = quote_conf_value("x'; shared_preload_libraries='evil").unwrap();
        assert_eq!(value, "'x''; shared_preload_libraries=''evil'");
    }

    #[test]
    fn client_options_are_parsed_and_checked() {
        let defaults = ClusterOptions::from_config(&config(&[])).unwrap();
        assert_eq!(defaults.clients, ClientOptions::default());
        assert_eq!(defaults.clients.address_limits, AddressLimits::default());
        let set = ClusterOptions::from_config(&config(&[
            ("relation-ipv4-breadth", 24.into()),
            ("relation-ipv6-breadth", 64.into()),
            ("allowed-extensions", "*".into()),
            ("shared-databases", "reports=a,b".into()),
            ("consumer-privileges", "createrole = keystone".into()),
        ]))
        .unwrap();
        assert!(set
            .clients
            .consumer_privileges
            .allows("keystone", Privilege::CreateRole));
        assert!(!set
            .clients
            .consumer_privileges
            .allows("keystone", Privilege::Superuser));
        assert!(!defaults
            .clients
            .consumer_privileges
            .allows("keystone", Privilege::CreateRole));
        assert_eq!(
            set.clients.address_limits,
            AddressLimits {
                ipv4_prefix_len: 24,
                ipv6_prefix_len: 64
            }
        );
        assert_eq!(set.clients.allowed_extensions, AllowedExtensions::Any);
        let cases: [(&str, serde_json::Value, &str); 8] = [
            (
                "relation-ipv4-breadth",
                7.into(),
                "7 is not a prefix length from 8 to 32",
            ),
            ("relation-ipv4-breadth", 33.into(), "from 8 to 32"),
            ("relation-ipv6-breadth", 16.into(), "from 32 to 128"),
            (
                "relation-ipv6-breadth",
                (-1).into(),
                "-1 is not a prefix length",
            ),
            (
                "shared-databases",
                "reports".into(),
                "is not <database> = <application>",
            ),
            ("allowed-extensions", "a'b".into(), "is not allowed"),
            (
                "consumer-privileges",
                "login = app".into(),
                "is not a privilege",
            ),
            (
                "consumer-privileges",
                "superuser = ".into(),
                "names no application",
            ),
        ];
        for (option, value, want) in cases {
            let error = ClusterOptions::from_config(&config(&[(option, value)])).unwrap_err();
            assert_eq!(error.option, option);
            assert!(error.reason.contains(want), "{option}: {}", error.reason);
        }
    }

    #[test]
    fn ha_options_are_parsed_and_each_problem_names_its_option() {
        // Unset (or config.yaml's defaults): one synchronous standby, not
        // strict, Patroni's default timing.
        let unset = ClusterOptions::from_config(&config(&[])).unwrap().ha;
        assert_eq!(unset, HaOptions::default());
        let defaults = ClusterOptions::from_config(&config(&[
            (SYNC_NODE_COUNT, "1".into()),
            (SYNC_MODE_STRICT, false.into()),
            (FAILOVER_PROFILE, "default".into()),
        ]))
        .unwrap()
        .ha;
        assert_eq!(defaults, HaOptions::default());
        let set = ClusterOptions::from_config(&config(&[
            (SYNC_NODE_COUNT, "majority".into()),
            (SYNC_MODE_STRICT, true.into()),
            (FAILOVER_PROFILE, "fast".into()),
        ]))
        .unwrap()
        .ha;
        assert!(set.strict);
        assert_eq!(set.timing, crate::ha::options::TimingProfile::FAST);
        type Pairs<'a> = &'a [(&'a str, serde_json::Value)];
        let cases: [(Pairs, &str, &str); 4] = [
            (
                &[(SYNC_NODE_COUNT, "two".into())],
                SYNC_NODE_COUNT,
                "\"two\" is not 0",
            ),
            (
                &[(SYNC_NODE_COUNT, "-1".into())],
                SYNC_NODE_COUNT,
                "is not 0",
            ),
            (
                &[(FAILOVER_PROFILE, "turbo".into())],
                FAILOVER_PROFILE,
                "is neither",
            ),
            (
                &[
                    (SYNC_NODE_COUNT, "0".into()),
                    (SYNC_MODE_STRICT, true.into()),
                ],
                SYNC_MODE_STRICT,
                "needs synchronous replication",
            ),
        ];
        for (pairs, option, want) in cases {
            let error = ClusterOptions::from_config(&config(pairs)).unwrap_err();
            assert_eq!(error.option, option, "{pairs:?}");
            assert!(error.reason.contains(want), "{pairs:?}: {}", error.reason);
            assert!(
                error.to_string().starts_with(&format!("config {option}: ")),
                "{error}"
            );
            assert!(
                !error.reason.starts_with(&format!("{option}: ")),
                "named twice: {error}"
            );
        }
    }

    #[test]
    fn version_locale_and_encoding_are_checked() {
        assert_eq!(parse_version("").unwrap(), None);
        assert_eq!(parse_version("16").unwrap(), Some(16));
        for bad in ["9.6", "abc", "1", "100", "16; rm"] {
            assert_eq!(parse_version(bad).unwrap_err().option, "version", "{bad}");
        }
        assert!(parse_locale("en_US.UTF-8").is_ok());
        assert!(parse_locale("C.UTF-8").is_ok());
        assert!(parse_locale("en US").is_err());
        assert!(parse_locale("").is_err());
        assert!(parse_encoding("UTF8").is_ok());
        assert!(parse_encoding("UTF8'").is_err());
        let admins = parse_admin_addresses("10.0.0.0/8, 192.168.1.7 ::1").unwrap();
        let shown: Vec<String> = admins.iter().map(|c| c.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        let err = parse_admin_addresses("10.0.0.0/8,all").unwrap_err();
        assert_eq!(err.option, "admin-addresses");
        assert!(err.reason.starts_with("\"all\""), "{}", err.reason);
    }
}
