//! The `tuning-report` action: the hardware the charm detected, every
//! setting of the charm's conf.d file with its value and reason, and the
//! host changes in force (the planned value, the live value now and what
//! was there before the charm changed it).
//!
//! Results (`action-set` values are strings):
//!
//! * `summary`: one line: storage class, memory, CPUs, host tuning on/off.
//! * `hardware`: the machine facts as YAML (what the plan was computed from,
//!   with detection notes).
//! * `settings`: one line per setting, `name = value  # reason`, marked
//!   `(pending restart)` when the server has not applied it yet.
//! * `host`: the host changes in force, one line each with its reason.
//!
//! Rendering is pure ([`parse_conf_settings`], [`render_settings`],
//! [`render_host`]); [`run`] gathers the inputs.

use anyhow::{Context, Result};

use crate::charm::Hook;
use crate::cluster::{conf, db};
use crate::juju;
use crate::options::ClusterOptions;
use crate::state::host::{AppliedRecord, Originals};
use crate::storage::Mounts;
use crate::tuning::facts::MachineFacts;
use crate::tuning::host_apply;
use crate::tuning::machine::machine_facts;
use crate::tuning::units::{floor_mib, format_memory};
use crate::tuning::{volume_class, StorageTypeOverride};

/// One `name = value` of the charm's conf.d file and the comment above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfSetting {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// The settings of a file [`conf::render_charm_conf`] wrote: each setting
/// line with the comment block right above it as its reason.
pub fn parse_conf_settings(text: &str) -> Vec<ConfSetting> {
    let mut settings = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            comment.clear();
        } else if let Some(text) = line.strip_prefix('#') {
            comment.push(text.trim());
        } else if let Some((name, value)) = line.split_once('=') {
            settings.push(ConfSetting {
                name: name.trim().to_string(),
                value: value.trim().to_string(),
                reason: comment.join(" "),
            });
            comment.clear();
        }
    }
    settings
}

/// `name = value  # reason`, one line per setting.
pub fn render_settings(settings: &[ConfSetting], pending_restart: &[String]) -> String {
    let width = settings
        .iter()
        .map(|s| s.name.len() + s.value.len() + 3)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for s in settings {
        let assignment = format!("{} = {}", s.name, s.value);
        let pending = if pending_restart.contains(&s.name) {
            " (pending restart)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{assignment:<width$}  # {}{pending}\n",
            if s.reason.is_empty() {
                "(no reason recorded)"
            } else {
                &s.reason
            }
        ));
    }
    out
}

/// A live kernel knob the report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Knob<'a> {
    Sysctl(&'a str),
    Device(&'a str, &'a str),
    TransparentHugepage,
}

