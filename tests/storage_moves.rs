//! Moving a serving cluster onto its storage never leaves it down: every
//! reason to refuse (a disk too small, another cluster or major version on
//! it, a read-only disk, not enough room for the WAL) is found before the
//! server stops, and a copy that fails half-way (the disk fills up) gets
//! the server started again from its data. Tablespaces inside PGDATA move
//! with it; none is ever deleted. Real PostgreSQL, real ext4 loop disks.
//!
//! Needs root (loop devices, mounts, PostgreSQL); `scripts/test` runs it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sh, Harness};

fn started_at(h: &Harness) -> String {
    h.cluster.psql("SELECT pg_postmaster_start_time()").unwrap()
}

fn add_pgdata(h: &mut Harness, disk: &Path) {
    h.world
        .add_storage("postgresql/0", "pgdata", Some(disk.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
}

fn run_hook(h: &mut Harness, hook: &str) {
    let result = h.world.run_hook("postgresql/0", hook).unwrap();
    assert!(result.succeeded(), "{hook}: {}", result.output());
}

fn root_data_dir(h: &Harness) -> String {
    format!("/var/lib/postgresql/{}/{}", h.cluster.major, h.cluster.name)
}

fn target(h: &Harness, disk: &Path) -> PathBuf {
    disk.join(h.cluster.major.to_string()).join(&h.cluster.name)
}

fn as_postgres(args: &[&str]) {
    let mut all = vec!["-u", "postgres", "--"];
    all.extend_from_slice(args);
    sh("runuser", &all);
}

/// Asserts a blocked status containing `needle` that says where the server
/// runs, and that it still runs from the root disk, never restarted.
fn assert_blocked_while_serving(h: &Harness, needle: &str, since: &str) {
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(message.contains(needle), "{message}");
    assert!(
        message.contains(&format!(
            "PostgreSQL keeps running from {}",
            root_data_dir(h)
        )),
        "{message}"
    );
    assert_eq!(started_at(h), since, "the server was stopped");
    assert_eq!(h.cluster.data_directory(), root_data_dir(h));
}

#[test]
fn a_disk_too_small_blocks_the_move_and_the_server_keeps_serving() {
    let mut h = Harness::new("move-small");
    h.deploy(None, &[]);
    let rows = h.cluster.fill(20_000);
    let since = started_at(&h);
    let disk = h.disk("pgdata", 24);
    add_pgdata(&mut h, &disk);
    assert_blocked_while_serving(&h, "not enough free space", &since);
    // update-status leaves a quiet block alone, and nothing stopped.
    run_hook(&mut h, "update-status");
    assert_blocked_while_serving(&h, "not enough free space", &since);
    assert_eq!(h.cluster.checksum(), rows);
}

#[test]
fn another_cluster_or_major_on_the_disk_blocks_until_moved_aside() {
    let mut h = Harness::new("move-foreign");
    h.deploy(None, &[]);
    let rows = h.cluster.fill(5_000);
    let since = started_at(&h);
    let disk = h.disk("pgdata", 400);
    let to = target(&h, &disk);
    // Another cluster where this unit's data would go.
    let parent = to.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&parent).unwrap();
    sh("chown", &["postgres:postgres", parent.to_str().unwrap()]);
    let initdb = format!("/usr/lib/postgresql/{}/bin/initdb", h.cluster.major);
    as_postgres(&[&initdb, "-D", to.to_str().unwrap()]);
    add_pgdata(&mut h, &disk);
    assert_blocked_while_serving(&h, "holds a different cluster", &since);

    // The operator replaces it with data of another major version; the
    // next update-status sees the change and checks again.
    let aside = parent.join("aside");
    std::fs::rename(&to, &aside).unwrap();
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(to.join("PG_VERSION"), "11\n").unwrap();
    run_hook(&mut h, "update-status");
    assert_blocked_while_serving(&h, "holds PostgreSQL 11 data", &since);

    // Moved aside for good: the move goes ahead on its own.
    std::fs::rename(&to, parent.join("aside-11")).unwrap();
    run_hook(&mut h, "update-status");
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.data_directory(), to.display().to_string());
    assert_eq!(h.cluster.checksum(), rows);
    assert!(
        aside.join("PG_VERSION").is_file(),
        "the other cluster is kept"
    );
}

