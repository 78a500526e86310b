"""A removed UI's links leave the dashboard's menu; the other apps' links stay.

When a `links` relation is removed, Juju runs relation-departed, then
relation-broken (in which ops leaves the broken relation out of
`Model.relations`), then forgets the relation. The dashboard's menu is the
`links` document of its ConfigMap, which the leader renders from every
related UI's links and `additional-links`.
"""

from __future__ import annotations

import dataclasses

import httpx
import ops
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    APP,
    CHARM,
    containers,
    dashboard_config,
    link,
    settle,
    state,
    ui,
    with_relations,
)
from unit.kubeflow_notebooks import helpers as notebooks


def _two_uis() -> tuple[testing.Relation, testing.Relation]:
    nb = ui(
        "kubeflow-notebooks",
        link("Notebooks", link="/jupyter/", icon="book"),
        link("Notebook docs", "documentation", link="https://nb.example.com", desc="How to"),
    )
    kfp = ui("kfp-ui", link("Pipelines", link="/pipeline/"))
    return nb, kfp


def _texts(kube) -> dict[str, list[str]]:
    links, _ = dashboard_config(kube)
    return {section: [entry["text"] for entry in entries] for section, entries in links.items()}


def _without(out: testing.State, relation: testing.Relation) -> testing.State:
    """The state once Juju has forgotten `relation`."""
    return dataclasses.replace(out, relations={r for r in out.relations if r.id != relation.id})


def _removed(ctx, out: testing.State, relation: testing.Relation) -> testing.State:
    """relation-departed for the remote unit, then relation-broken, as Juju runs them."""
    current = out.get_relation(relation.id)
    departed = ctx.run(ctx.on.relation_departed(current, remote_unit=0, departing_unit=0), out)
    return ctx.run(ctx.on.relation_broken(departed.get_relation(relation.id)), departed)


def test_a_removed_apps_links_leave_the_menu_and_the_others_stay(ctx, kube):
    config = {
        "additional-links": "[{text: Grafana, link: 'https://g.example.com', location: external}]"
    }
    nb, kfp = _two_uis()
    out = settle(ctx, with_relations(state(config=config), nb, kfp))
    assert _texts(kube) == {
        "menuLinks": ["Notebooks", "Pipelines"],
        "externalLinks": ["Grafana"],
        "quickLinks": [],
        "documentationItems": ["Notebook docs"],
    }

    broken = _removed(ctx, out, nb)

    assert _texts(kube) == {
        "menuLinks": ["Pipelines"],
        "externalLinks": ["Grafana"],
        "quickLinks": [],
        "documentationItems": [],
    }
    assert broken.unit_status == ops.ActiveStatus("no route: serving on port 8082")
    assert broken.app_status == broken.unit_status
    # Once the relation is gone, the model is settled: the next hook writes nothing.
    writes = len(kube.writes)
    after = ctx.run(ctx.on.update_status(), _without(broken, nb))
    assert len(kube.writes) == writes
    assert after.unit_status.name == "active"
    assert _texts(kube)["menuLinks"] == ["Pipelines"]


def test_the_last_apps_links_go_too(ctx, kube):
    nb, _ = _two_uis()
    out = settle(ctx, with_relations(state(), nb))
    assert _texts(kube)["menuLinks"] == ["Notebooks"]

    _removed(ctx, out, nb)

    assert _texts(kube) == {
        "menuLinks": [],
        "externalLinks": [],
        "quickLinks": [],
        "documentationItems": [],
    }


def test_links_go_while_the_dashboards_containers_are_unreachable(ctx, kube):
    nb, kfp = _two_uis()
    out = settle(ctx, with_relations(state(), nb, kfp))
    # The pod is restarting: Pebble does not answer in any container.
    down = dataclasses.replace(out, containers=containers(can_connect=False))

    broken = _removed(ctx, down, nb)

    # The menu is a cluster object, not a file in a container: it follows at once.
    assert _texts(kube)["menuLinks"] == ["Pipelines"]
    assert _texts(kube)["documentationItems"] == []
    assert broken.unit_status.name == "waiting"
    # The pod comes back: the next hook serves what is there and writes nothing more.
    writes = len(kube.writes)
    back = settle(ctx, dataclasses.replace(_without(broken, nb), containers=out.containers))
    assert back.unit_status.name == "active"
    assert _texts(kube)["menuLinks"] == ["Pipelines"]
    assert [w for w in kube.writes[writes:] if w[1] == "ConfigMap"] == []


