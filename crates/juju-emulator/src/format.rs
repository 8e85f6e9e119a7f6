//! Output formatters of juju/cmd: `smart`, `yaml` and `json` (contract §3.3).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Smart,
    Yaml,
    Json,
}

impl Format {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "smart" => Some(Self::Smart),
            "yaml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Renders a tool's result the way juju/cmd would print it on stdout.
pub fn render(value: &Value, format: Format) -> String {
    match format {
        Format::Json => format!("{}\n", serde_json::to_string(value).expect("JSON value")),
        Format::Yaml => yaml(value),
        Format::Smart => smart(value),
    }
}

fn smart(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) if s.is_empty() => String::new(),
        Value::String(s) => format!("{s}\n"),
        Value::Bool(true) => "True\n".into(),
        Value::Bool(false) => "False\n".into(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .map(|item| format!("{}\n", item.as_str().unwrap_or_default()))
            .collect(),
        other => yaml(other),
    }
}

fn yaml(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Object(map) if map.is_empty() => "{}\n".into(),
        Value::Array(items) if items.is_empty() => "[]\n".into(),
        other => {
            let text = serde_yaml::to_string(other).expect("YAML value");
            format!("{}\n", text.trim_end_matches('\n'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_follow_juju_cmd() {
        let cases: Vec<(Value, Format, &str)> = vec![
            (Value::Null, Format::Smart, ""),
            (Value::Null, Format::Yaml, ""),
            (Value::Null, Format::Json, "null\n"),
            (json!(""), Format::Smart, ""),
            (json!("abc"), Format::Smart, "abc\n"),
            (json!(true), Format::Smart, "True\n"),
            (json!(false), Format::Smart, "False\n"),
            (json!(true), Format::Json, "true\n"),
            (json!(["a", "b"]), Format::Smart, "a\nb\n"),
            (json!([]), Format::Smart, ""),
            (json!([]), Format::Json, "[]\n"),
            (json!({}), Format::Yaml, "{}\n"),
            (json!({}), Format::Json, "{}\n"),
            (
                json!({"b": "1", "a": "x"}),
                Format::Json,
                "{\"a\":\"x\",\"b\":\"1\"}\n",
            ),
            (json!({"b": 2, "a": "x"}), Format::Smart, "a: x\nb: 2\n"),
            (json!(5432), Format::Smart, "5432\n"),
        ];
        for (value, format, want) in cases {
            assert_eq!(render(&value, format), want, "{value} as {format:?}");
        }
    }

    #[test]
    fn yaml_quotes_strings_that_look_like_numbers_or_booleans() {
        let text = render(&json!({"password": "12345", "flag": "true"}), Format::Yaml);
        let back: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back["password"], serde_yaml::Value::String("12345".into()));
        assert_eq!(back["flag"], serde_yaml::Value::String("true".into()));
    }
}
