"""The dashboard's menu in the simulated model follows the UIs related to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bundle.simulator import Model

DASHBOARD_LINKS = ("kubeflow-dashboard:links", "kubeflow-notebooks:dashboard-links")


@pytest.fixture
def model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle for the test alone: it removes a relation."""
    return settled_models.own(tmp_path)


def _menu(model: Model) -> dict[str, Any]:
    """The `links` document of the dashboard's ConfigMap: what the dashboard serves."""
    cm = model.workloads.kubernetes.get("ConfigMap", "kubeflow-dashboard-config", "kubeflow")
    assert cm is not None
    return json.loads(cm["data"]["links"])


def _links_to_jupyter(menu: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for entries in menu.values() for e in entries if e["link"].startswith("/jupyter/")]


def test_removing_the_links_relation_takes_the_notebooks_link_out_of_the_menu(model: Model):
    assert [e["text"] for e in _links_to_jupyter(_menu(model))] == ["Notebooks"]
    writes = len(model.workloads.kubernetes.writes)

    model.remove_relation(*DASHBOARD_LINKS)

    assert _links_to_jupyter(_menu(model)) == []
    # The relation is gone from the model, and the menu was applied again, once.
    assert not any(
        {f"{a}:{e}" for a, e in zip(r.apps, r.endpoints, strict=True)} == set(DASHBOARD_LINKS)
        for r in model.relations.values()
    )
    applied = model.workloads.kubernetes.writes[writes:]
    assert [w for w in applied if w[1] == "ConfigMap"] == [
        ("apply", "ConfigMap", "kubeflow-dashboard-config")
    ]
    # Neither side minds: notebooks still serves its UI, the dashboard its menu.
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.name}: {status.message}"
    for app, status in model.app_statuses.items():
        assert status.name == "active", f"{app}: {status.name}: {status.message}"
    # And the model is settled again: a routine round of hooks changes nothing.
    assert model.update_status_everywhere() == []
    assert model.workloads.kubernetes.rejected == []
