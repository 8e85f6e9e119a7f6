//! The HA options (pure): `synchronous-node-count`, `synchronous-mode-strict`
//! and the failover timing profile, parsed with messages naming the option,
//! and what they mean for a cluster of a given size.
//!
//! Trade-offs (for the README and config.yaml):
//! * `synchronous-node-count=0`: asynchronous. Fastest commits; a failover
//!   may lose what the old primary acknowledged but had not sent (measured:
//!   117 commits in a partition).
//! * `N` (default 1) or `majority`: a commit returns once N standbys (or a
//!   majority of the members with the primary) have flushed it; Patroni
//!   promotes only a synchronous standby, so no acknowledged commit is lost.
//!   When no standby is available the primary goes on alone (not strict).
//! * `synchronous-mode-strict=true`: the primary never goes on alone:
//!   writes wait until a synchronous standby is back. With two units, losing
//!   either stops writes. Released Patroni versions then set
//!   `synchronous_standby_names='*'`, which any replication client can
//!   satisfy: the replication role is admitted from peer addresses only and a
//!   joiner's basebackup runs with `--no-slot` (see `patroni_config`).

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub const SYNC_NODE_COUNT: &str = "synchronous-node-count";
pub const SYNC_MODE_STRICT: &str = "synchronous-mode-strict";
pub const FAILOVER_PROFILE: &str = "failover-profile";

/// `synchronous-node-count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncNodeCount {
    /// `0`: asynchronous replication.
    Asynchronous,
    /// A number of synchronous standbys (at least 1).
    Standbys(u32),
    /// Enough standbys that a commit is on a majority of the members.
    Majority,
}

impl SyncNodeCount {
    pub const DEFAULT: SyncNodeCount = SyncNodeCount::Standbys(1);

    pub fn parse(raw: &str) -> Result<Self> {
        let value = raw.trim();
        if value.eq_ignore_ascii_case("majority") {
            return Ok(SyncNodeCount::Majority);
        }
        match value.parse::<u32>() {
            Ok(0) => Ok(SyncNodeCount::Asynchronous),
            Ok(n) if n <= 64 => Ok(SyncNodeCount::Standbys(n)),
            _ => bail!(
                "{SYNC_NODE_COUNT}: {raw:?} is not 0 (asynchronous), a number of synchronous \
                 standbys from 1 to 64, or \"majority\""
            ),
        }
    }
}

impl fmt::Display for SyncNodeCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncNodeCount::Asynchronous => f.write_str("0"),
            SyncNodeCount::Standbys(n) => write!(f, "{n}"),
            SyncNodeCount::Majority => f.write_str("majority"),
        }
    }
}

/// Patroni's timing: `ttl` (the leader key's lease), `loop_wait` (seconds
/// between HA loops) and `retry_timeout` (DCS and PostgreSQL retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimingProfile {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
}

impl TimingProfile {
    /// Patroni's defaults: a crashed primary is replaced in 23–33 s (measured).
    pub const DEFAULT: TimingProfile = TimingProfile {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };
    /// The fastest Patroni 3.1+ accepts. The prototype measured 12/2/3 on
    /// 3.0.2 (crash → writable in 14.5–14.8 s, 0 promotions under a 240 s
    /// pgbench load with loop_wait 2 and retry_timeout 3), but Patroni
    /// 3.1 and later raise a `ttl` below 20 to 20 ("ttl=12 can't be smaller
    /// than 20, adjusting...", seen with the bundled 3.2.2), so the lease,
    /// and with it a crash failover, takes at least ~20 s (expected
    /// 18–23 s from the measured `ttl − loop_wait … ttl` + 2–3 s).
    pub const FAST: TimingProfile = TimingProfile {
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 3,
    };

    /// Patroni's minimums (3.1+: it silently raises smaller values).
    pub const MIN_TTL: u32 = 20;
    pub const MIN_RETRY_TIMEOUT: u32 = 3;

