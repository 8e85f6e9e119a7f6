#!/usr/bin/env python3
"""database-consumer-v0: a PostgreSQL consumer written the way Kubernetes charms are.

It uses data_interfaces v0 unchanged, from the `lib` directory of the PyPI
package postgresql-charms-single-kernel (put on sys.path below, as charms
vendoring the library have it under their own lib/), so the wire format the
provider must speak is the real library's, not a re-implementation.

On `database_created` it records what the library hands over and connects
with the URI (dbprobe.py, shared with the v1 fixture). On `secret-changed`
for its credentials (a new password) it connects again with what the
library then reads.
"""

import logging
import sys
from pathlib import Path

import ops

# The vendored library, as in a charm's own lib/ directory.
sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "venv/single_kernel_postgresql/lib")
)

import dbprobe  # noqa: E402
from charms.data_platform_libs.v0.data_interfaces import (  # noqa: E402
    DatabaseCreatedEvent,
    DatabaseRequires,
)

logger = logging.getLogger(__name__)


class ConsumerCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.database = DatabaseRequires(
            self,
            relation_name="database",
            database_name=self.config["database"],
            extra_user_roles=self.config["extra-user-roles"] or None,
        )
        self.framework.observe(self.database.on.database_created, self._on_database_created)
        for name in ("endpoints_changed", "read_only_endpoints_changed"):
            self.framework.observe(getattr(self.database.on, name), self._on_event)
        self.framework.observe(self.on.secret_changed, self._on_secret_changed)

    def _on_event(self, event):
        state = dbprobe.load_state(self.charm_dir)
        state["events"].append(event.handle.kind)
        dbprobe.save_state(self.charm_dir, state)

    def _on_database_created(self, event: DatabaseCreatedEvent):
        state = dbprobe.load_state(self.charm_dir)
        state["events"].append("database_created")
        database = event.database or self.config["database"]
        entry = state["databases"].setdefault(database, {})
        entry["relation"] = event.relation.id
        entry["credentials"] = {
            "database": event.database,
            "username": event.username,
            "password": bool(event.password),
            "uris": bool(event.uris),
            "read-only-uris": bool(event.read_only_uris),
            "endpoints": event.endpoints,
            "read-only-endpoints": event.read_only_endpoints,
            "version": event.version,
            "tls": event.tls,
            "tls-ca": bool(event.tls_ca),
        }
        logger.info("database_created for %s on relation %d", database, event.relation.id)
        self.unit.status = ops.ActiveStatus(
            f"got credentials for {database}; "
            + dbprobe.probe(entry, event.uris, self.unit.name)
        )
        dbprobe.save_state(self.charm_dir, state)

    def _on_secret_changed(self, event: ops.SecretChangedEvent):
        """A new revision of the credentials: read it through the library, connect again."""
        state = dbprobe.load_state(self.charm_dir)
        state["events"].append("secret_changed")
        for database, entry in state["databases"].items():
            relation_id = entry.get("relation")
            if relation_id is None or event.secret.label != f"database.{relation_id}.user.secret":
                continue
            fields = self.database.fetch_relation_data([relation_id], ["username", "uris"])
            handed = fields.get(relation_id, {})
            entry["credentials"]["username"] = handed.get("username")
            entry["rotations"] = entry.get("rotations", 0) + 1
            self.unit.status = ops.ActiveStatus(
                f"new credentials for {database}; "
                + dbprobe.probe(entry, handed.get("uris"), self.unit.name)
            )
        dbprobe.save_state(self.charm_dir, state)


if __name__ == "__main__":
    ops.main(ConsumerCharm)
