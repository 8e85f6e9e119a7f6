//! SQL as the charm: tokio-postgres over the unix socket, as database user
//! `postgres`, authenticated by peer credentials through the `juju_charm`
//! ident map (root → postgres). No superuser password exists anywhere.
//!
//! Hooks are short and sequential, so each call runs on a throwaway
//! current-thread runtime; nothing here is async from the caller's side.

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

async fn connect(cluster: &Cluster, database: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(SOCKET_DIR)
        .port(cluster.port)
        .user("postgres")
        .dbname(database)
        .application_name("juju-pg-charm")
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
