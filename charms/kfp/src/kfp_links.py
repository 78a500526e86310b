"""The `dashboard-links` relation: the Pipelines entries of the central dashboard.

The pages and their texts are those Kubeflow's dashboard lists for
Pipelines (its menu section, its quick links and its documentation link);
the dashboard's links are flat, so each menu page is an entry of its own.
"""

from __future__ import annotations

import ops

from kubeflow_interfaces.dashboard_links import DashboardLink, DashboardLinksRequirer

DASHBOARD_LINKS = "dashboard-links"
ICON = "kubeflow:pipeline-centered"
DOCS = "https://www.kubeflow.org/docs/components/pipelines/"

MENU = (
    ("Pipelines", "/pipeline/#/pipelines"),
    ("Experiments", "/pipeline/#/experiments"),
    ("Runs", "/pipeline/#/runs"),
    ("Recurring Runs", "/pipeline/#/recurringruns"),
    ("Artifacts", "/pipeline/#/artifacts"),
    ("Executions", "/pipeline/#/executions"),
)
LINKS = [
    *(DashboardLink(text=text, link=link, location="menu", icon=ICON) for text, link in MENU),
    DashboardLink(
        text="Upload a Pipeline",
        link="/pipeline/#/pipelines",
        location="quick",
        desc="Kubeflow Pipelines",
    ),
    DashboardLink(
        text="View Pipeline Runs", link="/pipeline/#/runs", location="quick", desc="Pipelines"
    ),
    DashboardLink(
        text="Kubeflow Pipelines Documentation",
        link=DOCS,
        location="documentation",
        desc="Documentation for Kubeflow Pipelines",
    ),
]


def publish(charm: ops.CharmBase) -> bool:
    """Leader: write the links on every relation where they changed. Whether it wrote."""
    return DashboardLinksRequirer(charm, LINKS, DASHBOARD_LINKS).publish()
