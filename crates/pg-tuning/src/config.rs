//! The tuning-related charm options (`profile`, `max-connections`,
//! `memory-limit`, `storage-type`), parsed from their config.yaml strings.
//!
//! Every parse error names the option and the accepted values, so the
//! message can go straight into a `blocked` status.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Validated tuning options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuningConfig {
    pub profile: Profile,
    pub max_connections: u32,
    pub memory_limit: Option<MemoryLimit>,
    pub storage_type: StorageTypeOverride,
}

impl TuningConfig {
    /// Parses the raw option values as Juju hands them over.
    pub fn from_options(
        profile: &str,
        max_connections: i64,
        memory_limit: &str,
        storage_type: &str,
    ) -> Result<Self, ConfigError> {
        Ok(TuningConfig {
            profile: profile.parse()?,
            max_connections: parse_max_connections(max_connections)?,
            memory_limit: MemoryLimit::parse_option(memory_limit)?,
            storage_type: storage_type.parse()?,
        })
    }
}

/// A config option had a value the charm cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub option: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn not_one_of(option: &'static str, value: &str, accepted: &str) -> ConfigError {
    ConfigError {
        option,
        message: format!("{value:?} is not one of {accepted}"),
    }
}

/// The workload the settings are tuned for (PGTune's "DB type").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Many short transactions.
    Oltp,
    /// Web application: mostly short reads.
    Web,
    /// Data warehouse: few large analytical queries.
    Dw,
    /// A bit of everything.
    Mixed,
    /// PostgreSQL's own defaults (only the disk-safety limits are applied).
    Testing,
}

impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value {
            "oltp" => Ok(Profile::Oltp),
            "web" => Ok(Profile::Web),
            "dw" => Ok(Profile::Dw),
            "mixed" => Ok(Profile::Mixed),
            "testing" => Ok(Profile::Testing),
            other => Err(not_one_of(
                "profile",
                other,
                "oltp, web, dw, mixed, testing",
            )),
        }
    }
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Oltp => "oltp",
            Profile::Web => "web",
            Profile::Dw => "dw",
            Profile::Mixed => "mixed",
            Profile::Testing => "testing",
        }
    }
}

/// The `storage-type` option: detect, or force a disk class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageTypeOverride {
    #[default]
    Auto,
    Nvme,
    Ssd,
    Hdd,
    San,
}

impl FromStr for StorageTypeOverride {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        match value {
            "auto" | "" => Ok(StorageTypeOverride::Auto),
            "nvme" => Ok(StorageTypeOverride::Nvme),
            "ssd" => Ok(StorageTypeOverride::Ssd),
            "hdd" => Ok(StorageTypeOverride::Hdd),
            "san" => Ok(StorageTypeOverride::San),
            other => Err(not_one_of(
                "storage-type",
                other,
                "auto, nvme, ssd, hdd, san",
            )),
        }
    }
}

/// PostgreSQL refuses to start outside 1..=262143 (`MAX_BACKENDS`).
const MAX_CONNECTIONS_LIMIT: i64 = 262_143;

fn parse_max_connections(value: i64) -> Result<u32, ConfigError> {
    if (1..=MAX_CONNECTIONS_LIMIT).contains(&value) {
        Ok(value as u32)
    } else {
        Err(ConfigError {
            option: "max-connections",
            message: format!("{value} is not between 1 and {MAX_CONNECTIONS_LIMIT}"),
        })
    }
}

/// The `memory-limit` option: how much memory PostgreSQL is tuned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryLimit {
    Bytes(u64),
    /// A share of the machine's memory, 1..=100.
    Percent(u8),
}

