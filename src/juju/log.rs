//! The `log` backend: sends records to `juju-log` inside a hook, to stderr
//! elsewhere.
//!
//! * Inside a hook (`JUJU_CONTEXT_ID` set), each record becomes
//!   `juju-log --log-level <LEVEL> -- <message>`, so it lands in the unit's
//!   log (`juju debug-log`) with the right level.
//! * Outside Juju, or if `juju-log` cannot run or fails, records go to stderr
//!   through `env_logger` (Juju copies a hook's stderr into the unit log at
//!   WARNING, so nothing is lost). Logging never panics.
//! * The threshold comes from `PG_CHARM_LOG`, in `RUST_LOG` syntax (`debug`,
//!   `info,postgresql_charm::juju=trace`), default `info`. The global max level is
//!   set from it, so a filtered-out `debug!` costs one comparison and never
//!   spawns a process.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::tool::{Invocation, ToolError};

const DEFAULT_FILTER: &str = "info";

/// Installs the logger with `filter` (`PG_CHARM_LOG`'s value, through
/// [`crate::knobs::TestKnobs`]), sending
/// to `juju-log` when `in_hook`. Call once, early in `main`; later calls
/// are no-ops.
pub fn init(filter: &str, in_hook: bool) {
    let logger = HookLogger::new(filter, in_hook);
    let max_level = logger.max_level();
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max_level);
    }
}

/// Writes one message to the unit log: `juju-log --log-level L -- <message>`.
pub(crate) fn juju_log(level: Level, message: &str) -> Result<(), ToolError> {
    Invocation::new("juju-log")
        .arg("--log-level")
        .arg(juju_log_level(level))
        .arg("--")
        .arg_shown_as(message, "<message>")
        .run()
        .map(drop)
}

/// The loggo level name `juju-log` expects for a `log` level.
pub(crate) fn juju_log_level(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

struct HookLogger {
    /// Holds the filter and writes the stderr fallback.
    stderr: env_logger::Logger,
    /// Cleared for good once `juju-log` turns out not to be on PATH.
    use_juju_log: AtomicBool,
    /// Set once we have told stderr that `juju-log` failed.
    reported_failure: AtomicBool,
}

impl HookLogger {
    fn new(filter: &str, in_hook: bool) -> Self {
        let filter = if filter.trim().is_empty() {
            DEFAULT_FILTER
        } else {
            filter
        };
        HookLogger {
            stderr: env_logger::Builder::new().parse_filters(filter).build(),
            use_juju_log: AtomicBool::new(in_hook),
            reported_failure: AtomicBool::new(false),
        }
    }

    fn max_level(&self) -> LevelFilter {
        self.stderr.filter()
    }

    /// Returns false if the record still needs to go to stderr.
    fn send_to_juju_log(&self, record: &Record<'_>) -> bool {
        if !self.use_juju_log.load(Ordering::Relaxed) {
            return false;
        }
        let message = record.args().to_string();
        let Err(err) = juju_log(record.level(), &message) else {
            return true;
        };
        if err.is_tool_missing() {
            self.use_juju_log.store(false, Ordering::Relaxed);
        }
        if !self.reported_failure.swap(true, Ordering::Relaxed) {
            let _ = writeln!(
                std::io::stderr(),
                "pg-charm: {err}; logging to stderr instead"
            );
        }
        false
    }
}

impl Log for HookLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.stderr.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.stderr.matches(record) {
            return;
        }
        if !self.send_to_juju_log(record) {
            self.stderr.log(record);
        }
    }

    fn flush(&self) {
        self.stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_levels_to_juju_names() {
        assert_eq!(juju_log_level(Level::Error), "ERROR");
        assert_eq!(juju_log_level(Level::Warn), "WARNING");
        assert_eq!(juju_log_level(Level::Info), "INFO");
        assert_eq!(juju_log_level(Level::Debug), "DEBUG");
        assert_eq!(juju_log_level(Level::Trace), "TRACE");
    }

    #[test]
    fn default_threshold_is_info() {
        let logger = HookLogger::new("", false);
        assert_eq!(logger.max_level(), LevelFilter::Info);
        let debug = Metadata::builder()
            .level(Level::Debug)
            .target("postgresql_charm")
            .build();
        assert!(!logger.enabled(&debug));
    }

    #[test]
    fn filter_follows_rust_log_syntax() {
        assert_eq!(
            HookLogger::new("debug", false).max_level(),
            LevelFilter::Debug
        );
        let mixed = HookLogger::new("warn,postgresql_charm::juju=trace", false);
        assert_eq!(mixed.max_level(), LevelFilter::Trace);
    }

    fn juju_log_on_path() -> bool {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).any(|dir| dir.join("juju-log").exists())
    }

    #[test]
    fn falls_back_to_stderr_when_juju_log_is_missing() {
        if juju_log_on_path() {
            return; // A hook-tool emulator is installed; nothing to test.
        }
        // The first record finds no juju-log, disables it for good and goes
        // to stderr, without panicking.
        let logger = HookLogger::new("info", true);
        let record = Record::builder()
            .level(Level::Info)
            .target("postgresql_charm")
            .args(format_args!("hello"))
            .build();
        logger.log(&record);
        assert!(!logger.use_juju_log.load(Ordering::Relaxed));
    }
}
