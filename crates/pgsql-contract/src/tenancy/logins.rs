//! Per `database` relation two alternating logins, members of the
//! consumer application's owner role, so that a rotated password keeps
//! working until the consumer has read the new one (pure).
//!
//! **Roles.** The consumer application's owner role `O`
//! (`jujuclient_<app>`, [`crate::names::relation_user`]) owns its
//! databases and has the privileges its relations asked for; it has no
//! `LOGIN`. Each relation `n` logs in as its own role `L`
//! (`jujuclient_<app>_<n>`, [`crate::names::database_login`]) or `L_b`
//! ([`alternate_login`]): both are members of `O` and start every session
//! as `O` (`ALTER ROLE … SET role = O`), so what the consumer creates is
//! owned by `O` whichever login it used, and a relation that goes
//! (`-broken`) loses its logins without touching another relation of the
//! same application, or the data. Other tenants can never be granted any
//! of them: role names starting with `juju` are refused in requests.
//!
//! **Why two logins.** A `database` consumer gets its credentials from a
//! Juju secret and reads a new revision only when its `secret-changed`
//! hook runs. Changing the one login's password at once (as `db` does)
//! would cut it off until then. So `rotate-credentials` flips between `L`
//! and `L_b`: the inactive one gets a fresh password and becomes active,
//! the secret's new revision names it, and the old one keeps its password
//! and `LOGIN` while it is **retiring**.
//!
//! **When the old login stops.** Juju tells the owner (`secret-remove`, with
//! the revision) once no consumer unit tracks a revision any more. The
//! charm keeps the set of revisions of the relation's user secrets that it
//! superseded and Juju has not yet declared obsolete (`outstanding`). While
//! any is outstanding some consumer may still hold the old credentials; when
//! the last one goes, retiring ends and the old login loses `LOGIN` and its
//! sessions. A relation whose credentials are in the bag (no secrets)
//! supersedes no revision, so its old login stops at once, as on `db`.
//!
//! Rotating again while a login is still retiring makes the retiring one
//! active again with a fresh password: consumers still on the revision
//! before the previous rotation are then cut off (one rotation of grace).
//!
//! The state is kept next to the relation's passwords, as text
//! ([`LoginState::parse`], [`LoginState::format`]).

use std::collections::BTreeSet;

use crate::sql::{Name, NameKind, MAX_IDENTIFIER_BYTES};

/// The suffix of the alternate login.
const ALTERNATE_SUFFIX: &str = "_b";

/// The second login of a relation whose login is `login`: `<login>_b`,
/// cut before the suffix when the name is already at the length limit
/// (such names end in a 16-hex-digit hash, of which 14 then remain: still
/// distinct).
pub fn alternate_login(login: &Name) -> Name {
    let keep = MAX_IDENTIFIER_BYTES - ALTERNATE_SUFFIX.len();
    let text = login.as_str();
    // Names are ASCII, so any byte index is a char boundary.
    let base = &text[..text.len().min(keep)];
    Name::parse(NameKind::User, &format!("{base}{ALTERNATE_SUFFIX}"))
        .expect("a valid user name with a short ASCII suffix is valid")
}

/// Which of the two logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Login {
    /// The relation's login itself (what every relation starts with).
    #[default]
    Main,
    /// [`alternate_login`].
    Alternate,
}

impl Login {
    pub fn other(self) -> Login {
        match self {
            Login::Main => Login::Alternate,
            Login::Alternate => Login::Main,
        }
    }

    /// The role's name for a relation whose login is `login`.
    pub fn name(self, login: &Name) -> Name {
        match self {
            Login::Main => login.clone(),
            Login::Alternate => alternate_login(login),
        }
    }
}

/// One revision of one secret: the secret's id (the URI's last part) and
/// the revision number.
pub type Revision = (String, u32);

/// Which login is active, whether the other is retiring, and the revisions
/// still outstanding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginState {
    pub active: Login,
    pub retiring: bool,
    pub outstanding: BTreeSet<Revision>,
}

/// What the SQL layer makes of the two logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPlan {
    /// The application's owner role (no `LOGIN`), which both logins act as.
    pub owner: Name,
    /// Has `LOGIN` and the current password.
    pub active: Name,
    pub inactive: Name,
    /// The inactive login keeps `LOGIN` (and its password) for now; else it
    /// loses it and its sessions end.
    pub inactive_keeps_login: bool,
}

