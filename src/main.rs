//! `pg-charm`: the whole PostgreSQL machine charm in one binary.
//!
//! Juju runs `dispatch` (or an old-style `hooks/<name>` copy of it) for every
//! hook and action; that script execs this binary with `JUJU_DISPATCH_PATH`
//! naming the event. `main` only prepares the process, reads the
//! environment (Juju's [`HookContext`] and the charm's [`TestKnobs`]) and
//! hands the hook to [`charm::handle`]; a failure is logged with its full cause chain and the
//! process exits 1, which Juju reports as a failed hook and retries.

use postgresql_charm::charm::{self, Hook};
use postgresql_charm::juju::{self, HookContext};
use postgresql_charm::knobs::TestKnobs;
use postgresql_charm::process_env;

fn main() {
    // Before anything else, while the process has a single thread.
    process_env::fill_in_missing();
    process_env::leave_charm_dir();
    // The only reads of the environment: Juju's variables and the charm's own.
    let knobs = TestKnobs::from_env();
    let context = HookContext::from_env();
    let in_hook = context.as_ref().map_or(true, |c| c.in_hook);
    juju::log::init(&knobs.log_filter, in_hook);

    let context = match context {
        Ok(context) => context,
        Err(err) => {
            log::error!("{err:#}");
            std::process::exit(1);
        }
    };
    let hook = Hook::new(context, &knobs);
    if let Err(err) = charm::handle(&hook) {
        log::error!("{} failed: {err:#}", hook.context.event);
        std::process::exit(1);
    }
}
