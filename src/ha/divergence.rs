//! A standby whose data went past the point where the primary's timeline
//! forked off its own (issue 12, item 4), and what the charm does when
//! Patroni could not rewind it. Pure: the converge observes, this decides.
//!
//! Patroni runs `pg_rewind` before it starts a former primary as a
//! standby (`use_pg_rewind`); the charm leaves
//! `remove_data_directory_on_rewind_failure` off, so when the rewind fails
//! (the WAL it needs was recycled, the directory is damaged) Patroni starts
//! the server anyway and it never streams: PostgreSQL refuses a timeline
//! that forked before its own position. Only then does the charm re-clone,
//! after a grace that lets Patroni's own attempt finish, and it never
//! deletes the diverged data: it is renamed aside on the same disk (the
//! only copy of what the old primary wrote after the fork), which needs as
//! much free space again as the clone takes.
//!
//! Diverged means, on a standby that Patroni runs and that does not stream:
//! its latest restartpoint is on a timeline older than the leader's, the
//! cluster's history (`GET /history`) says that timeline ended at LSN `S`,
//! it replayed past `S`, and `pg_wal` holds no segment of a later timeline.
//! The last condition keeps a standby that followed the new timeline (and
//! has not made a restartpoint on it yet) from looking diverged: streamed
//! WAL is written under the new timeline's segment names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a diverged standby is left to Patroni's `pg_rewind` before the
/// charm re-clones it. Patroni stops the server for a rewind, so a diverged
/// server that runs has been given up on, or is about to be retried once
/// Patroni could reach the leader.
pub const REWIND_GRACE_SECS: u64 = 60;

/// The suffix of a data (or WAL) directory set aside by a re-clone.
pub const ASIDE_MARK: &str = ".diverged-";

/// Timeline `timeline` ended at `switchpoint` (an LSN as bytes), from one
/// entry of Patroni's `/history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSwitch {
    pub timeline: u64,
    pub switchpoint: u64,
}

/// Patroni's `GET /history`: `[[timeline, lsn, reason, timestamp, leader], ...]`.
pub fn parse_history(body: &str) -> Result<Vec<TimelineSwitch>> {
    let v: Value = serde_json::from_str(body).context("Patroni's /history is not JSON")?;
    let entries = v.as_array().context("Patroni's /history is not a list")?;
    entries
        .iter()
        .map(|e| {
            let field = |i: usize| e.get(i).and_then(Value::as_u64);
            Ok(TimelineSwitch {
                timeline: field(0).context("a /history entry without a timeline")?,
                switchpoint: field(1).context("a /history entry without an LSN")?,
            })
        })
        .collect()
}

/// Where the local standby is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandbyPosition {
    /// The timeline of its latest restartpoint (`pg_control_checkpoint()`).
    pub checkpoint_timeline: u64,
    /// `pg_last_wal_replay_lsn()`, as bytes.
    pub replayed: u64,
    /// The newest timeline among the segment files in `pg_wal`.
    pub newest_wal_timeline: Option<u64>,
}

/// This standby's data forked off the cluster's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    pub timeline: u64,
    pub switchpoint: u64,
    pub replayed: u64,
}

impl Divergence {
    /// `timeline 1 ended at 0/5000060, this standby replayed to 0/7000028`.
    pub fn describe(&self) -> String {
        format!(
            "its data went on past {} on timeline {} (to {}), where the primary's timeline forked off",
            lsn(self.switchpoint),
            self.timeline,
            lsn(self.replayed)
        )
    }
}

/// An LSN as PostgreSQL writes it.
pub fn lsn(bytes: u64) -> String {
    format!("{:X}/{:X}", bytes >> 32, bytes & 0xffff_ffff)
}

/// Whether a standby at `position` forked off the history that led to
/// `leader_timeline`.
pub fn divergence(
    history: &[TimelineSwitch],
    leader_timeline: u64,
    position: &StandbyPosition,
) -> Option<Divergence> {
    let timeline = position.checkpoint_timeline;
    if timeline >= leader_timeline {
        return None;
    }
    if position.newest_wal_timeline.is_some_and(|t| t > timeline) {
        return None;
    }
    let switch = history.iter().find(|s| s.timeline == timeline)?;
    (position.replayed > switch.switchpoint).then_some(Divergence {
        timeline,
        switchpoint: switch.switchpoint,
        replayed: position.replayed,
    })
}

