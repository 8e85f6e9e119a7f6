"""What both postgresql_client consumer fixtures do with what their library hands them.

scripts/consumer-venv copies this file into tests/consumer-database-v0/venv and
tests/consumer-database-v1/venv, as if it were one more dependency, so the two
charms share it and differ only in the library they use.

The state file `$JUJU_CHARM_DIR/../consumer-state.json` (outside the charm
directory, which an upgrade replaces; mode 0600) holds under "databases",
by database name:

* "credentials": what the library handed over, without the password itself
  ("password": whether one was handed, "uris": whether a URI was);
* "connected": "wrote and read <note>" once a connection with that URI
  created the table, wrote a row and read it back, or
* "connect-error": why not (the password, if it appears, is replaced by ***).

and "events": the library events seen, in order. Passwords go nowhere else:
not to juju-log, stdout, stderr or the status.
"""

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2


def state_path(charm_dir) -> Path:
    return Path(charm_dir).parent / "consumer-state.json"


def load_state(charm_dir) -> dict:
    try:
        return json.loads(state_path(charm_dir).read_text())
    except FileNotFoundError:
        return {"events": [], "databases": {}}


def save_state(charm_dir, state: dict) -> None:
    path = state_path(charm_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)
    tmp.replace(path)


def check_connection(uri: str, unit: str) -> str:
    """Connects with `uri`, creates a table, writes a row and reads it back."""
    note = f"hello from {unit}"
    with psycopg2.connect(uri, connect_timeout=5) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS consumer_check (id serial PRIMARY KEY, note text)"
            )
            cur.execute("INSERT INTO consumer_check (note) VALUES (%s) RETURNING id", (note,))
            (row_id,) = cur.fetchone()
            cur.execute("SELECT note FROM consumer_check WHERE id = %s", (row_id,))
            (read_back,) = cur.fetchone()
    conn.close()
    return f"wrote and read {read_back!r}"


def probe(entry: dict, uri, unit: str) -> str:
    """Records in `entry` whether `uri` works; returns a word for the status."""
    entry.pop("connected", None)
    entry.pop("connect-error", None)
    if not uri:
        entry["connect-error"] = "the library handed no URI"
        return "no URI"
    try:
        entry["connected"] = check_connection(uri, unit)
        return "connected"
    except Exception as e:  # noqa: BLE001 - any failure is the result
        password = unquote(urlsplit(uri).password or "")
        message = " ".join(str(e).split())
        if password:
            message = message.replace(password, "***")
        entry["connect-error"] = message[:300]
        return "connect failed"
