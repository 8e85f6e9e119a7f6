//! Prints what the test suite must leave as it found on this host: the
//! kernel settings the charm tunes, transparent huge pages, huge pages and
//! the files under /etc the charm writes (see `scenarios::host`).
//! `scripts/test` runs it before and after the suite and compares.

fn main() {
    print!("{}", scenarios::host::HostSnapshot::take().render());
}
