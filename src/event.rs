//! Which Juju event this process was started for.
//!
//! Juju tells the charm what happened through `JUJU_DISPATCH_PATH`
//! (`hooks/<hook-name>` or `actions/<action-name>`). When that variable is
//! missing (a `hooks/<name>` copy of `dispatch` run by an old Juju) the
//! dispatch script passes `$0` instead, which may be an absolute path such as
//! `/var/lib/juju/agents/unit-postgresql-0/charm/hooks/install`.
//!
//! This module is pure: it turns that string into an [`Event`] and back into
//! the hook name for messages. It reads no environment and runs no tools, so
//! every case is covered by the table test at the bottom.

use std::fmt;

/// What a relation hook says happened to the relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Created,
    Joined,
    Changed,
    Departed,
    Broken,
}

impl RelationKind {
    const ALL: [RelationKind; 5] = [
        RelationKind::Created,
        RelationKind::Joined,
        RelationKind::Changed,
        RelationKind::Departed,
        RelationKind::Broken,
    ];

    /// The word Juju uses in the hook name (`db-relation-<word>`).
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Created => "created",
            RelationKind::Joined => "joined",
            RelationKind::Changed => "changed",
            RelationKind::Departed => "departed",
            RelationKind::Broken => "broken",
        }
    }
}

/// One Juju hook or action, as named by the dispatch path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Install,
    Start,
    Stop,
    Remove,
    ConfigChanged,
    UpdateStatus,
    UpgradeCharm,
    LeaderElected,
    LeaderSettingsChanged,
    /// `<storage>-storage-attached`, e.g. `pgdata-storage-attached`.
    StorageAttached {
        storage: String,
    },
    /// `<storage>-storage-detaching`.
    StorageDetaching {
        storage: String,
    },
    /// `<endpoint>-relation-<kind>`, e.g. `db-admin-relation-joined`.
    Relation {
        endpoint: String,
        kind: RelationKind,
    },
    /// `actions/<name>`.
    Action {
        name: String,
    },
    /// `secret-remove`: a revision of a secret this application owns is
    /// obsolete (no consumer tracks it).
    SecretRemove,
    /// Any hook this charm does not know (e.g. `secret-changed`), or an
    /// empty/unusable dispatch path. Holds the hook name as given.
    Unknown(String),
}

const STORAGE_ATTACHED_SUFFIX: &str = "-storage-attached";
const STORAGE_DETACHING_SUFFIX: &str = "-storage-detaching";
const RELATION_INFIX: &str = "-relation-";

impl Event {
    /// Parses a dispatch path: `hooks/<name>`, `actions/<name>`, a bare hook
    /// name, or an absolute path ending in `hooks/<name>`/`actions/<name>`.
    pub fn from_dispatch_path(path: &str) -> Event {
        let (parent, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (last_component(dir), name),
            None => ("", path),
        };
        if parent == "actions" && !name.is_empty() {
            return Event::Action {
                name: name.to_string(),
            };
        }
        Event::from_hook_name(name)
    }

    /// Parses a hook name such as `install` or `db-relation-changed`.
    pub fn from_hook_name(name: &str) -> Event {
        match name {
            "install" => Event::Install,
            "start" => Event::Start,
            "stop" => Event::Stop,
            "remove" => Event::Remove,
            "config-changed" => Event::ConfigChanged,
            "update-status" => Event::UpdateStatus,
            "upgrade-charm" => Event::UpgradeCharm,
            "leader-elected" => Event::LeaderElected,
            "leader-settings-changed" => Event::LeaderSettingsChanged,
            "secret-remove" => Event::SecretRemove,
            _ => parse_storage_hook(name)
                .or_else(|| parse_relation_hook(name))
                .unwrap_or_else(|| Event::Unknown(name.to_string())),
        }
    }
}

fn last_component(dir: &str) -> &str {
    dir.rsplit('/').next().unwrap_or(dir)
}

fn parse_storage_hook(name: &str) -> Option<Event> {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if let Some(storage) = name.strip_suffix(STORAGE_ATTACHED_SUFFIX) {
        return non_empty(storage).map(|storage| Event::StorageAttached { storage });
    }
    if let Some(storage) = name.strip_suffix(STORAGE_DETACHING_SUFFIX) {
        return non_empty(storage).map(|storage| Event::StorageDetaching { storage });
    }
    None
}

fn parse_relation_hook(name: &str) -> Option<Event> {
    // The kind is the last word, so an endpoint may itself contain hyphens
    // (`db-admin-relation-joined` is endpoint `db-admin`).
    let (endpoint, kind_word) = name.rsplit_once(RELATION_INFIX)?;
    let kind = RelationKind::ALL
        .into_iter()
        .find(|kind| kind.as_str() == kind_word)?;
    if endpoint.is_empty() {
        return None;
    }
    Some(Event::Relation {
        endpoint: endpoint.to_string(),
        kind,
    })
}

