//! `config-get`: the operator's charm configuration (see `config.yaml`).
//!
//! The whole map is read once per hook with `config-get --all`, so options
//! without a default show up as `null`. [`Config`] offers typed accessors
//! whose errors tell the operator which `juju config` option to fix.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::Value;

use super::tool::{Invocation, ToolError};

/// The charm configuration: option name → JSON value (`null` when unset).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    options: BTreeMap<String, Value>,
}

/// Runs `config-get --all --format=json`.
pub fn config_get() -> Result<Config, ToolError> {
    let options = Invocation::new("config-get")
        .arg("--all")
        .arg("--format=json")
        .run_json::<Option<BTreeMap<String, Value>>>()?;
    Ok(Config::from_map(options.unwrap_or_default()))
}

impl Config {
    pub fn from_map(options: BTreeMap<String, Value>) -> Self {
        Config { options }
    }

    /// The raw value, `None` if the option is unknown or unset (`null`).
    pub fn raw(&self, option: &str) -> Option<&Value> {
        self.options.get(option).filter(|value| !value.is_null())
    }

    /// A string option; unset reads as `""`.
    pub fn string(&self, option: &str) -> Result<&str> {
        match self.raw(option) {
            None => Ok(""),
            Some(Value::String(text)) => Ok(text),
            Some(other) => wrong_type(option, "a string", other),
        }
    }

    /// An integer option; `None` if unset.
    pub fn int(&self, option: &str) -> Result<Option<i64>> {
        match self.raw(option) {
            None => Ok(None),
            Some(value) => match value.as_i64() {
                Some(number) => Ok(Some(number)),
                None => wrong_type(option, "an integer", value),
            },
        }
    }

    /// A boolean option; `None` if unset.
    pub fn bool(&self, option: &str) -> Result<Option<bool>> {
        match self.raw(option) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => wrong_type(option, "a boolean", other),
        }
    }

    /// All options, for diagnostics.
    pub fn options(&self) -> &BTreeMap<String, Value> {
        &self.options
    }
}

fn wrong_type<T>(option: &str, expected: &str, found: &Value) -> Result<T> {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    bail!(
        "config option `{option}` should be {expected} but Juju gave {found}; \
         check config.yaml and `juju config <app> {option}`"
    )
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    fn sample() -> Config {
        let json = r#"{"admin-addresses":"","host-tuning":true,"max-connections":100,
            "memory-limit":null,"profile":"mixed","version":""}"#;
        let map: Option<BTreeMap<String, Value>> = parse_json(json).unwrap();
        Config::from_map(map.unwrap())
    }

    #[test]
    fn reads_typed_options() {
        let config = sample();
        assert_eq!(config.string("profile").unwrap(), "mixed");
        assert_eq!(config.string("memory-limit").unwrap(), "");
        assert_eq!(config.string("no-such-option").unwrap(), "");
        assert_eq!(config.int("max-connections").unwrap(), Some(100));
        assert_eq!(config.bool("host-tuning").unwrap(), Some(true));
        assert_eq!(config.bool("memory-limit").unwrap(), None);
        assert!(config.raw("memory-limit").is_none());
    }

    #[test]
    fn wrong_type_names_the_option() {
        let err = sample().int("profile").unwrap_err().to_string();
        assert!(err.contains("`profile`"), "{err}");
        assert!(err.contains("an integer"), "{err}");
    }

    #[test]
    fn null_output_is_an_empty_config() {
        let map: Option<BTreeMap<String, Value>> = parse_json("null\n").unwrap();
        assert!(Config::from_map(map.unwrap_or_default())
            .options()
            .is_empty());
    }
}