/// The host changes in force. `live` reads a knob's current value.
pub fn render_host(
    enabled: bool,
    record: Option<&AppliedRecord>,
    originals: &Originals,
    live: &dyn Fn(Knob) -> Option<String>,
) -> String {
    let mut out = String::new();
    if enabled && record.is_none() {
        return "host-tuning: on, but no host plan has been applied yet (see the unit log)\n"
            .to_string();
    }
    let Some(record) = record.filter(|_| enabled) else {
        out.push_str("host-tuning: off; the charm keeps no host changes\n");
        let leftovers: Vec<String> = originals
            .sysctls
            .keys()
            .cloned()
            .chain(originals.devices.iter().flat_map(|(device, attributes)| {
                attributes
                    .attributes
                    .keys()
                    .map(move |a| format!("{device} {a}"))
            }))
            .chain(
                originals
                    .transparent_hugepage
                    .iter()
                    .map(|_| "transparent_hugepage".to_string()),
            )
            .collect();
        if !leftovers.is_empty() {
            out.push_str(&format!(
                "not yet restored (retried on the next hook): {}\n",
                leftovers.join(", ")
            ));
        }
        return out;
    };
    out.push_str("host-tuning: on\n");
    if !record.global {
        out.push_str(&format!(
            "live changes: global kernel settings left alone (PG_CHARM_HOST_GLOBAL=off); \
             devices changed live: {}\n",
            record
                .devices_allowed
                .as_ref()
                .filter(|d| !d.is_empty())
                .map_or("none".to_string(), |d| d.join(", "))
        ));
    }
    let files: Vec<String> = record
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    out.push_str(&format!("files: {}\n", files.join(", ")));
    for note in &record.left_to_host {
        out.push_str(&format!("after a reboot: {note}\n"));
    }
    let state = |planned: &str, live: Option<String>, was: Option<&String>, applies: bool| {
        let live = live.unwrap_or_else(|| "unreadable".into());
        let mut text = if live == planned {
            format!("live {live}")
        } else if applies {
            format!("live {live}, not applied")
        } else {
            format!("live {live}, left alone")
        };
        if let Some(was) = was {
            text.push_str(&format!(", was {was}"));
        }
        text
    };
    for sysctl in &record.sysctls {
        out.push_str(&format!(
            "{} = {} ({})  # {}\n",
            sysctl.key,
            sysctl.value,
            state(
                &sysctl.value,
                live(Knob::Sysctl(&sysctl.key)),
                originals.sysctls.get(&sysctl.key).map(|o| &o.was),
                record.global
            ),
            sysctl.reason
        ));
    }
    for device in &record.devices {
        let mut parts = Vec::new();
        let was = originals.devices.get(&device.name);
        let applies = record
            .devices_allowed
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&device.name));
        if let Some(scheduler) = &device.scheduler {
            parts.push(format!(
                "scheduler {scheduler} ({})",
                state(
                    scheduler,
                    live(Knob::Device(&device.name, "scheduler")),
                    was.and_then(|w| w.attributes.get("scheduler"))
                        .map(|o| &o.was),
                    applies
                )
            ));
        }
        if let Some(read_ahead) = device.read_ahead_kb {
            parts.push(format!(
                "read_ahead_kb {read_ahead} ({})",
                state(
                    &read_ahead.to_string(),
                    live(Knob::Device(&device.name, "read_ahead_kb")),
                    was.and_then(|w| w.attributes.get("read_ahead_kb"))
                        .map(|o| &o.was),
                    applies
                )
            ));
        }
        out.push_str(&format!(
            "{}: {}  # {}\n",
            device.name,
            parts.join("; "),
            device.reason
        ));
    }
    out.push_str(&format!(
        "transparent_hugepage = {} ({})  # PostgreSQL never asks for them and the docs \
         report slowdowns\n",
        record.transparent_hugepage,
        state(
            &record.transparent_hugepage,
            live(Knob::TransparentHugepage),
            originals.transparent_hugepage.as_ref().map(|o| &o.was),
            record.global
        )
    ));
    let pool = &record.pool;
    let number = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    match record.huge_pages_needed {
        Some(needed) => out.push_str(&format!(
            "huge pages: PostgreSQL needs {needed}, {} reserved; HugePages_Total {} \
             ({} free, {}kB pages) at the last hook: huge_pages = {}\n",
            number(record.huge_pages_reserved),
            number(pool.total),
            number(pool.free),
            number(pool.page_size_kb),
            if pool.holds(needed) { "on" } else { "try" }
        )),
        None => out.push_str(&format!(
            "huge pages: none reserved (shared_buffers below 2GB, or the server cannot size \
             them); HugePages_Total {}\n",
            number(pool.total)
        )),
    }
    out
}

/// One line: what the plan is for.
pub fn summary(facts: &MachineFacts, storage_type: StorageTypeOverride, host: bool) -> String {
    let class = facts
        .data
        .as_ref()
        .map_or("unknown", |d| volume_class(d, storage_type).as_str());
    let device = facts
        .data
        .as_ref()
        .and_then(|d| d.top_device.clone())
        .map_or(String::new(), |d| format!(" ({d})"));
    format!(
        "PGDATA on {class} storage{device}, {} memory, {} CPUs, PostgreSQL {}; host tuning {}",
        format_memory(floor_mib(facts.memory_bytes)),
        facts.cpus,
        facts.pg_major,
        if host { "on" } else { "off" }
    )
}

