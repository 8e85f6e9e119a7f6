//! Juju storage: `storage-list`, `storage-get`, `storage-add`.
//!
//! `pgdata` and `pgwal` (see `metadata.yaml`) are optional filesystems; the
//! charm finds where Juju mounted them with `storage-get`.

use std::path::PathBuf;

use serde::Deserialize;

use super::tool::{Invocation, ToolError};

/// Whether a storage instance is a mounted filesystem or a raw block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Filesystem,
    Block,
}

/// Where a storage instance is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StorageInfo {
    pub kind: StorageKind,
    /// Mount point for a filesystem, device path for a block device.
    pub location: PathBuf,
}

/// Attached storage ids such as `pgdata/0`, optionally only those of
/// storage `name`: `storage-list --format=json [name]`.
pub fn storage_list(name: Option<&str>) -> Result<Vec<String>, ToolError> {
    let mut invocation = Invocation::new("storage-list").arg("--format=json");
    if let Some(name) = name {
        invocation = invocation.arg(name);
    }
    let ids: Option<Vec<String>> = invocation.run_json()?;
    Ok(ids.unwrap_or_default())
}

/// Kind and location of storage `id`: `storage-get --format=json -s <id>`.
pub fn storage_get(id: &str) -> Result<StorageInfo, ToolError> {
    Invocation::new("storage-get")
        .arg("--format=json")
        .arg("-s")
        .arg(id)
        .run_json()
}

/// Asks Juju for `count` more instances of storage `name` (applied when the
/// hook succeeds): `storage-add <name>=<count>`.
pub fn storage_add(name: &str, count: u32) -> Result<(), ToolError> {
    Invocation::new("storage-add")
        .arg(format!("{name}={count}"))
        .run()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::super::tool::parse_json;
    use super::*;

    #[test]
    fn parses_storage_get_output() {
        let info: StorageInfo =
            parse_json(r#"{"kind":"filesystem","location":"/srv/pgdata"}"#).unwrap();
        assert_eq!(info.kind, StorageKind::Filesystem);
        assert_eq!(info.location, PathBuf::from("/srv/pgdata"));
        let block: StorageInfo = parse_json(r#"{"kind":"block","location":"/dev/sdb"}"#).unwrap();
        assert_eq!(block.kind, StorageKind::Block);
        assert!(parse_json::<StorageInfo>(r#"{"kind":"tape","location":"/x"}"#).is_err());
    }

    #[test]
    fn parses_storage_list_output() {
        let ids: Option<Vec<String>> = parse_json(r#"["pgdata/0","pgwal/1"]"#).unwrap();
        assert_eq!(ids.unwrap(), ["pgdata/0", "pgwal/1"]);
        let none: Option<Vec<String>> = parse_json("null").unwrap();
        assert!(none.is_none());
    }
}
