//! SQL as the charm: tokio-postgres over the unix socket, as database user
//! `postgres`, authenticated by peer credentials through the `juju_charm`
//! ident map (root → postgres). No superuser password exists anywhere.
//!
//! Hooks are short and sequential, so each call runs on a throwaway
//! current-thread runtime; nothing here is async from the caller's side.
//!
//! **The charm's sessions set what they depend on.** A consumer owns its
//! database and may give it defaults (`ALTER DATABASE … SET`) that every
//! session inherits, the charm's included: `default_transaction_read_only`,
//! a 1 ms `statement_timeout`, a `search_path` through its own schema,
//! `role` (which would make the charm's session run as the consumer), a
//! `local_preload_libraries` that fails every connection. Settings sent at
//! connection time win over those, so every session sends
//! [`session_settings`]. And a consumer holding a lock the charm needs (an
//! open transaction on its database's or its role's catalog row) makes the
//! statement give up after `lock_timeout`, so a hook reports it and goes on
//! instead of hanging.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls, Row};

use super::{Cluster, SOCKET_DIR};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime for SQL")
}

/// How long one charm statement may run, and wait for a lock.
pub const STATEMENT_TIMEOUT: &str = "30s";
pub const LOCK_TIMEOUT: &str = "5s";

/// The settings every charm session sends at connection time, for a server
/// of major version `major` (see the module docs).
pub fn session_settings(major: u32) -> Vec<(&'static str, &'static str)> {
    let mut settings = vec![
        ("statement_timeout", STATEMENT_TIMEOUT),
        ("lock_timeout", LOCK_TIMEOUT),
        ("idle_in_transaction_session_timeout", "30s"),
        ("default_transaction_read_only", "off"),
        ("search_path", "pg_catalog"),
        ("role", "none"),
        ("local_preload_libraries", ""),
        ("standard_conforming_strings", "on"),
    ];
    if major >= 14 {
        settings.push(("idle_session_timeout", "0"));
    }
    settings
}

/// [`session_settings`] as the libpq `options` startup parameter.
fn startup_options(major: u32) -> String {
    session_settings(major)
        .iter()
        .map(|(name, value)| format!("-c {name}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A connection to `database`, inside a runtime [`with_client`] runs (for a
/// second session next to its own).
pub async fn connect(cluster: &Cluster, database: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(SOCKET_DIR)
        .port(cluster.port)
        .user("postgres")
        .dbname(database)
        .application_name("juju-pg-charm")
        .options(startup_options(cluster.major))
        .connect_timeout(Duration::from_secs(10))
        .connect(NoTls)
        .await
        .with_context(|| {
            format!(
                "connecting to PostgreSQL {} over {SOCKET_DIR} as postgres (peer, ident map juju_charm)",
                cluster.id()
            )
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("connection closed: {e}");
        }
    });
    Ok(client)
}

/// Runs `work` with a connection to `database`.
pub fn with_client<T>(
    cluster: &Cluster,
    database: &str,
    work: impl AsyncFnOnce(&Client) -> Result<T>,
) -> Result<T> {
    runtime()?.block_on(async {
        let client = connect(cluster, database).await?;
        work(&client).await
    })
}

/// Runs one query on the `postgres` database and returns its rows.
pub fn query(cluster: &Cluster, sql: &str) -> Result<Vec<Row>> {
    with_client(cluster, "postgres", async |client| {
        client
            .query(sql, &[])
            .await
            .with_context(|| format!("running {sql:?}"))
    })
}

/// The server's full version (e.g. `15.18`), once it accepts connections:
/// right after a start this waits for it.
pub fn wait_for_version(cluster: &Cluster, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match query(cluster, "SHOW server_version") {
            Ok(rows) => {
                let full: String = rows[0].get(0);
                return Ok(full.split_whitespace().next().unwrap_or(&full).to_string());
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("PostgreSQL did not accept connections in time")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reloads the configuration and waits until the server has read it, then
/// returns the settings that still need a restart (`pending_restart`).
pub fn reload(cluster: &Cluster) -> Result<Vec<String>> {
    let before: String = query(cluster, "SELECT pg_conf_load_time()::text")?[0].get(0);
    query(cluster, "SELECT pg_reload_conf()")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A new backend reports the load time of the postmaster's latest read.
        let now: String = query(cluster, "SELECT pg_conf_load_time()::text")?[0].get(0);
        if now != before || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = query(
        cluster,
        "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What the running server has loaded, to compare with the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedState {
    /// `pg_conf_load_time()`, in microseconds since the Unix epoch.
    pub loaded_at_micros: i64,
    /// Settings whose file value waits for a restart (`pending_restart`).
    pub pending_restart: Vec<String>,
    /// Lines of pg_hba.conf the server would not accept
    /// (`pg_hba_file_rules`, which reads the file on disk).
    pub hba_errors: Vec<String>,
}

/// [`LoadedState`], once the server accepts connections (it may still be
/// starting, or recovering after a crash, although its process runs).
/// One session, retried as [`wait_for_version`] waits.
pub fn loaded_state(cluster: &Cluster) -> Result<LoadedState> {
    let sql = "SELECT (extract(epoch FROM pg_conf_load_time()) * 1000000)::int8, \
                ARRAY(SELECT name FROM pg_settings WHERE pending_restart ORDER BY name), \
                ARRAY(SELECT 'line ' || line_number || ': ' || error FROM pg_hba_file_rules \
                      WHERE error IS NOT NULL ORDER BY line_number)";
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        match query(cluster, sql) {
            Ok(rows) => break rows,
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("PostgreSQL did not accept connections in time")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let row = &rows[0];
    Ok(LoadedState {
        loaded_at_micros: row.get(0),
        pending_restart: row.get(1),
        hba_errors: row.get(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_override_what_a_consumer_can_set_on_its_database() {
        let options = startup_options(15);
        for wanted in [
            "-c statement_timeout=30s",
            "-c lock_timeout=5s",
            "-c idle_in_transaction_session_timeout=30s",
            "-c default_transaction_read_only=off",
            "-c search_path=pg_catalog",
            "-c role=none",
            "-c local_preload_libraries=",
            "-c idle_session_timeout=0",
        ] {
            assert!(options.contains(wanted), "{options}");
        }
        // idle_session_timeout is unknown before PostgreSQL 14.
        assert!(!startup_options(13).contains("idle_session_timeout"));
    }
}
