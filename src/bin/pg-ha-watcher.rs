//! `pg-ha-watcher <state dir>`: the HA watcher of one unit (see
//! `postgresql_charm::ha::watcher`), packed with the charm next to
//! `pg-charm`. The charm starts it (a systemd unit, or detached) and keeps
//! its configuration in `<state dir>/watcher.json`. Logs to stderr.

use std::path::PathBuf;

fn main() {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .format_timestamp_millis()
        .init();
    let mut args = std::env::args_os().skip(1);
    let (Some(state_dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: pg-ha-watcher <state dir>");
        std::process::exit(2);
    };
    if let Err(e) = postgresql_charm::ha::watcher::run(PathBuf::from(state_dir)) {
        log::error!("{e:#}");
        std::process::exit(1);
    }
}
