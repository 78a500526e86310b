#!/usr/bin/env python3
"""A test charm: asks for one route over `istio-ingress-route` and shows its URL."""

from __future__ import annotations

import ops

from kubeflow_interfaces.istio_ingress_route import (
    ENDPOINT,
    InvalidRouteDataError,
    RouteRequirer,
)


class RouteProbeCharm(ops.CharmBase):
    """Asks for the route in its config.

    Whether the route needs a login is the mesh's endpoint it is related to.
    """

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        config = self.config
        self._problem: str | None = None
        self._route: RouteRequirer | None = None
        try:
            self._route = RouteRequirer(
                self,
                prefix=str(config["prefix"]),
                port=int(config["port"]),  # type: ignore[arg-type]
                service=str(config["service"]) or None,
            )
        except ValueError as e:
            self._problem = f"invalid config: {e}"
        for event in (
            self.on.config_changed,
            self.on[ENDPOINT].relation_created,
            self.on[ENDPOINT].relation_changed,
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    def _reconcile(self, _: ops.EventBase) -> None:
        if self._route is not None:
            self._route.publish()

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        if self._route is None:
            event.add_status(ops.BlockedStatus(self._problem or "invalid config"))
            return
        try:
            url = self._route.url
        except InvalidRouteDataError as e:
            event.add_status(ops.BlockedStatus(f"{ENDPOINT}: {e}"))
            return
        event.add_status(ops.ActiveStatus(url) if url else ops.WaitingStatus("no route yet"))


if __name__ == "__main__":  # pragma: nocover
    ops.main(RouteProbeCharm)
