"""A unit test's look at a workload's Pebble service in an output state.

`workload` is any object with `.container` and `.service` (each charm's
workload descriptions have both).
"""

from __future__ import annotations

from typing import Any

from ops import pebble, testing


def running(out: testing.State, workload: Any) -> bool:
    """Whether the workload's service runs in the output state."""
    status = out.get_container(workload.container).service_statuses.get(workload.service)
    return status == pebble.ServiceStatus.ACTIVE


def service(out: testing.State, workload: Any) -> pebble.Service:
    """The workload's service in its container's plan."""
    return out.get_container(workload.container).plan.services[workload.service]