impl LoginState {
    /// Reads the stored text; `None` (nothing stored) is the initial state.
    pub fn parse(text: Option<&str>) -> Result<LoginState, String> {
        let mut state = LoginState::default();
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(state);
        };
        for part in text.split(';') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("login state part {part:?} has no '='"))?;
            match key {
                "active" => {
                    state.active = match value {
                        "main" => Login::Main,
                        "alternate" => Login::Alternate,
                        _ => return Err(format!("unknown active login {value:?}")),
                    }
                }
                "retiring" => state.retiring = value == "yes",
                "outstanding" => {
                    for item in value.split(',').filter(|i| !i.is_empty()) {
                        let (id, revision) = item
                            .split_once('#')
                            .ok_or_else(|| format!("outstanding revision {item:?} has no '#'"))?;
                        let revision = revision
                            .parse()
                            .map_err(|_| format!("outstanding revision {item:?} is no number"))?;
                        state.outstanding.insert((id.to_string(), revision));
                    }
                }
                _ => return Err(format!("unknown login state key {key:?}")),
            }
        }
        Ok(state)
    }

    /// The text to store; [`LoginState::parse`] reads it back.
    pub fn format(&self) -> String {
        let active = match self.active {
            Login::Main => "main",
            Login::Alternate => "alternate",
        };
        let retiring = if self.retiring { "yes" } else { "no" };
        let outstanding: Vec<String> = self
            .outstanding
            .iter()
            .map(|(id, r)| format!("{id}#{r}"))
            .collect();
        format!(
            "active={active};retiring={retiring};outstanding={}",
            outstanding.join(",")
        )
    }

    /// After `rotate-credentials`: the other login is active (it gets a
    /// fresh password), the one in use until now retires.
    pub fn rotated(&self) -> LoginState {
        LoginState {
            active: self.active.other(),
            retiring: true,
            outstanding: self.outstanding.clone(),
        }
    }

    /// The charm gave a user secret a new revision; the one before is
    /// outstanding until Juju says no consumer tracks it.
    pub fn superseded(&mut self, revision: Revision) {
        self.outstanding.insert(revision);
    }

    /// Juju says `revision` is obsolete (`secret-remove`). Whether the state
    /// changed; retiring ends with the last outstanding revision.
    pub fn removed(&mut self, revision: &Revision) -> bool {
        if !self.outstanding.remove(revision) {
            return false;
        }
        self.settle();
        true
    }

    /// Ends retiring when nothing is outstanding (a consumer without
    /// secrets read its new password in the bag). Whether it ended.
    pub fn settle(&mut self) -> bool {
        if self.retiring && self.outstanding.is_empty() {
            self.retiring = false;
            return true;
        }
        false
    }

    /// The logins of the relation whose login is `login`, members of
    /// `owner`, as the SQL layer applies them.
    pub fn plan(&self, owner: &Name, login: &Name) -> LoginPlan {
        LoginPlan {
            owner: owner.clone(),
            active: self.active.name(login),
            inactive: self.active.other().name(login),
            inactive_keeps_login: self.retiring,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Name {
        Name::parse(NameKind::User, text).unwrap()
    }

    fn rev(id: &str, r: u32) -> Revision {
        (id.to_string(), r)
    }

    #[test]
    fn the_alternate_login_fits_and_differs() {
        assert_eq!(
            alternate_login(&user("jujuclient_shop_7")).as_str(),
            "jujuclient_shop_7_b"
        );
        let long = user(&format!(
            "jujuclient_{}_{}",
            "x".repeat(35),
            "0123456789abcdef"
        ));
        assert_eq!(long.as_str().len(), MAX_IDENTIFIER_BYTES);
        let alternate = alternate_login(&long);
        assert_eq!(alternate.as_str().len(), MAX_IDENTIFIER_BYTES);
        assert!(
            alternate.as_str().ends_with("0123456789abcd_b"),
            "{alternate}"
        );
        assert_ne!(alternate, long);
        assert_eq!(Login::Main.name(&long), long);
        assert_eq!(Login::Alternate.name(&long), alternate);
    }

    #[test]
    fn the_state_reads_back_what_it_wrote() {
        assert_eq!(LoginState::parse(None), Ok(LoginState::default()));
        assert_eq!(LoginState::parse(Some("")), Ok(LoginState::default()));
        let state = LoginState {
            active: Login::Alternate,
            retiring: true,
            outstanding: [
                rev("cnp5t2tnh8pc778j61ea", 1),
                rev("cnp5t2tnh8pc778j61eb", 4),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(LoginState::parse(Some(&state.format())), Ok(state));
        let initial = LoginState::default();
        assert_eq!(LoginState::parse(Some(&initial.format())), Ok(initial));
        for bad in [
            "active",
            "active=both",
            "colour=red",
            "outstanding=abc",
            "outstanding=abc#x",
        ] {
            assert!(LoginState::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    /// A rotation, the consumer reading the new revision, Juju declaring
    /// the old one obsolete: the old login keeps working exactly until then.
    #[test]
    fn a_rotation_retires_the_old_login_when_its_revisions_are_gone() {
        let owner = user("jujuclient_shop");
        let login = user("jujuclient_shop_7");
        let alternate = user("jujuclient_shop_7_b");
        let start = LoginState::default();
        assert_eq!(
            start.plan(&owner, &login),
            LoginPlan {
                owner: owner.clone(),
                active: login.clone(),
                inactive: alternate.clone(),
                inactive_keeps_login: false,
            }
        );

        let mut rotated = start.rotated();
        let plan = rotated.plan(&owner, &login);
        assert_eq!(plan.owner, owner, "both act as the owner");
        assert_eq!((&plan.active, &plan.inactive), (&alternate, &login));
        assert!(plan.inactive_keeps_login, "the old login still works");
        // The same hook publishes revision 2, superseding revision 1.
        rotated.superseded(rev("s1", 1));
        assert!(!rotated.settle(), "a consumer may still hold revision 1");
        assert!(rotated.plan(&owner, &login).inactive_keeps_login);

        // An unrelated revision going changes nothing.
        assert!(!rotated.removed(&rev("s1", 7)));
        assert!(rotated.retiring);
        // The consumer refreshed: revision 1 is obsolete.
        assert!(rotated.removed(&rev("s1", 1)));
        assert!(!rotated.retiring);
        assert!(!rotated.plan(&owner, &login).inactive_keeps_login);
        // Told twice (a retried hook): nothing more to do.
        assert!(!rotated.removed(&rev("s1", 1)));

        // Rotating back: the main login is active again, the alternate retires.
        let back = rotated.rotated();
        let plan = back.plan(&owner, &login);
        assert_eq!((&plan.active, &plan.inactive), (&login, &alternate));
        assert!(plan.inactive_keeps_login);
    }

    #[test]
    fn retiring_waits_for_every_outstanding_revision() {
        let mut state = LoginState::default();
        // Revision 1 was superseded by an endpoint change (same login) and
        // is still held by a slow unit when the rotation comes.
        state.superseded(rev("s1", 1));
        let mut state = state.rotated();
        state.superseded(rev("s1", 2));
        state.superseded(rev("s2", 3));
        for gone in [rev("s1", 2), rev("s2", 3)] {
            assert!(state.removed(&gone));
            assert!(state.retiring, "{gone:?} is not the last");
        }
        assert!(state.removed(&rev("s1", 1)));
        assert!(!state.retiring);
    }

    #[test]
    fn without_secrets_the_old_login_stops_at_once() {
        let mut state = LoginState::default().rotated();
        assert!(state.settle(), "nothing outstanding: retiring ends");
        assert!(
            !state
                .plan(&user("jujuclient_x"), &user("jujuclient_x_1"))
                .inactive_keeps_login
        );
        assert!(!state.settle());
    }

    #[test]
    fn rotating_while_retiring_keeps_what_is_outstanding() {
        let mut state = LoginState::default().rotated();
        state.superseded(rev("s1", 1));
        let again = state.rotated();
        assert_eq!(again.active, Login::Main);
        assert!(again.retiring);
        assert_eq!(again.outstanding, state.outstanding);
    }
}
