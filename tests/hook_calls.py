"""Record what an ops.testing hook asks of Juju (hook tools) and of Pebble.

Under Juju each hook-tool call starts a process, so a settled hook should
make few. ops.testing answers the calls from a fake backend; `record()` wraps
its methods, each named as the hook tool ops runs for it, and the Pebble
requests of `ops.Container`, and returns the lists they fill.

`is-leader` is left out: ops' own backend keeps the answer for the hook
(and longer), where the fake one is asked each time. `juju-log` calls go to
a list of their own, `log` (level and message), without the DEBUG ones ops
makes on every hook: under ops.testing the harness and code that finds no
Kubernetes pod log warnings a real settled hook does not.
"""

from __future__ import annotations

import functools
from typing import Any

import ops
from scenario.mocking import _MockModelBackend

# The fake backend's methods, and the hook tool each stands for.
HOOK_TOOLS = {
    "relation_ids": "relation-ids",
    "relation_list": "relation-list",
    "relation_get": "relation-get",
    "relation_set": "relation-set",
    "config_get": "config-get",
    "status_get": "status-get",
    "status_set": "status-set",
    "storage_list": "storage-list",
    "storage_get": "storage-get",
    "planned_units": "goal-state",
    "opened_ports": "opened-ports",
    "open_port": "open-port",
    "close_port": "close-port",
    "network_get": "network-get",
    "application_version_set": "application-version-set",
    "secret_get": "secret-get",
    "secret_info_get": "secret-info-get",
    "secret_add": "secret-add",
    "secret_set": "secret-set",
    "secret_grant": "secret-grant",
    "secret_revoke": "secret-revoke",
    "secret_remove": "secret-remove",
}
PEBBLE_ASKS = ("can_connect", "get_services", "get_plan", "get_checks", "pull", "exists")


def record() -> dict[str, list[str]]:
    """Start recording; `tools` fills with hook-tool names, `pebble` with Container requests."""
    calls: dict[str, list[str]] = {"tools": [], "pebble": [], "log": []}

    def wrap(cls: type, method: str, name: str, key: str) -> None:
        original = getattr(cls, method)

        @functools.wraps(original)
        def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[key].append(name)
            return original(self, *args, **kwargs)

        setattr(cls, method, recorded)

    for method, tool in HOOK_TOOLS.items():
        wrap(_MockModelBackend, method, tool, "tools")
    for method in PEBBLE_ASKS:
        wrap(ops.Container, method, method, "pebble")
    juju_log = _MockModelBackend.juju_log

    def log(self: Any, level: str, message: str) -> None:
        if level.upper() != "DEBUG":
            calls["log"].append(f"{level.upper()}: {message}")
        juju_log(self, level, message)

    _MockModelBackend.juju_log = log  # type: ignore[method-assign]
    return calls
