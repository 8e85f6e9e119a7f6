//! `config-get` (contract §4.5).

use serde_json::{Map, Value};

use super::{check_max_args, usage, Reply, ToolResult};
use crate::args::Parsed;
use crate::context::HookContext;

pub(super) fn config_get(ctx: &mut HookContext, p: &Parsed) -> ToolResult {
    check_max_args(p, 1)?;
    let all = p.is_set("all");
    match p.positional.first() {
        Some(key) if all => usage(format!(
            "cannot use argument --all together with key {key:?}"
        )),
        Some(key) => Ok(Reply::Value(
            ctx.config.get(key).cloned().unwrap_or(Value::Null),
        )),
        None => {
            let mut map: Map<String, Value> = ctx
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if all {
                for name in ctx.config_types.keys() {
                    map.entry(name.clone()).or_insert(Value::Null);
                }
            }
            Ok(Reply::Value(Value::Object(map)))
        }
    }
}
