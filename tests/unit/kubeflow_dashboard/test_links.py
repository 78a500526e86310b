"""The dashboard's links: from related UIs and config, rendered field by field, in order."""

from __future__ import annotations

import dataclasses

import ops
import pytest
from unit.kubeflow_dashboard.helpers import (
    dashboard_config,
    link,
    peer_data,
    settle,
    state,
    ui,
    with_relations,
)


def test_links_from_relations_and_config_fill_every_section(ctx, kube):
    notebooks = ui(
        "notebooks",
        link("Notebooks", icon="book"),
        link("Notebook docs", "documentation", link="https://nb.example.com", desc="How to"),
    )
    kfp = ui(
        "kfp",
        link("Pipelines", icon="kubeflow:pipeline-centered"),
        link("Upload a pipeline", "quick", link="/pipeline/#/upload", desc="Pipelines"),
    )
    config = {
        "additional-links": (
            "- {text: Grafana, link: 'https://grafana.example.com', location: external,"
            " icon: 'icons:assessment'}\n"
            "- {text: Kubeflow docs, link: 'https://www.kubeflow.org/docs/',"
            " location: documentation, desc: All of it}\n"
        )
    }
    settle(ctx, with_relations(state(config=config), notebooks, kfp))

    links, settings = dashboard_config(kube)
    assert settings == {"DASHBOARD_FORCE_IFRAME": True}
    assert links == {
        "menuLinks": [
            {"type": "item", "link": "/notebooks/", "text": "Notebooks", "icon": "book"},
            {
                "type": "item",
                "link": "/pipelines/",
                "text": "Pipelines",
                "icon": "kubeflow:pipeline-centered",
            },
        ],
        "externalLinks": [
            {
                "type": "item",
                "link": "https://grafana.example.com",
                "text": "Grafana",
                "icon": "icons:assessment",
            }
        ],
        "quickLinks": [
            {"text": "Upload a pipeline", "desc": "Pipelines", "link": "/pipeline/#/upload"}
        ],
        "documentationItems": [
            {
                "text": "Kubeflow docs",
                "desc": "All of it",
                "link": "https://www.kubeflow.org/docs/",
            },
            {"text": "Notebook docs", "desc": "How to", "link": "https://nb.example.com"},
        ],
    }


def test_menu_order_puts_texts_first_and_sorts_the_rest(ctx, kube):
    relation = ui("apps", *(link(t) for t in ("Katib", "Notebooks", "Pipelines", "Volumes")))
    extra = (
        "[{text: About, link: /about/, location: menu}, {text: Zed, link: /z/, location: quick}]"
    )
    config = {"menu-order": "[Pipelines, Zed, Notebooks, Missing]", "additional-links": extra}
    settle(ctx, with_relations(state(config=config), relation))

    links, _ = dashboard_config(kube)
    assert [m["text"] for m in links["menuLinks"]] == [
        "Pipelines",
        "Notebooks",
        "About",
        "Katib",
        "Volumes",
    ]
    assert [q["text"] for q in links["quickLinks"]] == ["Zed"]


def test_order_is_stable_whatever_order_the_relations_come_in(ctx, kube):
    a = ui("a", link("beta"), link("Alpha"))
    b = ui("b", link("gamma"), link("alpha", link="/other/"))
    settle(ctx, with_relations(state(), b, a))
    first, _ = dashboard_config(kube)
    assert [m["text"] for m in first["menuLinks"]] == ["Alpha", "alpha", "beta", "gamma"]
    # The same links, related the other way round, render the same document.
    a2 = ui("a", link("Alpha"), link("beta"))
    b2 = ui("b", link("alpha", link="/other/"), link("gamma"))
    settle(ctx, with_relations(state(), a2, b2))
    assert dashboard_config(kube)[0] == first


def test_the_same_link_twice_is_shown_once(ctx, kube):
    settle(
        ctx,
        with_relations(
            state(
                config={
                    "additional-links": "[{text: Notebooks, link: /notebooks/, location: menu}]"
                }
            ),
            ui("notebooks", link("Notebooks")),
        ),
    )
    links, _ = dashboard_config(kube)
    assert [m["text"] for m in links["menuLinks"]] == ["Notebooks"]


def test_a_new_link_updates_the_configmap(ctx, kube):
    out = settle(ctx, state())
    first = peer_data(out)["manifest-hash"]
    assert dashboard_config(kube)[0]["menuLinks"] == []
    relation = ui("notebooks", link("Notebooks"))
    again = ctx.run(ctx.on.relation_changed(relation), with_relations(out, relation))
    assert [m["text"] for m in dashboard_config(kube)[0]["menuLinks"]] == ["Notebooks"]
    assert peer_data(again)["manifest-hash"] != first


def test_unknown_location_from_a_relation_is_dropped(ctx, kube):
    relation = ui("newer", link("Kept"))
    raw = '[{"text": "Odd", "link": "/odd/", "location": "sidebar"}, ' + (
        '{"text": "Kept", "link": "/kept/", "location": "menu"}]'
    )
    relation = dataclasses.replace(relation, remote_app_data={"dashboard_links": raw})
    out = settle(ctx, with_relations(state(), relation))
    assert [m["text"] for m in dashboard_config(kube)[0]["menuLinks"]] == ["Kept"]
    assert out.unit_status.name == "active"


@pytest.mark.parametrize(
    "raw",
    ["not json", '{"text": "x"}', '[{"text": "x", "location": "menu"}]'],
    ids=["not-json", "not-a-list", "no-link"],
)
def test_unreadable_links_block_naming_the_app_and_leave_the_configmap(ctx, kube, raw):
    good = ui("notebooks", link("Notebooks"))
    out = settle(ctx, with_relations(state(), good))
    before = dashboard_config(kube)
    bad = dataclasses.replace(ui("broken-ui"), remote_app_data={"dashboard_links": raw})
    writes = len(kube.writes)

    again = ctx.run(ctx.on.relation_changed(bad), with_relations(out, bad))

    assert again.app_status.name == "blocked"
    assert "broken-ui" in again.app_status.message
    assert again.unit_status.name == "blocked"
    assert len(kube.writes) == writes
    assert dashboard_config(kube) == before
    # Services keep running.
    assert again.get_container("dashboard").service_statuses["dashboard"] == (
        ops.pebble.ServiceStatus.ACTIVE
    )