/// The newest timeline among `pg_wal`'s segment file names (24 hex digits,
/// the first 8 the timeline); history, partial and backup files are not
/// segments.
pub fn newest_segment_timeline<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<u64> {
    names
        .into_iter()
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter_map(|n| u64::from_str_radix(&n[..8], 16).ok())
        .max()
}

/// When the charm first saw this divergence (`ha-diverged.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noticed {
    pub divergence: Divergence,
    /// Unix seconds.
    pub since: u64,
}

/// A re-clone's record (`ha-set-aside.json`), written before anything
/// moves, so that an interrupted set-aside is finished by the next hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub data_dir: PathBuf,
    pub data_aside: PathBuf,
    /// The WAL directory `pg_wal` links to (another disk), and where it goes.
    pub wal: Option<(PathBuf, PathBuf)>,
    pub divergence: Divergence,
    /// Unix seconds.
    pub at: u64,
    /// Everything moved; until then the next hook finishes the moves.
    pub done: bool,
}

impl SetAside {
    pub fn new(
        data_dir: &Path,
        wal_dir: Option<&Path>,
        divergence: Divergence,
        at: u64,
    ) -> SetAside {
        let aside = |p: &Path| {
            let mut name = p.as_os_str().to_owned();
            name.push(format!("{ASIDE_MARK}{at}"));
            PathBuf::from(name)
        };
        SetAside {
            data_dir: data_dir.to_path_buf(),
            data_aside: aside(data_dir),
            wal: wal_dir.map(|w| (w.to_path_buf(), aside(w))),
            divergence,
            at,
            done: false,
        }
    }

    /// The warning shown while the diverged copy is kept.
    pub fn warning(&self) -> String {
        format!(
            "re-cloned from the primary because pg_rewind could not rewind this unit ({}); \
             the diverged data is kept at {}{}: delete it once nothing in it is needed",
            self.divergence.describe(),
            self.data_aside.display(),
            self.wal
                .as_ref()
                .map(|(_, to)| format!(" and {}", to.display()))
                .unwrap_or_default()
        )
    }
}

/// What the converge sees of a diverged standby, besides the divergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergedFacts {
    pub divergence: Divergence,
    pub data_dir: PathBuf,
    /// Where `pg_wal` links to, when the WAL is on a disk of its own.
    pub wal_dir: Option<PathBuf>,
    /// This divergence, as an earlier hook noticed it.
    pub noticed: Option<Noticed>,
    /// The data directory's size (what the clone will take again).
    pub data_bytes: u64,
    /// Free space beside it, for an unprivileged user.
    pub free_bytes: u64,
    /// Tablespaces outside the data directory (a clone would need mappings).
    pub external_tablespaces: bool,
}

/// What to do about a diverged standby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivergedStep {
    /// Remember when it was first seen, and wait.
    Notice(Noticed, String),
    /// Give Patroni's rewind its grace.
    Wait(String),
    /// A re-clone cannot be done safely here.
    Blocked(String),
    /// Stop Patroni, set the data aside, let Patroni clone.
    Reclone,
}