impl MemoryLimit {
    /// `""` means no limit; otherwise `16G`, `512M`, `2048K`, `1T` (binary
    /// units, optional `B`/`iB`, any case), a plain byte count, or `75%`.
    pub fn parse_option(value: &str) -> Result<Option<Self>, ConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            ConfigError {
            option: "memory-limit",
            message: format!(
                "{value:?} is not a size like \"16G\" or \"512M\", a percentage like \"75%\", or empty"
            ),
        }
        };
        if let Some(percent) = value.strip_suffix('%') {
            return match percent.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Some(MemoryLimit::Percent(p))),
                _ => Err(invalid()),
            };
        }
        let digits_end = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(digits_end);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(invalid()),
        };
        match number.checked_mul(multiplier) {
            Some(bytes) if bytes > 0 => Ok(Some(MemoryLimit::Bytes(bytes))),
            _ => Err(invalid()),
        }
    }

    /// The limit in bytes on a machine with `memory_bytes` of memory.
    pub fn resolve(self, memory_bytes: u64) -> u64 {
        match self {
            MemoryLimit::Bytes(bytes) => bytes,
            MemoryLimit::Percent(p) => (u128::from(memory_bytes) * u128::from(p) / 100) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_options() {
        let cfg = TuningConfig::from_options("oltp", 300, "16G", "hdd").unwrap();
        assert_eq!(
            cfg,
            TuningConfig {
                profile: Profile::Oltp,
                max_connections: 300,
                memory_limit: Some(MemoryLimit::Bytes(16 << 30)),
                storage_type: StorageTypeOverride::Hdd,
            }
        );
    }

    #[test]
    fn memory_limit_forms() {
        let cases: &[(&str, Option<MemoryLimit>)] = &[
            ("", None),
            ("  ", None),
            ("16G", Some(MemoryLimit::Bytes(16 << 30))),
            ("16GB", Some(MemoryLimit::Bytes(16 << 30))),
            ("16GiB", Some(MemoryLimit::Bytes(16 << 30))),
            ("512M", Some(MemoryLimit::Bytes(512 << 20))),
            ("512m", Some(MemoryLimit::Bytes(512 << 20))),
            ("1T", Some(MemoryLimit::Bytes(1 << 40))),
            ("1048576", Some(MemoryLimit::Bytes(1 << 20))),
            ("75%", Some(MemoryLimit::Percent(75))),
            ("100%", Some(MemoryLimit::Percent(100))),
        ];
        for (input, expected) in cases {
            assert_eq!(MemoryLimit::parse_option(input), Ok(*expected), "{input}");
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        let cases: &[(&str, i64, &str, &str, &str)] = &[
            (
                "foo",
                100,
                "",
                "auto",
                "profile: \"foo\" is not one of oltp, web, dw, mixed, testing",
            ),
            (
                "oltp",
                0,
                "",
                "auto",
                "max-connections: 0 is not between 1 and 262143",
            ),
            (
                "oltp",
                100,
                "lots",
                "auto",
                "memory-limit: \"lots\" is not a size like \"16G\" or \"512M\", \
                 a percentage like \"75%\", or empty",
            ),
            (
                "oltp",
                100,
                "0%",
                "auto",
                "memory-limit: \"0%\" is not a size",
            ),
            (
                "oltp",
                100,
                "150%",
                "auto",
                "memory-limit: \"150%\" is not a size",
            ),
            (
                "oltp",
                100,
                "0G",
                "auto",
                "memory-limit: \"0G\" is not a size",
            ),
            (
                "oltp",
                100,
                "16X",
                "auto",
                "memory-limit: \"16X\" is not a size",
            ),
            (
                "oltp",
                100,
                "",
                "floppy",
                "storage-type: \"floppy\" is not one of auto, nvme, ssd, hdd, san",
            ),
        ];
        for (profile, conns, limit, storage, expected) in cases {
            let err = TuningConfig::from_options(profile, *conns, limit, storage).unwrap_err();
            assert!(
                err.to_string().starts_with(expected),
                "{err} does not start with {expected}"
            );
        }
    }

    #[test]
    fn percent_limit_resolves_against_memory() {
        assert_eq!(MemoryLimit::Percent(75).resolve(8 << 30), 6 << 30);
        assert_eq!(MemoryLimit::Bytes(1 << 30).resolve(8 << 30), 1 << 30);
    }
}
