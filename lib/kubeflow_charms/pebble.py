"""Pebble helpers: change a container's plan only when it differs from what is wanted."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import ops


def plan_has(plan: ops.pebble.Plan, layer: ops.pebble.Layer | ops.pebble.LayerDict) -> bool:
    """Whether the plan already holds every service and check of `layer` as written.

    Keys the layer leaves out may differ (Pebble fills in defaults), and
    `override` is how a layer merges, not what the plan holds.
    """
    if not isinstance(layer, ops.pebble.Layer):
        layer = ops.pebble.Layer(layer)  # type: ignore[arg-type]
    current = plan.to_dict()
    wanted = layer.to_dict()
    for section in ("services", "checks"):
        have = current.get(section, {})
        for name, spec in wanted.get(section, {}).items():
            if name not in have or not _contains(have[name], spec):
                return False
    return True


def service_layer(
    service: str,
    check: str,
    *,
    command: str,
    runs: bool,
    environment: Mapping[str, str],
    check_spec: Mapping[str, Any],
    working_dir: str = "/",
    user: tuple[int, int] | None = None,
) -> ops.pebble.LayerDict:
    """A layer of one service and its check, both named and replaced as written.

    The service starts with Pebble where it `runs`; elsewhere it and its
    check stay disabled (a service that does not run has nothing to check).
    `user` is the user and group ids it runs as, when not the image's.
    """
    spec: dict[str, Any] = {
        "override": "replace",
        "summary": service,
        "command": command,
        "working-dir": working_dir,
        "startup": "enabled" if runs else "disabled",
        "environment": dict(environment),
    }
    if user is not None:
        spec["user-id"], spec["group-id"] = user
    checks = {check: dict(check_spec)}
    if not runs:
        checks[check]["startup"] = "disabled"
    layer = {"summary": service, "services": {service: spec}, "checks": checks}
    return layer  # type: ignore[return-value]


def service_running(container: ops.Container, name: str) -> bool | None:
    """Whether the service runs; None when the container's Pebble cannot be reached.

    One request answers both, where `can_connect()` and then the service
    would take two.
    """
    try:
        service = container.get_services(name).get(name)
    except (ops.pebble.ConnectionError, FileNotFoundError):
        return None
    return service is not None and service.is_running()


def start_when_changed(
    container: ops.Container,
    service: str,
    layer: ops.pebble.LayerDict,
    *,
    digest: str,
    digests: Callable[[], MutableMapping[str, str]],
    restarted: bool,
    push: Callable[[], None] = lambda: None,
) -> bool | None:
    """Give a service its layer and files and (re)start it, when they changed.

    `digest` covers the layer and the files `push` writes; `digests` gives
    where it is kept per container (a charm's stored state, read only once
    Pebble answers). A running service whose digest
    or plan is as wanted is left alone, unless Pebble `restarted` (its
    files may be gone). Returns whether the service was (re)started; None
    when Pebble cannot be reached (its pebble-ready comes).
    """
    running = service_running(container, service)
    if running is None:
        return None
    kept = digests()
    if running and not restarted:
        if kept.get(container.name) == digest:
            return False
        if plan_has(container.get_plan(), layer):
            kept[container.name] = digest
            return False
    push()
    container.add_layer(service, layer, combine=True)
    if running:
        container.restart(service)  # it reads its files and environment only at start
    else:
        container.replan()
    kept[container.name] = digest
    return True


def keep_stopped(
    container: ops.Container,
    service: str,
    check: str,
    layer: ops.pebble.LayerDict,
    digests: Callable[[], MutableMapping[str, str]],
) -> bool | None:
    """Keep a service and its check stopped, under its disabled `layer`.

    Its digest is dropped from `digests()`, so starting it again gives it its
    layer and files. Returns whether it was running; None when Pebble cannot
    be reached.
    """
    running = service_running(container, service)
    if running is None:
        return None
    if not plan_has(container.get_plan(), layer):
        container.add_layer(service, layer, combine=True)
    if running:
        container.stop(service)
    container.stop_checks(check)
    digests().pop(container.name, None)
    return running


def _contains(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in wanted.items() if k != "override")
