"""The `dashboard-links` relation: Katib's entries of the central dashboard.

The texts, icon and links are those Kubeflow 1.10.0's dashboard lists for
Katib (kubeflow/manifests v1.10.0,
apps/centraldashboard/upstream/base/configmap.yaml: the menu item and the
documentation link).
"""

from __future__ import annotations

import ops

from kubeflow_interfaces.dashboard_links import DashboardLink, DashboardLinksRequirer

DASHBOARD_LINKS = "dashboard-links"
LINKS = [
    DashboardLink(
        text="Katib Experiments", link="/katib/", location="menu", icon="kubeflow:katib"
    ),
    DashboardLink(
        text="Katib Documentation",
        link="https://www.kubeflow.org/docs/components/katib/",
        location="documentation",
        desc="Documentation for Katib",
    ),
]


def publish(charm: ops.CharmBase) -> bool:
    """Leader: write the links on every relation where they changed. Whether it wrote."""
    return DashboardLinksRequirer(charm, LINKS, DASHBOARD_LINKS).publish()
