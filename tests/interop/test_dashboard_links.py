"""`kubeflow_dashboard_links` in Canonical's wire format, both ways, against our real charms.

The format, as Canonical's library writes it (canonical/mlflow-operator @ 17cfd547,
lib/charms/kubeflow_dashboard/v0/kubeflow_dashboard_links.py, LIBPATCH 3): the
requirer's application databag key `dashboard_links` holds
`json.dumps([dataclasses.asdict(link), ...])` of links with the fields `text`,
`link`, `location`, `icon` (default `icons:link`), `type` (default `item`) and
`desc` (default ""). The registry's schema (canonical/charm-relation-interfaces @
4cf84d19, interfaces/kubeflow_dashboard_links/v0/schema.py) names the same
fields and the locations `menu`, `external`, `quick` and `documentation`.
The library is fetched by charmcraft, not packaged, so the data is written
here from those facts.
"""

from __future__ import annotations

import dataclasses
import json

from ops import testing
from unit.kubeflow_dashboard.helpers import APP, CHARM, dashboard_config, settle, state
from unit.kubeflow_dashboard.helpers import with_relations as with_dashboard_relations

FIELDS = ("text", "link", "location", "icon", "type", "desc")
LOCATIONS = ("menu", "external", "quick", "documentation")


def _as_canonicals_library_writes(*links: dict[str, str]) -> dict[str, str]:
    full = [{"icon": "icons:link", "type": "item", "desc": "", **link} for link in links]
    return {"dashboard_links": json.dumps([{f: link[f] for f in FIELDS} for link in full])}


def test_links_written_by_canonicals_library_reach_our_dashboard(kube):
    mlflow = testing.Relation(
        "links",
        interface="kubeflow_dashboard_links",
        remote_app_name="mlflow-server",
        remote_app_data=_as_canonicals_library_writes(
            {"text": "MLflow", "link": "/mlflow/", "location": "menu", "icon": "book"},
            {
                "text": "MLflow docs",
                "link": "https://mlflow.org/docs/latest/index.html",
                "location": "documentation",
                "desc": "MLflow documentation",
            },
        ),
    )
    ctx = testing.Context(CHARM.KubeflowDashboardCharm, app_name=APP)
    settle(ctx, with_dashboard_relations(state(), mlflow))
    links, _ = dashboard_config(kube)
    assert links["menuLinks"] == [
        {"type": "item", "link": "/mlflow/", "text": "MLflow", "icon": "book"}
    ]
    assert links["documentationItems"] == [
        {
            "text": "MLflow docs",
            "desc": "MLflow documentation",
            "link": "https://mlflow.org/docs/latest/index.html",
        }
    ]


def test_our_notebooks_links_read_as_canonicals_dashboard_reads_them(kube):
    from unit.kubeflow_notebooks import helpers as notebooks

    relation = testing.Relation(
        "dashboard-links", interface="kubeflow_dashboard_links", remote_app_name="dashboard"
    )
    ctx = testing.Context(notebooks.CHARM.NotebooksCharm)
    base = notebooks.state()
    base = dataclasses.replace(base, relations={*base.relations, relation})
    out = notebooks.settle(ctx, base)
    raw = out.get_relation(relation.id).local_app_data["dashboard_links"]
    # Canonical's dashboard builds DashboardLink(**item) from each entry: only these fields.
    items = json.loads(raw)
    assert items, "no links written"
    for item in items:
        assert set(item) == set(FIELDS), item
        assert all(isinstance(item[f], str) for f in FIELDS)
        assert item["location"] in LOCATIONS
