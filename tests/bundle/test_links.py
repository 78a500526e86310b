"""The dashboard's menu in the simulated model follows the UIs related to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bundle.simulator import Model

# Each UI's links relation, where its pages are, and its menu entries.
UIS = [
    pytest.param(
        ("kubeflow-dashboard:links", "kubeflow-notebooks:dashboard-links"),
        "/jupyter/",
        ["Notebooks"],
        id="notebooks",
    ),
    pytest.param(
        ("kubeflow-dashboard:links", "kfp:dashboard-links"),
        "/pipeline/",
        ["Pipelines", "Experiments", "Runs", "Recurring Runs", "Artifacts", "Executions"],
        id="kfp",
    ),
]


@pytest.fixture
def model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle for the test alone: it removes a relation."""
    return settled_models.own(tmp_path)


def _menu(model: Model) -> dict[str, Any]:
    """The `links` document of the dashboard's ConfigMap: what the dashboard serves."""
    cm = model.workloads.kubernetes.get("ConfigMap", "kubeflow-dashboard-config", "kubeflow")
    assert cm is not None
    return json.loads(cm["data"]["links"])


def _menu_links_to(menu: dict[str, Any], prefix: str) -> list[str]:
    """The texts of the menu entries that lead under `prefix`."""
    return [e["text"] for e in menu["menuLinks"] if e["link"].startswith(prefix)]


def _links_to(menu: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [e for entries in menu.values() for e in entries if e["link"].startswith(prefix)]


@pytest.mark.parametrize(("relation", "prefix", "texts"), UIS)
def test_removing_the_links_relation_takes_the_uis_links_out_of_the_menu(
    model: Model, relation, prefix, texts
):
    assert sorted(_menu_links_to(_menu(model), prefix)) == sorted(texts)
    writes = len(model.workloads.kubernetes.writes)

    model.remove_relation(*relation)

    assert _links_to(_menu(model), prefix) == []
    # The relation is gone from the model, and the menu was applied again, once.
    assert not any(
        {f"{a}:{e}" for a, e in zip(r.apps, r.endpoints, strict=True)} == set(relation)
        for r in model.relations.values()
    )
    applied = model.workloads.kubernetes.writes[writes:]
    assert [w for w in applied if w[1] == "ConfigMap"] == [
        ("apply", "ConfigMap", "kubeflow-dashboard-config")
    ]
    # Neither side minds: the UI is still served, the dashboard its menu.
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.name}: {status.message}"
    for app, status in model.app_statuses.items():
        assert status.name == "active", f"{app}: {status.name}: {status.message}"
    # And the model is settled again: a routine round of hooks changes nothing.
    assert model.update_status_everywhere() == []
    assert model.workloads.kubernetes.rejected == []


def test_the_menu_has_the_pipelines_quick_links_and_documentation(settled_models):
    menu = _menu(settled_models.settled())
    quick = {e["text"]: e["link"] for e in menu["quickLinks"]}
    assert quick["Upload a Pipeline"] == "/pipeline/#/pipelines"
    assert quick["View Pipeline Runs"] == "/pipeline/#/runs"
    docs = [e["text"] for e in menu["documentationItems"]]
    assert "Kubeflow Pipelines Documentation" in docs
