#!/usr/bin/env python3
"""k8s-consumer: a PostgreSQL consumer written the way Kubernetes charms are.

It uses ops-lib-pgsql's PostgreSQLClient unchanged, so the readiness rules the
provider must satisfy (echoed database/roles/extensions, our egress-subnets
inside allowed-subnets) are the real library's, not a re-implementation.

At the end of every hook it writes what the library reported to
`$JUJU_CHARM_DIR/../consumer-state.json` (outside the charm directory, which
an upgrade replaces) for the tests to read. The master connection string
holds a password: it goes to that file (mode 0600) and nowhere else, never to
juju-log, stdout or stderr.
"""

import json
import logging
import os
from pathlib import Path

import ops
import pgsql

logger = logging.getLogger(__name__)

# The library events recorded in the state file's "events", in order.
PGSQL_EVENTS = (
    "database_relation_joined",
    "database_relation_broken",
    "database_available",
    "database_changed",
    "database_gone",
    "master_available",
    "master_changed",
    "master_gone",
    "standby_available",
    "standby_changed",
    "standby_gone",
)


def _csv(text):
    return [item.strip() for item in text.split(",") if item.strip()]


class ConsumerCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # Keyed by relation id as a string; values are connection strings.
        self._stored.set_default(masters={}, standbys={}, events=[])
        self.db = pgsql.PostgreSQLClient(self, "db")
        for name in PGSQL_EVENTS:
            framework.observe(getattr(self.db.on, name), self._on_pgsql_event)
        framework.observe(self.db.on.database_relation_joined, self._on_database_relation_joined)
        framework.observe(self.db.on.master_changed, self._on_master_changed)
        framework.observe(self.db.on.standby_changed, self._on_standby_changed)
        framework.observe(self.db.on.database_relation_broken, self._on_database_relation_broken)
        # `commit` fires once at the end of every dispatch, after all handlers.
        framework.observe(framework.on.commit, self._record)

    def _on_pgsql_event(self, event: pgsql.PostgreSQLRelationEvent):
        name = event.handle.kind
        self._stored.events.append(name)
        logger.info("pgsql event %s on relation %d", name, event.relation.id)

    def _on_database_relation_joined(self, event: pgsql.DatabaseRelationJoinedEvent):
        # Only the leader may configure the relation (the library writes the app bag).
        if not self.unit.is_leader():
            return
        event.database = self.config["database"]
        event.roles = _csv(self.config["roles"])
        event.extensions = _csv(self.config["extensions"])

    def _on_master_changed(self, event: pgsql.MasterChangedEvent):
        master = event.master
        self._stored.masters[str(event.relation.id)] = None if master is None else str(master)

    def _on_standby_changed(self, event: pgsql.StandbyChangedEvent):
        self._stored.standbys[str(event.relation.id)] = [str(s) for s in event.standbys]

    def _on_database_relation_broken(self, event: pgsql.DatabaseRelationBrokenEvent):
        self._stored.masters.pop(str(event.relation.id), None)
        self._stored.standbys.pop(str(event.relation.id), None)

    def _record(self, _event):
        # The lowest relation id with a ready master wins; there is normally one relation.
        masters = self._stored.masters
        master = next((masters[r] for r in sorted(masters, key=int) if masters[r]), None)
        by_relation = self._stored.standbys
        standbys = [s for r in sorted(by_relation, key=int) for s in by_relation[r]]
        state = {
            "master": master,
            "standbys": standbys,
            "ready": master is not None,
            "database": pgsql.ConnectionString(master).dbname if master else None,
            "requested": {
                "database": self.config["database"],
                "roles": _csv(self.config["roles"]),
                "extensions": _csv(self.config["extensions"]),
            },
            "events": list(self._stored.events),
        }
        path = Path(self.charm_dir).parent / "consumer-state.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(state, f, indent=2, sort_keys=True)
        tmp.replace(path)
        if master:
            self.unit.status = ops.ActiveStatus("master ready")
        else:
            self.unit.status = ops.WaitingStatus("waiting for master")


if __name__ == "__main__":
    ops.main(ConsumerCharm)
