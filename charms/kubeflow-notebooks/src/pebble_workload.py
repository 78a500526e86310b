"""One long-running process in its own container, under Pebble, with a ready check."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import ops

from kubeflow_charms.pebble import plan_has, service_running


@dataclasses.dataclass(frozen=True)
class File:
    """A file the process reads at start."""

    path: str
    content: str


def files_hash(files: Sequence[File]) -> str:
    """A short hash of the files' paths and contents (part of the layer: a change restarts)."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\0{f.content}\0".encode())
    return digest.hexdigest()[:16]


class PebbleWorkload:
    """A service and its ready check in one container."""

    def __init__(self, container: ops.Container, service: str, check: str):
        self.container = container
        self.service = service
        self.check = check
        # Set when `configure` found the service running with its plan as wanted:
        # this hook's status reads that answer instead of asking Pebble again.
        self._settled = False

    def configure(self, layer: ops.pebble.LayerDict, files: Sequence[File] = ()) -> bool:
        """Write the files and (re)start the service when the plan differs; whether it did.

        With the plan as wanted and the service running, nothing is written; a
        container whose Pebble cannot be reached is left as it is.
        """
        self._settled = False
        running = self.running()
        if running and plan_has(self.container.get_plan(), layer):
            self._settled = True
            return False
        if running is None:
            return False
        for f in files:
            self.container.push(f.path, f.content, make_dirs=True)
        self.container.add_layer(self.service, layer, combine=True)
        if running:
            self.container.restart(self.service)  # it reads its files only at start
        else:
            self.container.replan()
        return True

    def running(self) -> bool | None:
        """Whether the service runs; None when the container's Pebble cannot be reached.

        Once `configure` found it running as wanted, that answer stands for the
        rest of the hook.
        """
        if self._settled:
            return True
        return service_running(self.container, self.service)

    def check_is_up(self) -> bool:
        """Whether the ready check is up (ask once the service runs)."""
        check = self.container.get_checks(self.check).get(self.check)
        return check is not None and check.status == ops.pebble.CheckStatus.UP
