//! Remembers the last value the charm told Juju through an idempotent,
//! charm-owned hook tool (its status, workload version), so that telling it
//! again the same thing costs no process spawn.
//!
//! Only for tools whose effect is **immediate** (`status-set`,
//! `application-version-set`): the memo is written right after the call,
//! and for those Juju has already taken the value. Buffered tools
//! (`relation-set`, `open-port`, secrets) are committed only if the hook
//! succeeds, so a memo written during the hook could claim what Juju threw
//! away; for them, ask Juju what it committed (`relation-get`,
//! `opened-ports`) instead.
//!
//! Only this charm sets these values, so its memory cannot go stale; the
//! memo lives in the charm directory, and a lost memo (a fresh charm
//! directory after `upgrade-charm`) only costs one call.

use std::path::PathBuf;

use super::ToolError;

fn memo_path(key: &str) -> Option<PathBuf> {
    std::env::var_os("JUJU_CHARM_DIR")
        .map(|dir| PathBuf::from(dir).join(format!(".pg-charm-last-{key}")))
}

/// Runs `tell` unless `value` is what was told last time under `key`.
pub fn unless_unchanged(
    key: &str,
    value: &str,
    tell: impl FnOnce() -> Result<(), ToolError>,
) -> Result<(), ToolError> {
    let path = memo_path(key);
    if let Some(path) = &path {
        if std::fs::read_to_string(path).is_ok_and(|last| last == value) {
            return Ok(());
        }
    }
    tell()?;
    if let Some(path) = &path {
        // Best effort: without the memo the next hook simply tells Juju again.
        let _ = std::fs::write(path, value);
    }
    Ok(())
}
