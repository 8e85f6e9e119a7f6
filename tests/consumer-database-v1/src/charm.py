#!/usr/bin/env python3
"""database-consumer-v1: a PostgreSQL consumer on protocol v1 (dpcharmlibs-interfaces).

It uses ResourceRequirerEventHandler from the PyPI package unchanged, with one
RequirerCommonModel per database in the `databases` option, so the wire
format the provider must speak (`version: v1`, a JSON `requests` list, the
provider's `data` echo of the requests) is the real library's.

On each `resource_created` it records what the library hands over and
connects with the URI (dbprobe.py, shared with the v0 fixture); on
`authentication_updated` (a new secret revision) it connects again.
"""

import logging
import warnings

import dbprobe
import ops

# pydantic warns, on every import, about how the library declares its fields.
warnings.filterwarnings("ignore", message=r"The '\w+' attribute with value .* `Field\(\)` function")

from dpcharmlibs.interfaces import (  # noqa: E402
    RequirerCommonModel,
    ResourceCreatedEvent,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)

logger = logging.getLogger(__name__)


def _csv(text):
    return [item.strip() for item in text.split(",") if item.strip()]


class ConsumerCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        roles = self.config["extra-user-roles"] or None
        requests = [
            RequirerCommonModel(resource=database, extra_user_roles=roles)
            for database in _csv(self.config["databases"])
        ]
        self.database = ResourceRequirerEventHandler(
            self, "database", requests, response_model=ResourceProviderModel
        )
        self.framework.observe(self.database.on.resource_created, self._on_resource_created)
        self.framework.observe(
            self.database.on.authentication_updated, self._on_authentication_updated
        )
        for name in ("endpoints_changed", "read_only_endpoints_changed"):
            self.framework.observe(getattr(self.database.on, name), self._on_event)

    def _on_event(self, event):
        state = dbprobe.load_state(self.charm_dir)
        state["events"].append(event.handle.kind)
        dbprobe.save_state(self.charm_dir, state)

    def _record(self, event, kind: str, prefix: str):
        response = event.response
        state = dbprobe.load_state(self.charm_dir)
        state["events"].append(kind)
        entry = state["databases"].setdefault(response.resource, {})
        entry["relation"] = event.relation.id
        entry["request-id"] = response.request_id
        if kind == "authentication_updated":
            entry["rotations"] = entry.get("rotations", 0) + 1
        entry["credentials"] = {
            "database": response.resource,
            "username": response.username,
            "password": bool(response.password),
            "uris": bool(response.uris),
            "read-only-uris": bool(response.read_only_uris),
            "endpoints": response.endpoints,
            "read-only-endpoints": response.read_only_endpoints,
            "version": response.version,
            "tls": response.tls,
            "tls-ca": bool(response.tls_ca),
        }
        logger.info("%s for %s on relation %d", kind, response.resource, event.relation.id)
        word = dbprobe.probe(entry, response.uris, self.unit.name)
        self.unit.status = ops.ActiveStatus(f"{prefix} {response.resource}; {word}")
        dbprobe.save_state(self.charm_dir, state)

    def _on_resource_created(self, event: ResourceCreatedEvent):
        self._record(event, "resource_created", "got credentials for")

    def _on_authentication_updated(self, event):
        self._record(event, "authentication_updated", "new credentials for")


if __name__ == "__main__":
    ops.main(ConsumerCharm)