/// Prints the hook name (`install`, `db-relation-joined`) or `action <name>`,
/// for log and error messages.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Install => f.write_str("install"),
            Event::Start => f.write_str("start"),
            Event::Stop => f.write_str("stop"),
            Event::Remove => f.write_str("remove"),
            Event::ConfigChanged => f.write_str("config-changed"),
            Event::UpdateStatus => f.write_str("update-status"),
            Event::UpgradeCharm => f.write_str("upgrade-charm"),
            Event::LeaderElected => f.write_str("leader-elected"),
            Event::LeaderSettingsChanged => f.write_str("leader-settings-changed"),
            Event::SecretRemove => f.write_str("secret-remove"),
            Event::StorageAttached { storage } => write!(f, "{storage}{STORAGE_ATTACHED_SUFFIX}"),
            Event::StorageDetaching { storage } => write!(f, "{storage}{STORAGE_DETACHING_SUFFIX}"),
            Event::Relation { endpoint, kind } => {
                write!(f, "{endpoint}{RELATION_INFIX}{}", kind.as_str())
            }
            Event::Action { name } => write!(f, "action {name}"),
            Event::Unknown(name) if name.is_empty() => f.write_str("(unnamed event)"),
            Event::Unknown(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation(endpoint: &str, kind: RelationKind) -> Event {
        Event::Relation {
            endpoint: endpoint.into(),
            kind,
        }
    }

    #[test]
    fn parses_every_dispatch_path_shape() {
        use RelationKind::*;
        let cases: Vec<(&str, Event)> = vec![
            ("hooks/install", Event::Install),
            ("hooks/start", Event::Start),
            ("hooks/stop", Event::Stop),
            ("hooks/remove", Event::Remove),
            ("hooks/config-changed", Event::ConfigChanged),
            ("hooks/update-status", Event::UpdateStatus),
            ("hooks/upgrade-charm", Event::UpgradeCharm),
            ("hooks/leader-elected", Event::LeaderElected),
            (
                "hooks/leader-settings-changed",
                Event::LeaderSettingsChanged,
            ),
            (
                "hooks/pgdata-storage-attached",
                Event::StorageAttached {
                    storage: "pgdata".into(),
                },
            ),
            (
                "hooks/pgwal-storage-detaching",
                Event::StorageDetaching {
                    storage: "pgwal".into(),
                },
            ),
            ("hooks/db-relation-created", relation("db", Created)),
            ("hooks/db-relation-joined", relation("db", Joined)),
            ("hooks/db-relation-changed", relation("db", Changed)),
            ("hooks/db-relation-departed", relation("db", Departed)),
            ("hooks/db-relation-broken", relation("db", Broken)),
            (
                "hooks/db-admin-relation-joined",
                relation("db-admin", Joined),
            ),
            (
                "hooks/replication-relation-changed",
                relation("replication", Changed),
            ),
            // An endpoint containing the infix itself: the kind is the last word.
            (
                "hooks/a-relation-b-relation-broken",
                relation("a-relation-b", Broken),
            ),
            (
                "actions/tuning-report",
                Event::Action {
                    name: "tuning-report".into(),
                },
            ),
            // `$0` of a hooks/ copy run by Juju: an absolute path.
            (
                "/var/lib/juju/agents/unit-postgresql-0/charm/hooks/install",
                Event::Install,
            ),
            (
                "/var/lib/juju/agents/unit-postgresql-0/charm/actions/tuning-report",
                Event::Action {
                    name: "tuning-report".into(),
                },
            ),
            ("./hooks/start", Event::Start),
            // argv[0] basename, no directory.
            ("upgrade-charm", Event::UpgradeCharm),
            // Odd and unknown names.
            (
                "hooks/secret-changed",
                Event::Unknown("secret-changed".into()),
            ),
            (
                "hooks/db-relation-exploded",
                Event::Unknown("db-relation-exploded".into()),
            ),
            (
                "hooks/-relation-joined",
                Event::Unknown("-relation-joined".into()),
            ),
            (
                "hooks/-storage-attached",
                Event::Unknown("-storage-attached".into()),
            ),
            (
                "hooks/relation-joined",
                Event::Unknown("relation-joined".into()),
            ),
            ("hooks/Install", Event::Unknown("Install".into())),
            ("hooks/", Event::Unknown("".into())),
            ("actions/", Event::Unknown("".into())),
            ("", Event::Unknown("".into())),
            ("dispatch", Event::Unknown("dispatch".into())),
            ("/charm/dispatch", Event::Unknown("dispatch".into())),
        ];
        for (path, expected) in cases {
            assert_eq!(Event::from_dispatch_path(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn display_round_trips_hook_names() {
        for name in [
            "install",
            "start",
            "stop",
            "remove",
            "config-changed",
            "update-status",
            "upgrade-charm",
            "leader-elected",
            "leader-settings-changed",
            "pgdata-storage-attached",
            "pgwal-storage-detaching",
            "db-relation-created",
            "db-admin-relation-departed",
            "replication-relation-broken",
            "secret-changed",
            "secret-remove",
        ] {
            assert_eq!(Event::from_hook_name(name).to_string(), name);
        }
    }

    #[test]
    fn display_names_actions_and_empty_events() {
        let action = Event::from_dispatch_path("actions/tuning-report");
        assert_eq!(action.to_string(), "action tuning-report");
        assert_eq!(Event::from_dispatch_path("").to_string(), "(unnamed event)");
    }
}
