"""The `istio-ingress-route` relation: the UI at `/katib/`, behind the login.

Upstream's VirtualService (kubeflow/manifests v1.10.0, apps/katib/upstream/
installs/katib-with-kubeflow/ui-virtual-service.yaml) sends the prefix
`/katib/` unchanged to Service `katib-ui` port 80: the UI serves under that
path itself. Istio passes back, on the same relation, the header the login
puts the user's id in and the prefix before the id: the UI reads both
(its USERID_HEADER and USERID_PREFIX).
"""

from __future__ import annotations

from typing import Any

import katib_workloads as wl
import ops

from kubeflow_interfaces import istio_ingress_route as iir

ROUTE = "istio-ingress-route"
UI_PREFIX = "/katib"
UI_SERVICE_PORT = 80


def _requirer(charm: ops.CharmBase) -> iir.RouteRequirer:
    return iir.RouteRequirer(
        charm, ROUTE, prefix=UI_PREFIX, port=UI_SERVICE_PORT, service=wl.UI_SERVICE
    )


def config(charm: ops.CharmBase) -> dict[str, Any]:
    """The route this charm asks for, as the relation's `config` in plain data."""
    wanted = _requirer(charm).config()
    wanted["http_routes"][0]["name"] = "ui"
    return wanted


def publish(charm: ops.CharmBase) -> bool:
    """Leader: write the route when it says something new. Whether it wrote."""
    return _requirer(charm).publish(config(charm))


def user_header(charm: ops.CharmBase) -> tuple[str, str]:
    """The user-id header and the prefix of its value, as the login sets them.

    The defaults (`kubeflow-userid`, no prefix) until istio says otherwise.
    Raises iir.InvalidRouteDataError when istio's values are not valid.
    """
    return _requirer(charm).user_header