#[test]
fn a_read_only_disk_blocks_before_stopping_and_the_move_resumes_when_writable() {
    let mut h = Harness::new("move-ro");
    h.deploy(None, &[]);
    let rows = h.cluster.fill(5_000);
    let since = started_at(&h);
    let disk = h.disk("pgdata", 400);
    sh("mount", &["-o", "remount,ro", disk.to_str().unwrap()]);
    add_pgdata(&mut h, &disk);
    assert_blocked_while_serving(&h, "read-only file system", &since);
    sh("mount", &["-o", "remount,rw", disk.to_str().unwrap()]);
    run_hook(&mut h, "update-status");
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(
        h.cluster.data_directory(),
        target(&h, &disk).display().to_string()
    );
    assert_eq!(h.cluster.checksum(), rows);
}

/// Fills the file system at `mount` as soon as the server's postmaster.pid
/// in `data_dir` is gone (the charm stopped it to copy), until `done`.
fn fill_when_stopped(data_dir: PathBuf, mount: PathBuf, done: Arc<AtomicBool>) -> bool {
    let pid_file = data_dir.join("postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
        if !pid_file.exists() {
            // Take what postgres (who copies) may still use; the copy is
            // writing too, so a few times over.
            let available = || {
                let stat = nix::sys::statvfs::statvfs(&mount).unwrap();
                stat.blocks_available() as u64 * stat.fragment_size() as u64
            };
            for n in 0..20 {
                let free = available();
                if free < 4 << 20 {
                    break;
                }
                let _ = std::process::Command::new("fallocate")
                    .args(["-l", &(free - (1 << 20)).to_string()])
                    .arg(mount.join(format!("filler{n}")))
                    .status();
            }
            return available() < 4 << 20;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn a_disk_that_fills_up_during_the_copy_gets_the_server_started_again() {
    let mut h = Harness::new("move-fills");
    h.deploy(None, &[]);
    let rows = h.cluster.fill(300_000);
    let disk = h.disk("pgdata", 700);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (data_dir, mount, done) =
            (PathBuf::from(root_data_dir(&h)), disk.clone(), done.clone());
        std::thread::spawn(move || fill_when_stopped(data_dir, mount, done))
    };
    add_pgdata(&mut h, &disk);
    done.store(true, Ordering::SeqCst);
    assert!(
        watcher.join().unwrap(),
        "the disk was filled during the copy"
    );
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(message.contains("No space left on device"), "{message}");
    assert!(
        message.contains(&format!(
            "PostgreSQL was started again from {}",
            root_data_dir(&h)
        )),
        "{message}"
    );
    assert!(h.cluster.is_running());
    assert_eq!(h.cluster.data_directory(), root_data_dir(&h));
    assert_eq!(h.cluster.checksum(), rows);
    let to = target(&h, &disk);
    let staged: Vec<_> = std::fs::read_dir(to.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(staged.is_empty(), "a partial copy was left: {staged:?}");
    // The space comes back: update-status notices and the move goes ahead.
    for entry in std::fs::read_dir(&disk).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("filler") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    run_hook(&mut h, "update-status");
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.data_directory(), to.display().to_string());
    assert_eq!(h.cluster.checksum(), rows);
}

#[test]
fn a_stale_staging_copy_is_removed_before_the_space_check() {
    let mut h = Harness::new("move-stale");
    h.deploy(None, &[]);
    let rows = h.cluster.fill(5_000);
    let disk = h.disk("pgdata", 200);
    // What an interrupted earlier copy leaves: most of the disk.
    let to = target(&h, &disk);
    let staging = to.with_file_name(format!(".{}.juju-copy", h.cluster.name));
    std::fs::create_dir_all(&staging).unwrap();
    sh(
        "fallocate",
        &["-l", "150M", staging.join("base").to_str().unwrap()],
    );
    sh(
        "chown",
        &[
            "-R",
            "postgres:postgres",
            to.parent().unwrap().to_str().unwrap(),
        ],
    );
    add_pgdata(&mut h, &disk);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    assert_eq!(h.cluster.data_directory(), to.display().to_string());
    assert_eq!(h.cluster.checksum(), rows);
    assert!(!staging.exists());
}

#[test]
fn tablespaces_inside_pgdata_move_with_it_and_none_is_deleted() {
    let mut h = Harness::new("move-tablespaces");
    h.deploy(None, &[]);
    let old = PathBuf::from(root_data_dir(&h));
    let inside = old.join("ts_inside");
    let outside = h.scratch.0.join("ts_outside");
    for dir in [&inside, &outside] {
        std::fs::create_dir_all(dir).unwrap();
        sh("chown", &["postgres:postgres", dir.to_str().unwrap()]);
    }
    h.cluster
        .psql(&format!(
            "CREATE TABLESPACE ts_in LOCATION '{}'",
            inside.display()
        ))
        .unwrap();
    h.cluster
        .psql(&format!(
            "CREATE TABLESPACE ts_out LOCATION '{}'",
            outside.display()
        ))
        .unwrap();
    let fill = |table: &str, tablespace: &str| {
        h.cluster
            .psql(&format!(
                "CREATE TABLE {table} (id int primary key, body text) TABLESPACE {tablespace};\
                 INSERT INTO {table} SELECT g, md5(g::text) FROM generate_series(1, 3000) g"
            ))
            .unwrap();
        h.cluster
            .psql(&format!(
                "SELECT md5(string_agg(id::text || body, ',' ORDER BY id)) FROM {table}"
            ))
            .unwrap()
    };
    let (sum_in, sum_out) = (fill("t_in", "ts_in"), fill("t_out", "ts_out"));
    let disk = h.disk("pgdata", 400);
    add_pgdata(&mut h, &disk);
    assert_eq!(h.status().0, "active", "{:?}", h.status());
    let to = target(&h, &disk);
    assert_eq!(h.cluster.data_directory(), to.display().to_string());
    let location = |name: &str| {
        h.cluster
            .psql(&format!(
                "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = '{name}'"
            ))
            .unwrap()
    };
    assert_eq!(
        location("ts_in"),
        to.join("ts_inside").display().to_string()
    );
    assert_eq!(location("ts_out"), outside.display().to_string());
    // Read every row back, after a restart so nothing comes from memory.
    sh(
        "pg_ctlcluster",
        &[&h.cluster.major.to_string(), &h.cluster.name, "restart"],
    );
    let sum = |table: &str| {
        h.cluster
            .psql(&format!(
                "SELECT md5(string_agg(id::text || body, ',' ORDER BY id)) FROM {table}"
            ))
            .unwrap()
    };
    assert_eq!(sum("t_in"), sum_in);
    assert_eq!(sum("t_out"), sum_out);
    assert!(!old.exists(), "the old PGDATA is retired");
    assert!(outside.read_dir().unwrap().count() > 0, "ts_out kept");
}

#[test]
fn the_wal_move_checks_its_space_before_stopping() {
    let mut h = Harness::new("wal-small");
    let data = h.disk("pgdata", 400);
    h.deploy(Some(&data), &[]);
    h.cluster.fill(3_000);
    let since = started_at(&h);
    let wal = h.disk("pgwal", 12);
    h.world
        .add_storage("postgresql/0", "pgwal", Some(wal.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains("not enough free space") && message.contains("write-ahead log"),
        "{message}"
    );
    assert!(message.contains("PostgreSQL keeps running"), "{message}");
    assert_eq!(started_at(&h), since, "the server was stopped");
    let pg_wal = Path::new(&h.cluster.data_directory()).join("pg_wal");
    assert!(std::fs::symlink_metadata(&pg_wal).unwrap().is_dir());
}

#[test]
fn the_wal_move_never_deletes_what_it_finds_on_the_wal_disk() {
    let mut h = Harness::new("wal-foreign");
    let data = h.disk("pgdata", 400);
    h.deploy(Some(&data), &[]);
    let since = started_at(&h);
    let wal = h.disk("pgwal", 200);
    // Where this unit's WAL would go, someone's files.
    let wanted = wal
        .join(h.cluster.major.to_string())
        .join(&h.cluster.name)
        .join("pg_wal");
    std::fs::create_dir_all(&wanted).unwrap();
    std::fs::write(wanted.join("notes.txt"), "not WAL\n").unwrap();
    h.world
        .add_storage("postgresql/0", "pgwal", Some(wal.display().to_string()))
        .unwrap();
    h.world.settle().unwrap();
    let (status, message) = h.status();
    assert_eq!(status, "blocked", "{message}");
    assert!(
        message.contains("holds no write-ahead log of this cluster"),
        "{message}"
    );
    assert!(message.contains("PostgreSQL keeps running"), "{message}");
    assert_eq!(started_at(&h), since, "the server was stopped");
    assert_eq!(
        std::fs::read_to_string(wanted.join("notes.txt")).unwrap(),
        "not WAL\n"
    );
}
