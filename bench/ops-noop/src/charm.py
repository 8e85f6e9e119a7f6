#!/usr/bin/env python3
"""The benchmark's baseline: the smallest useful ops charm."""

import ops


class NoopCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._ready)
        framework.observe(self.on.config_changed, self._ready)

    def _ready(self, _event: ops.EventBase):
        self.unit.status = ops.ActiveStatus("ready")


if __name__ == "__main__":
    ops.main(NoopCharm)
