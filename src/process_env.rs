//! The environment our child processes inherit.
//!
//! Juju starts hooks with a minimal environment: no `HOME`, `USER` or
//! `LOGNAME` (contract §2), and `LANG` only on Ubuntu hosts. Tools we run
//! later (`psql`, `pg_ctlcluster`, `apt-get`) expect them, so `main` fills the
//! gaps once, before any thread starts. Variables that are already set are
//! left alone, so a developer's shell or a test harness stays in control.
//!
//! Juju also starts hooks in the charm directory, which the `postgres` user
//! may not be allowed to read; `postgres -C` then fails with "could not
//! identify current directory". [`leave_charm_dir`] moves the process to `/`
//! so that every child, whoever it runs as, starts somewhere it can read.

use std::env;
use std::path::PathBuf;

use nix::unistd::{Uid, User};

const FALLBACK_HOME: &str = "/root";
const FALLBACK_USER: &str = "root";
const DEFAULT_LANG: &str = "C.UTF-8";

/// Sets `HOME`, `USER`, `LOGNAME` and `LANG` where they are unset or empty.
///
/// Must run before any other thread exists (it calls `env::set_var`).
pub fn fill_in_missing() {
    let missing = |name: &str| env::var_os(name).is_none_or(|value| value.is_empty());
    if missing("LANG") {
        env::set_var("LANG", DEFAULT_LANG);
    }
    if !(missing("HOME") || missing("USER") || missing("LOGNAME")) {
        return;
    }
    // Only now pay for a passwd lookup. Juju runs hooks as root, so this is
    // root's entry; under a test harness it is the developer's own.
    let account = current_account();
    if missing("HOME") {
        env::set_var("HOME", &account.home);
    }
    if missing("USER") {
        env::set_var("USER", &account.name);
    }
    if missing("LOGNAME") {
        env::set_var("LOGNAME", &account.name);
    }
}

/// Makes `/` the working directory of this process and so of every child.
/// The charm itself never uses relative paths (the charm directory is
/// `JUJU_CHARM_DIR`).
pub fn leave_charm_dir() {
    if let Err(e) = env::set_current_dir("/") {
        // Only a broken root file system gets here; children then inherit
        // the charm directory, as before.
        eprintln!("could not change to /: {e}");
    }
}

struct Account {
    name: String,
    home: PathBuf,
}

fn current_account() -> Account {
    match User::from_uid(Uid::effective()) {
        Ok(Some(user)) => Account {
            name: user.name,
            home: user.dir,
        },
        _ => Account {
            name: FALLBACK_USER.to_string(),
            home: PathBuf::from(FALLBACK_HOME),
        },
    }
}
