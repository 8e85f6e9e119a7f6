//! `huge-pages.json`: how many huge pages the server said it needs, for
//! the candidate configuration it was asked about.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::StateDir;

const HUGE_PAGES: &str = "huge-pages.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugePagesMemo {
    /// FNV-1a of the candidate configuration it was computed for.
    pub candidate: String,
    pub pages: Option<u64>,
}

impl HugePagesMemo {
    pub fn load(state: &StateDir) -> Option<Self> {
        state.read_json(HUGE_PAGES)
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        state.write_json(HUGE_PAGES, self).map(drop)
    }
}
