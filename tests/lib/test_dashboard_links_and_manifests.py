"""`kubeflow_dashboard_links` and `kubernetes_manifest`: both sides agree on the wire."""

from __future__ import annotations

import json

import ops
import pytest
from ops import testing

from kubeflow_interfaces import dashboard_links, kubernetes_manifests
from kubeflow_interfaces.dashboard_links import DashboardLink, InvalidLinksError
from kubeflow_interfaces.kubernetes_manifests import InvalidManifestsError

LINK = DashboardLink(text="Notebooks", link="/jupyter/", location="menu", icon="book")
SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "s3"},
    "stringData": {"k": "v"},
}


class Ui(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._go)

    def _go(self, _):
        dashboard_links.DashboardLinksRequirer(self, [LINK]).publish()
        kubernetes_manifests.ManifestsRequirer(self, "secrets").publish([SECRET])


class Hub(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._go)

    def _go(self, _):
        try:
            links = dashboard_links.DashboardLinksProvider(self).links()
            provider = kubernetes_manifests.ManifestsProvider(self, "secrets")
            objects = [m for r in provider.relations for m in provider.manifests(r)]
        except (InvalidLinksError, InvalidManifestsError) as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        texts = [link.text for app_links in links.values() for link in app_links]
        names = [f"{m.app}:{m.kind}/{m.name}" for m in objects]
        self.unit.status = ops.ActiveStatus(" ".join(texts + names))


UI_META = {
    "name": "ui",
    "requires": {
        "dashboard-links": {"interface": "kubeflow_dashboard_links"},
        "secrets": {"interface": "kubernetes_manifest"},
    },
}
HUB_META = {
    "name": "hub",
    "provides": {
        "links": {"interface": "kubeflow_dashboard_links"},
        "secrets": {"interface": "kubernetes_manifest"},
    },
}


def test_links_and_manifests_round_trip():
    ui = testing.Context(Ui, meta=UI_META)
    links_rel = testing.Relation("dashboard-links", remote_app_name="hub")
    secrets_rel = kubernetes_manifests.relation_for_requirer(remote_app_name="hub")
    out = ui.run(
        ui.on.config_changed(), testing.State(leader=True, relations=[links_rel, secrets_rel])
    )
    links_data = dict(out.get_relation(links_rel.id).local_app_data)
    secrets_data = dict(out.get_relation(secrets_rel.id).local_app_data)
    (secret,) = out.secrets
    # Only the secret's id and the flag saying it is one: the objects travel in the secret.
    assert secrets_data == {"kubernetes_manifests": secret.id, "is_secret": "true"}
    assert "stringData" not in json.dumps(secrets_data)
    assert secret.remote_grants == {secrets_rel.id: {"hub"}}
    assert json.loads(secret.tracked_content["manifests"]) == [SECRET]

    hub = testing.Context(Hub, meta=HUB_META)
    state = testing.State(
        relations=[
            testing.Relation("links", remote_app_name="ui", remote_app_data=links_data),
            testing.Relation("secrets", remote_app_name="ui", remote_app_data=secrets_data),
        ],
        secrets=[testing.Secret(tracked_content=secret.tracked_content, id=secret.id)],
    )
    out = hub.run(hub.on.update_status(), state)
    assert out.unit_status == testing.ActiveStatus("Notebooks ui:Secret/s3")

    # Publishing again over the published state writes nothing new.
    first = ui.run(
        ui.on.config_changed(), testing.State(leader=True, relations=[links_rel, secrets_rel])
    )
    again = ui.run(ui.on.config_changed(), first)
    assert [s.latest_content for s in again.secrets] == [s.latest_content for s in first.secrets]
    assert (
        again.get_relation(secrets_rel.id).local_app_data
        == first.get_relation(secrets_rel.id).local_app_data
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nope", "not JSON"),
        ('{"a": 1}', "not a list"),
        ('[{"text": "x", "location": "menu"}]', "does not parse"),
    ],
)
def test_bad_links_are_refused(raw, message):
    with pytest.raises(InvalidLinksError, match=message):
        dashboard_links.parse(raw, "ui")


def test_unknown_location_is_dropped():
    raw = json.dumps([{"text": "x", "link": "/x", "location": "sidebar-v9"}, LINK.model_dump()])
    assert dashboard_links.parse(raw) == [LINK]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Secret", "not JSON"),
        ('{"kind": "Secret"}', "not a list"),
        ('[{"kind": "Secret", "metadata": {"name": "s"}}]', "apiVersion and kind"),
        ('[{"apiVersion": "v1", "kind": "Secret"}]', "valid name"),
        (
            '[{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "Bad_Name"}}]',
            "valid name",
        ),
        (
            json.dumps([{**SECRET, "metadata": {"name": "s", "namespace": "A"}}]),
            "invalid namespace",
        ),
    ],
)
def test_bad_manifests_are_refused(text, message):
    with pytest.raises(InvalidManifestsError, match=message):
        kubernetes_manifests.parse(text, "app")


def test_pinned_and_unpinned_objects_parse():
    pinned = {**SECRET, "metadata": {"name": "s3", "namespace": "team-a"}}
    blank = {**SECRET, "metadata": {"name": "s3", "namespace": ""}}
    parsed = kubernetes_manifests.parse(json.dumps([SECRET, pinned, blank]), "app")
    assert [m.namespace for m in parsed] == [None, "team-a", None]


def test_clear_manifests_are_read():
    hub = testing.Context(Hub, meta=HUB_META)
    rel = kubernetes_manifests.relation_in_clear_for_provider([SECRET], remote_app_name="kfp")
    out = hub.run(hub.on.update_status(), testing.State(relations=[rel]))
    assert out.unit_status == testing.ActiveStatus("kfp:Secret/s3")


def test_a_secret_flag_without_a_secret_is_refused():
    hub = testing.Context(Hub, meta=HUB_META)
    rel = testing.Relation("secrets", remote_app_name="kfp", remote_app_data={"is_secret": "true"})
    out = hub.run(hub.on.update_status(), testing.State(relations=[rel]))
    assert out.unit_status == testing.BlockedStatus(
        "kfp says its manifests are in a secret but names none"
    )


def test_helper_relation_parses():
    rel, secret = kubernetes_manifests.relation_for_provider([SECRET])
    hub = testing.Context(Hub, meta=HUB_META)
    out = hub.run(hub.on.update_status(), testing.State(relations=[rel], secrets=[secret]))
    assert out.unit_status == testing.ActiveStatus("minio:Secret/s3")
    # An empty databag (a requirer that has sent nothing yet) is no objects, not an error.
    empty = testing.Relation("secrets", remote_app_name="kfp")
    out = hub.run(hub.on.update_status(), testing.State(relations=[empty]))
    assert out.unit_status == testing.ActiveStatus("")
    rel2 = dashboard_links.relation_for_provider([LINK])
    out = hub.run(hub.on.update_status(), testing.State(relations=[rel2]))
    assert out.unit_status == testing.ActiveStatus("Notebooks")