    /// A profile obeying Patroni's rule `loop_wait + 2 × retry_timeout ≤ ttl`
    /// (else a primary cut off from the DCS may still be primary when its
    /// lease expires and another member promotes).
    pub fn new(ttl: u32, loop_wait: u32, retry_timeout: u32) -> Result<Self> {
        if loop_wait == 0 || retry_timeout < Self::MIN_RETRY_TIMEOUT || ttl < Self::MIN_TTL {
            bail!(
                "Patroni needs loop_wait ≥ 1 s, retry_timeout ≥ {} s and ttl ≥ {} s \
                 (got {loop_wait}, {retry_timeout}, {ttl})",
                Self::MIN_RETRY_TIMEOUT,
                Self::MIN_TTL
            );
        }
        if loop_wait + 2 * retry_timeout > ttl {
            bail!(
                "loop_wait {loop_wait} + 2 × retry_timeout {retry_timeout} = {} exceeds ttl {ttl}",
                loop_wait + 2 * retry_timeout
            );
        }
        Ok(Self {
            ttl,
            loop_wait,
            retry_timeout,
        })
    }

    /// `failover-profile`: `default` or `fast`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.trim() {
            "" | "default" => Ok(Self::DEFAULT),
            "fast" => Ok(Self::FAST),
            _ => bail!(
                "{FAILOVER_PROFILE}: {raw:?} is neither \"default\" (ttl 30 s, loop_wait 10 s, \
                 retry_timeout 10 s) nor \"fast\" (20 s, 2 s, 3 s)"
            ),
        }
    }
}

/// The HA options, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaOptions {
    pub sync_node_count: SyncNodeCount,
    pub strict: bool,
    pub timing: TimingProfile,
}

impl Default for HaOptions {
    fn default() -> Self {
        Self {
            sync_node_count: SyncNodeCount::DEFAULT,
            strict: false,
            timing: TimingProfile::DEFAULT,
        }
    }
}

