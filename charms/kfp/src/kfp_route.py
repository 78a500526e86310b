"""The `istio-ingress-route` relation: the UI and the API behind the login, and MLMD for the UI.

Two routes on the platform's gateway, both behind the login (the mesh
decides by the endpoint; this one needs it):

- `/pipeline` to the UI (Service `ml-pipeline-ui`, port 80), unchanged:
  the UI serves at that base path, and its server proxies
  `/pipeline/apis/v1beta1/...` and `/pipeline/apis/v2beta1/...` to the API
  server. SDK clients reach the API there (`kfp.Client(host=<gateway>/pipeline)`),
  with the login's user header, as the browser does;
- `/ml_metadata.MetadataStoreService` to the envoy in front of MLMD
  (Service `metadata-envoy-service`, port 9090): the UI's gRPC-web client
  calls it at the site's root. Upstream routes the prefix `/ml_metadata` as
  a string; a Gateway API prefix matches whole path segments, so the route
  names the one service the UI calls.

Istio passes back, on the same relation, the header the login puts the
user's id in and the prefix before the id (`user_header`): the UI and the
API server read both, and the mesh's policies require that header.
"""

from __future__ import annotations

from typing import Any

import kfp_workloads as wl
import ops

from kubeflow_interfaces import istio_ingress_route as iir

ROUTE = "istio-ingress-route"
UI_PREFIX = "/pipeline"
UI_SERVICE = "ml-pipeline-ui"
UI_SERVICE_PORT = 80
MLMD_PREFIX = "/ml_metadata.MetadataStoreService"
ENVOY_SERVICE = "metadata-envoy-service"


def _requirer(charm: ops.CharmBase) -> iir.RouteRequirer:
    return iir.RouteRequirer(
        charm, ROUTE, prefix=UI_PREFIX, port=UI_SERVICE_PORT, service=UI_SERVICE
    )


def config(charm: ops.CharmBase) -> dict[str, Any]:
    """The routes this charm asks for, as the relation's `config` in plain data."""
    ui = _requirer(charm)
    wanted = ui.config()
    wanted["http_routes"][0]["name"] = "ui"
    mlmd = iir.route_config(
        model=charm.model.name,
        name="metadata",
        prefix=MLMD_PREFIX,
        port=wl.Ports.ENVOY,
        service=ENVOY_SERVICE,
        tls_enabled=ui.tls_enabled,
    )
    wanted["http_routes"].extend(mlmd["http_routes"])
    return wanted


def publish(charm: ops.CharmBase) -> bool:
    """Leader: write the routes when they say something new. Whether it wrote."""
    return _requirer(charm).publish(config(charm))


def user_header(charm: ops.CharmBase) -> tuple[str, str]:
    """The user-id header (in lower case) and the prefix of its value, as the login sets them.

    The defaults (`kubeflow-userid`, no prefix) until istio says otherwise.
    Raises iir.InvalidRouteDataError when istio's values are not valid, or
    when the header holds a `*`: it goes into the mesh's policies as a key,
    where Istio would not read it as one header.
    """
    header, prefix = _requirer(charm).user_header
    if "*" in header:
        raise iir.InvalidRouteDataError(f"{iir.USER_HEADER_KEY} {header!r} contains *")
    # Header names are case-insensitive; the UI (Node) and the mesh see them in lower case.
    return header.lower(), prefix