def test_links_go_on_the_next_hook_when_the_api_was_unreachable(ctx, kube, monkeypatch):
    nb, kfp = _two_uis()
    out = settle(ctx, with_relations(state(), nb, kfp))
    handle = kube.handle

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(kube, "handle", unreachable)
    broken = _removed(ctx, out, nb)
    monkeypatch.setattr(kube, "handle", handle)

    assert _texts(kube)["menuLinks"] == ["Notebooks", "Pipelines"]  # not applied yet
    # Waiting: the next hook retries (kubeflow_charms.kubernetes.error_status).
    assert broken.unit_status.name == "waiting"
    assert "unreachable" in broken.unit_status.message

    # The relation is gone by the next hook, a routine update-status: it applies then.
    after = ctx.run(ctx.on.update_status(), _without(broken, nb))

    assert _texts(kube)["menuLinks"] == ["Pipelines"]
    assert _texts(kube)["documentationItems"] == []
    assert after.unit_status.name == "active"


def test_a_non_leader_writes_nothing_and_the_next_leader_drops_the_links(ctx, kube):
    nb, kfp = _two_uis()
    out = settle(ctx, with_relations(state(), nb, kfp))
    writes = len(kube.writes)

    follower = _removed(ctx, dataclasses.replace(out, leader=False), nb)

    assert len(kube.writes) == writes
    assert _texts(kube)["menuLinks"] == ["Notebooks", "Pipelines"]
    # This unit is elected: it renders the menu from the relations there are now.
    ctx.run(ctx.on.leader_elected(), dataclasses.replace(_without(follower, nb), leader=True))
    assert _texts(kube)["menuLinks"] == ["Pipelines"]


def test_a_leader_scaled_away_leaves_the_menu_as_it_is(kube):
    # On Kubernetes the highest-numbered unit goes; Juju runs relation-departed and
    # relation-broken on it for every relation it was in, and it still holds the lease.
    ctx = testing.Context(CHARM.KubeflowDashboardCharm, app_name=APP, unit_id=1)
    nb, kfp = _two_uis()
    out = settle(ctx, with_relations(state(planned_units=2), nb, kfp))
    writes = len(kube.writes)
    leaving = dataclasses.replace(out, planned_units=1)

    for relation in (nb, kfp):
        current = leaving.get_relation(relation.id)
        ctx.run(ctx.on.relation_departed(current, remote_unit=0, departing_unit=1), leaving)
        ctx.run(ctx.on.relation_broken(current), leaving)

    assert len(kube.writes) == writes
    assert _texts(kube)["menuLinks"] == ["Notebooks", "Pipelines"]


def test_the_notebooks_side_of_a_removed_links_relation_writes_nothing(kube):
    ctx = testing.Context(notebooks.CHARM.NotebooksCharm)
    links = notebooks.links_relation()
    base = notebooks.state(
        relations={
            testing.PeerRelation(notebooks.PEERS),
            notebooks.route_relation(),
            links,
        }
    )
    out = notebooks.settle(ctx, base)
    published = out.get_relation(links.id).local_app_data["dashboard_links"]
    writes = len(kube.writes)

    broken = _removed(ctx, out, links)

    assert len(kube.writes) == writes
    # Nothing is written to the dying relation, nor to any other.
    assert broken.get_relation(links.id).local_app_data == {"dashboard_links": published}
    assert broken.relations == out.relations
    assert broken.containers == out.containers
    assert broken.unit_status.name == "active"
    assert broken.app_status.name == "active"
    # And with the relation gone, a routine hook does not miss it.
    after = ctx.run(ctx.on.update_status(), _without(broken, links))
    assert len(kube.writes) == writes
    assert after.unit_status.name == "active"
