"""The `istio-ingress-route` and `dashboard-links` relations: MLflow at `/mlflow/`.

MLflow serves its UI at `/` and its REST API at `/api/2.0` whatever
`--static-prefix` says (mlflow 2.22.0 wheel: mlflow/server/handlers.py,
mlflow/server/__init__.py), and the UI asks for its data by paths relative
to the page. So the gateway sends `/mlflow/...` to the server with the
prefix rewritten to `/` (as Canonical's mlflow charm does,
canonical/mlflow-operator track/2.22 src/charm.py), and the server runs with
no prefix: the UI works at `/mlflow/`, and a client outside the cluster may
use `https://<host>/mlflow` as its tracking URI (with the login's token).
"""

from __future__ import annotations

import mlflow_workload as wl
import ops

from kubeflow_interfaces import istio_ingress_route as iir
from kubeflow_interfaces.dashboard_links import DashboardLink, DashboardLinksRequirer

ROUTE = "istio-ingress-route"
DASHBOARD_LINKS = "dashboard-links"
PREFIX = "/mlflow"
REWRITE = "/"  # the server runs without --static-prefix
LINKS = [
    DashboardLink(text="MLflow", link=f"{PREFIX}/", location="menu", icon="icons:assessment"),
    DashboardLink(
        text="MLflow Documentation",
        link="https://mlflow.org/docs/2.22.0/",
        location="documentation",
        desc="Track experiments and register models with MLflow",
    ),
]


def requirer(charm: ops.CharmBase) -> iir.RouteRequirer:
    """The route: `/mlflow` on the gateway to the app's Service, rewritten to `/`."""
    return iir.RouteRequirer(charm, ROUTE, prefix=PREFIX, rewrite=REWRITE, port=wl.PORT)


def publish(charm: ops.CharmBase) -> None:
    """Leader: write the route and the links where they changed."""
    requirer(charm).publish()
    DashboardLinksRequirer(charm, LINKS, DASHBOARD_LINKS).publish()