impl HaOptions {
    /// From the raw config values (`None` = unset: the default). Every
    /// problem is reported, each naming its option.
    pub fn parse(
        sync_node_count: Option<&str>,
        strict: Option<bool>,
        profile: Option<&str>,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut options = HaOptions {
            strict: strict.unwrap_or(false),
            ..Default::default()
        };
        if let Some(raw) = sync_node_count {
            match SyncNodeCount::parse(raw) {
                Ok(v) => options.sync_node_count = v,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Some(raw) = profile {
            match TimingProfile::parse(raw) {
                Ok(v) => options.timing = v,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if options.strict && options.sync_node_count == SyncNodeCount::Asynchronous {
            errors.push(format!(
                "{SYNC_MODE_STRICT}=true needs synchronous replication, but \
                 {SYNC_NODE_COUNT} is 0 (asynchronous)"
            ));
        }
        if errors.is_empty() {
            Ok(options)
        } else {
            Err(errors)
        }
    }

    /// What Patroni is told for a cluster of `members` admitted members.
    pub fn replication_for(&self, members: usize) -> Replication {
        let standbys = members.saturating_sub(1) as u32;
        let count = match self.sync_node_count {
            SyncNodeCount::Asynchronous => {
                return Replication {
                    synchronous_mode: false,
                    synchronous_node_count: 1,
                    synchronous_mode_strict: false,
                };
            }
            SyncNodeCount::Standbys(n) => n.min(standbys),
            SyncNodeCount::Majority => members as u32 / 2,
        };
        Replication {
            synchronous_mode: true,
            synchronous_node_count: count.max(1),
            // Alone, strict mode would block every write for ever.
            synchronous_mode_strict: self.strict && standbys > 0,
        }
    }
}

/// Patroni's replication settings (dynamic configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    pub synchronous_mode: bool,
    pub synchronous_node_count: u32,
    pub synchronous_mode_strict: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_node_count_values() {
        let ok = [
            ("0", SyncNodeCount::Asynchronous),
            ("1", SyncNodeCount::Standbys(1)),
            (" 2 ", SyncNodeCount::Standbys(2)),
            ("majority", SyncNodeCount::Majority),
            ("Majority", SyncNodeCount::Majority),
        ];
        for (raw, want) in ok {
            assert_eq!(SyncNodeCount::parse(raw).unwrap(), want, "{raw:?}");
        }
        for raw in ["", "-1", "1.5", "all", "65", "99999999999", "1; drop"] {
            let e = SyncNodeCount::parse(raw).unwrap_err().to_string();
            assert!(e.starts_with("synchronous-node-count: "), "{e}");
            assert!(e.contains(&format!("{raw:?}")), "{e}");
        }
    }

    #[test]
    fn timing_profiles_obey_patronis_rule() {
        for p in [TimingProfile::DEFAULT, TimingProfile::FAST] {
            assert_eq!(
                TimingProfile::new(p.ttl, p.loop_wait, p.retry_timeout).unwrap(),
                p
            );
        }
        assert_eq!(TimingProfile::parse("fast").unwrap(), TimingProfile::FAST);
        assert_eq!(TimingProfile::parse("").unwrap(), TimingProfile::DEFAULT);
        assert!(
            TimingProfile::new(20, 2, 9).is_ok(),
            "zero slack is allowed"
        );
        let e = TimingProfile::new(20, 3, 9).unwrap_err().to_string();
        assert!(e.contains("exceeds ttl 20"), "{e}");
        // What Patroni 3.1+ would silently raise is refused.
        for (ttl, loop_wait, retry) in [(12, 2, 3), (30, 0, 10), (30, 10, 2)] {
            let e = TimingProfile::new(ttl, loop_wait, retry)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("Patroni needs"), "{e}");
        }
        let e = TimingProfile::parse("turbo").unwrap_err().to_string();
        assert!(e.starts_with("failover-profile: \"turbo\""), "{e}");
    }

    #[test]
    fn options_report_every_problem_naming_its_option() {
        assert_eq!(
            HaOptions::parse(None, None, None).unwrap(),
            HaOptions::default()
        );
        let errors = HaOptions::parse(Some("x"), Some(false), Some("turbo")).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with(SYNC_NODE_COUNT));
        assert!(errors[1].starts_with(FAILOVER_PROFILE));
        let errors = HaOptions::parse(Some("0"), Some(true), None).unwrap_err();
        assert!(errors[0].starts_with(SYNC_MODE_STRICT), "{errors:?}");
    }

    #[test]
    fn replication_follows_the_cluster_size() {
        let opts = |count, strict| HaOptions {
            sync_node_count: count,
            strict,
            timing: TimingProfile::DEFAULT,
        };
        let r = |m, s, st| Replication {
            synchronous_mode: m,
            synchronous_node_count: s,
            synchronous_mode_strict: st,
        };
        let cases = [
            // (count, strict, members) -> replication
            (SyncNodeCount::Asynchronous, false, 3, r(false, 1, false)),
            (SyncNodeCount::Standbys(1), false, 1, r(true, 1, false)),
            (SyncNodeCount::Standbys(1), true, 1, r(true, 1, false)),
            (SyncNodeCount::Standbys(1), true, 2, r(true, 1, true)),
            (SyncNodeCount::Standbys(2), false, 3, r(true, 2, false)),
            (SyncNodeCount::Standbys(5), false, 3, r(true, 2, false)),
            (SyncNodeCount::Majority, false, 1, r(true, 1, false)),
            (SyncNodeCount::Majority, false, 3, r(true, 1, false)),
            (SyncNodeCount::Majority, false, 4, r(true, 2, false)),
            (SyncNodeCount::Majority, true, 5, r(true, 2, true)),
        ];
        for (count, strict, members, want) in cases {
            assert_eq!(
                opts(count, strict).replication_for(members),
                want,
                "{count} strict={strict} members={members}"
            );
        }
    }
}