pub fn step(facts: &DivergedFacts, now: u64) -> DivergedStep {
    let d = &facts.divergence;
    let waiting = |left: u64| {
        format!(
            "this standby cannot follow the primary: {}; pg_rewind did not rewind it, \
             re-cloning in {left} s unless Patroni rewinds it first",
            d.describe()
        )
    };
    let noticed = match facts.noticed {
        Some(n) if n.divergence == *d => n,
        _ => {
            let noticed = Noticed {
                divergence: *d,
                since: now,
            };
            return DivergedStep::Notice(noticed, waiting(REWIND_GRACE_SECS));
        }
    };
    let due = noticed.since + REWIND_GRACE_SECS;
    if now < due {
        return DivergedStep::Wait(waiting(due - now));
    }
    let impossible = format!(
        "this standby cannot follow the primary and pg_rewind could not rewind it ({})",
        d.describe()
    );
    if facts.external_tablespaces {
        return DivergedStep::Blocked(format!(
            "{impossible}; it has tablespaces outside its data directory, which a re-clone \
             cannot place: move its data directory aside by hand and run update-status"
        ));
    }
    // The clone takes what the data takes, and 10% to spare.
    let needed = facts.data_bytes + facts.data_bytes / 10;
    if facts.free_bytes < needed {
        return DivergedStep::Blocked(format!(
            "{impossible}; a re-clone beside the diverged data (which is never deleted) needs \
             {} MiB free, the disk has {} MiB: free space or grow the storage",
            needed >> 20,
            facts.free_bytes >> 20
        ));
    }
    DivergedStep::Reclone
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn history() -> Vec<TimelineSwitch> {
        vec![
            TimelineSwitch {
                timeline: 1,
                switchpoint: 0x5000060,
            },
            TimelineSwitch {
                timeline: 2,
                switchpoint: 0x9000000,
            },
        ]
    }

    fn at(timeline: u64, replayed: u64, newest: Option<u64>) -> StandbyPosition {
        StandbyPosition {
            checkpoint_timeline: timeline,
            replayed,
            newest_wal_timeline: newest,
        }
    }

    /// name, the leader's timeline, the standby, the fork it went past.
    type DivergenceCase = (&'static str, u64, StandbyPosition, Option<(u64, u64)>);

    #[test]
    fn divergence_table() {
        let cases: &[DivergenceCase] = &[
            // A former primary that wrote past the fork, nothing streamed.
            (
                "past the fork",
                3,
                at(1, 0x7000028, Some(1)),
                Some((1, 0x5000060)),
            ),
            (
                "past the second fork",
                3,
                at(2, 0x9000100, Some(2)),
                Some((2, 0x9000000)),
            ),
            // Exactly at the switchpoint: everything it has is common.
            ("at the fork", 3, at(1, 0x5000060, Some(1)), None),
            (
                "before the fork (lagging)",
                3,
                at(1, 0x4000000, Some(1)),
                None,
            ),
            // Followed the new timeline, no restartpoint on it yet.
            (
                "followed, old restartpoint",
                3,
                at(1, 0x7000028, Some(2)),
                None,
            ),
            (
                "on the leader's timeline",
                3,
                at(3, 0xa000000, Some(3)),
                None,
            ),
            (
                "ahead of a stale leader timeline",
                2,
                at(3, 0xa000000, None),
                None,
            ),
            // A timeline the history does not know: no verdict.
            ("unknown timeline", 5, at(4, 0xa000000, None), None),
            (
                "no segments listed",
                3,
                at(1, 0x7000028, None),
                Some((1, 0x5000060)),
            ),
        ];
        for (name, leader, position, want) in cases {
            let got =
                divergence(&history(), *leader, position).map(|d| (d.timeline, d.switchpoint));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn history_is_parsed_from_patronis_list() {
        let body = r#"[[1, 83886176, "no recovery target specified", "2026-12-03T10:00:00+00:00", "postgresql-1"],
                       [2, 150994944, "no recovery target specified", "2026-12-03T10:05:00+00:00"]]"#;
        assert_eq!(
            parse_history(body).unwrap(),
            vec![
                TimelineSwitch {
                    timeline: 1,
                    switchpoint: 83886176
                },
                TimelineSwitch {
                    timeline: 2,
                    switchpoint: 150994944
                },
            ]
        );
        assert_eq!(parse_history("[]").unwrap(), vec![]);
        assert!(parse_history("{}").is_err());
        assert!(parse_history(r#"[["x", 1]]"#).is_err());
    }

    #[test]
    fn only_segment_names_count() {
        let names = [
            "000000010000000000000005",
            "000000020000000000000007",
            "00000003.history",
            "000000030000000000000007.partial",
            "000000010000000000000005.00000028.backup",
            "archive_status",
            "00000004000000000000000G",
        ];
        assert_eq!(newest_segment_timeline(names), Some(2));
        assert_eq!(newest_segment_timeline(["archive_status"]), None);
    }

    #[test]
    fn lsns_are_written_as_postgres_does() {
        assert_eq!(lsn(0x5000060), "0/5000060");
        assert_eq!(lsn(0x1_0000_00a0), "1/A0");
    }

    fn diverged(
        noticed: Option<Noticed>,
        data: u64,
        free: u64,
        tablespaces: bool,
    ) -> DivergedFacts {
        DivergedFacts {
            divergence: D,
            data_dir: PathBuf::from("/srv/15/main"),
            wal_dir: None,
            noticed,
            data_bytes: data,
            free_bytes: free,
            external_tablespaces: tablespaces,
        }
    }

    const D: Divergence = Divergence {
        timeline: 1,
        switchpoint: 0x5000060,
        replayed: 0x7000028,
    };

    #[test]
    fn step_table() {
        let seen_at = |since| {
            Some(Noticed {
                divergence: D,
                since,
            })
        };
        let other = Some(Noticed {
            divergence: Divergence { replayed: 1, ..D },
            since: 0,
        });
        let g = REWIND_GRACE_SECS;
        let kind = |s: &DivergedStep| match s {
            DivergedStep::Notice(n, _) => format!("notice@{}", n.since),
            DivergedStep::Wait(m) => format!("wait:{}", m.contains("re-cloning in")),
            DivergedStep::Blocked(m) if m.contains("tablespaces") => "blocked:tablespaces".into(),
            DivergedStep::Blocked(m) if m.contains("MiB free") => "blocked:space".into(),
            DivergedStep::Blocked(m) => format!("blocked:{m}"),
            DivergedStep::Reclone => "reclone".into(),
        };
        let cases: &[(&str, DivergedFacts, u64, &str)] = &[
            (
                "first sight",
                diverged(None, GIB, 4 * GIB, false),
                1000,
                "notice@1000",
            ),
            (
                "another divergence",
                diverged(other, GIB, 4 * GIB, false),
                1000,
                "notice@1000",
            ),
            (
                "within the grace",
                diverged(seen_at(1000), GIB, 4 * GIB, false),
                1000 + g - 1,
                "wait:true",
            ),
            (
                "grace over",
                diverged(seen_at(1000), GIB, 4 * GIB, false),
                1000 + g,
                "reclone",
            ),
            (
                "no room beside it",
                diverged(seen_at(0), GIB, GIB, false),
                g,
                "blocked:space",
            ),
            (
                "exactly 10% to spare",
                diverged(seen_at(0), 10 * GIB, 11 * GIB, false),
                g,
                "reclone",
            ),
            (
                "tablespaces",
                diverged(seen_at(0), GIB, 4 * GIB, true),
                g,
                "blocked:tablespaces",
            ),
        ];
        for (name, facts, now, want) in cases {
            assert_eq!(kind(&step(facts, *now)), *want, "{name}");
        }
    }

    #[test]
    fn messages_name_the_fork_and_what_to_do() {
        let noticed = Some(Noticed {
            divergence: D,
            since: 0,
        });
        let DivergedStep::Blocked(m) = step(&diverged(noticed, GIB, 0, false), 999) else {
            panic!("blocked");
        };
        assert!(m.contains("0/5000060") && m.contains("timeline 1"), "{m}");
        assert!(m.contains("never deleted") && m.contains("1126 MiB"), "{m}");
        let aside = SetAside::new(
            Path::new("/srv/15/main"),
            Some(Path::new("/wal/15/main/pg_wal")),
            D,
            77,
        );
        assert_eq!(aside.data_aside, Path::new("/srv/15/main.diverged-77"));
        assert_eq!(
            aside.wal.as_ref().unwrap().1,
            Path::new("/wal/15/main/pg_wal.diverged-77")
        );
        let w = aside.warning();
        assert!(
            w.contains("/srv/15/main.diverged-77") && w.contains("pg_wal.diverged-77"),
            "{w}"
        );
    }
}
