#!/usr/bin/env python3
"""A test charm: asks for one route over `ingress` and shows its URL."""

from __future__ import annotations

import ops

from kubeflow_interfaces.ingress import IngressRequirer


class RouteProbeCharm(ops.CharmBase):
    """Asks for the route in its config."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        config = self.config
        self._ingress = IngressRequirer(
            self,
            prefix=str(config["prefix"]),
            port=int(config["port"]),  # type: ignore[arg-type]
            auth=bool(config["auth"]),
            service=str(config["service"]) or None,
        )
        for event in (self.on.config_changed, self.on["ingress"].relation_changed):
            framework.observe(event, self._reconcile)
        framework.observe(self.on.collect_unit_status, self._on_collect_status)
        framework.observe(self.on.collect_app_status, self._on_collect_status)

    def _reconcile(self, _: ops.EventBase) -> None:
        self._ingress.publish_request()

    def _on_collect_status(self, event: ops.CollectStatusEvent) -> None:
        url = self._ingress.url
        event.add_status(ops.ActiveStatus(url) if url else ops.WaitingStatus("no route yet"))


if __name__ == "__main__":  # pragma: nocover
    ops.main(RouteProbeCharm)
