//! `pg-charm`: the whole PostgreSQL machine charm in one binary.
//!
//! Juju runs `dispatch` (or an old-style `hooks/<name>` copy of it) for every
//! hook and action; that script execs this binary with `JUJU_DISPATCH_PATH`
//! naming the event. `main` only prepares the process and hands the event to
//! [`charm::handle`]; a failure is logged with its full cause chain and the
//! process exits 1, which Juju reports as a failed hook and retries.

use postgresql_charm::event::Event;
use postgresql_charm::{charm, juju, process_env};

fn main() {
    // Before anything else, while the process has a single thread.
    process_env::fill_in_missing();
    process_env::leave_charm_dir();
    juju::log::init();

    let event = Event::from_dispatch_path(&dispatch_path());
    if let Err(err) = charm::handle(&event) {
        log::error!("{event} failed: {err:#}");
        std::process::exit(1);
    }
}

/// `JUJU_DISPATCH_PATH` if set, else how we were invoked (argv[0]).
fn dispatch_path() -> String {
    std::env::var("JUJU_DISPATCH_PATH")
        .ok()
        .filter(|path| !path.is_empty())
        .or_else(|| std::env::args().next())
        .unwrap_or_default()
}
