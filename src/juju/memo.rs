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
//! memo lives in the unit's state directory ([`crate::state`]), which unit
//! removal deletes, and a lost memo only costs one call.

use super::ToolError;
use crate::state::{memo, StateDir};

/// Runs `tell` unless `value` is what was told last time under `key`.
pub fn unless_unchanged(
    dir: &StateDir,
    key: &str,
    value: &str,
    tell: impl FnOnce() -> Result<(), ToolError>,
) -> Result<(), ToolError> {
    if memo::holds(dir, key, value) {
        return Ok(());
    }
    tell()?;
    // Best effort: without the memo the next hook simply tells Juju again.
    if let Err(e) = memo::remember(dir, key, value) {
        log::debug!("not remembering {key}: {e:#}");
    }
    Ok(())
}