/// The action: gathers the inputs and sets the results.
pub fn run(hook: &Hook) -> Result<()> {
    let Some(cluster) = hook.unit.existing_cluster() else {
        return juju::action_fail("no PostgreSQL cluster on this unit yet; nothing is tuned")
            .context("marking the action failed");
    };
    let config = juju::config_get().context("reading the charm config")?;
    let options = ClusterOptions::from_config(&config).ok();
    let data_dir = cluster.data_directory()?;
    let mounts = Mounts::attached(None).unwrap_or_default();
    let facts = machine_facts(cluster.major, &data_dir, mounts.pgwal.as_deref());
    let conf_text =
        crate::fsx::read_to_string(&cluster.conf_dir().join(conf::CHARM_CONF)).unwrap_or_default();
    let pending: Vec<String> = if cluster.is_running() {
        db::query(
            &cluster,
            "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
        )
        .map(|rows| rows.iter().map(|row| row.get(0)).collect())
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let host_tuning = options.as_ref().is_none_or(|o| o.host_tuning);
    let storage_type = options
        .as_ref()
        .map_or(StorageTypeOverride::Auto, |o| o.tuning.storage_type);
    let roots = &hook.unit.host;
    let record = AppliedRecord::load(&roots.state);
    let originals = Originals::load(&roots.state);
    let live = |knob: Knob| match knob {
        Knob::Sysctl(key) => host_apply::live_sysctl(roots, key),
        Knob::Device(device, attribute) => host_apply::live_device(roots, device, attribute),
        Knob::TransparentHugepage => host_apply::live_thp(roots),
    };
    let hardware = serde_yaml::to_string(&facts).context("rendering the machine facts")?;
    let settings = render_settings(&parse_conf_settings(&conf_text), &pending);
    let host = render_host(host_tuning, record.as_ref(), &originals, &live);
    let summary = summary(&facts, storage_type, host_tuning);
    juju::action_set(&[
        ("summary", summary.as_str()),
        ("hardware", hardware.as_str()),
        ("settings", settings.as_str()),
        ("host", host.as_str()),
    ])
    .context("setting the action results")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::conf::{render_charm_conf, Setting};
    use crate::state::host::{AppliedDevice, AppliedSysctl, HugePagePool, Original};

    #[test]
    fn settings_come_back_with_their_reasons() {
        let text = render_charm_conf(&[
            Setting::new("random_page_cost", "1.1", "PGDATA on ssd storage"),
            Setting::new("work_mem", "12MB", "from the charm's extra-pg-conf option"),
        ]);
        let settings = parse_conf_settings(&text);
        assert_eq!(
            settings,
            [
                ConfSetting {
                    name: "random_page_cost".into(),
                    value: "1.1".into(),
                    reason: "PGDATA on ssd storage".into()
                },
                ConfSetting {
                    name: "work_mem".into(),
                    value: "12MB".into(),
                    reason: "from the charm's extra-pg-conf option".into()
                },
            ]
        );
        let text = render_settings(&settings, &["work_mem".into()]);
        assert_eq!(
            text,
            "random_page_cost = 1.1  # PGDATA on ssd storage\n\
             work_mem = 12MB         # from the charm's extra-pg-conf option (pending restart)\n"
        );
    }

    #[test]
    fn host_lines_show_planned_live_and_original_values() {
        let record = AppliedRecord {
            global: false,
            devices_allowed: Some(vec!["loop3".into()]),
            files: vec!["/x/etc/sysctl.d/60-juju-pg-charm.conf".into()],
            sysctls: vec![AppliedSysctl {
                key: "vm.swappiness".into(),
                value: "10".into(),
                reason: "keep memory in RAM".into(),
            }],
            devices: vec![AppliedDevice {
                name: "loop3".into(),
                scheduler: Some("mq-deadline".into()),
                read_ahead_kb: None,
                reason: "unknown disk".into(),
            }],
            transparent_hugepage: "never".into(),
            huge_pages_needed: Some(3154),
            huge_pages_reserved: Some(3218),
            pool: HugePagePool {
                nr_hugepages: Some(0),
                total: Some(0),
                free: Some(0),
                page_size_kb: Some(2048),
                others: 0,
            },
            left_to_host: vec!["vm.dirty_bytes is left alone (...)".into()],
        };
        let mut originals = Originals::default();
        originals
            .devices
            .entry("loop3".into())
            .or_default()
            .attributes
            .insert("scheduler".into(), Original::new("none", "mq-deadline"));
        let live = |knob: Knob| match knob {
            Knob::Sysctl(_) => Some("60".to_string()),
            Knob::Device(..) => Some("mq-deadline".to_string()),
            Knob::TransparentHugepage => Some("madvise".to_string()),
        };
        let text = render_host(true, Some(&record), &originals, &live);
        assert!(text.starts_with("host-tuning: on\n"), "{text}");
        assert!(text.contains("devices changed live: loop3"), "{text}");
        assert!(
            text.contains("after a reboot: vm.dirty_bytes is left alone"),
            "{text}"
        );
        assert!(
            text.contains("vm.swappiness = 10 (live 60, left alone)  # keep memory in RAM\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "loop3: scheduler mq-deadline (live mq-deadline, was none)  # unknown disk\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("PostgreSQL needs 3154, 3218 reserved; HugePages_Total 0"),
            "{text}"
        );
        assert!(text.contains("huge_pages = try"), "{text}");
        let off = render_host(false, Some(&record), &originals, &live);
        assert!(off.starts_with("host-tuning: off"), "{off}");
        assert!(off.contains("not yet restored (retried on the next hook): loop3 scheduler"));
    }
}
