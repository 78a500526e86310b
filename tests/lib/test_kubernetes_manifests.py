"""`kubernetes_manifest`: the profile namespaces the dispatcher tells its requirers."""

from __future__ import annotations

import json

import ops
import pytest
from ops import testing

from kubeflow_interfaces import kubernetes_manifests
from kubeflow_interfaces.kubernetes_manifests import (
    NAMESPACES_FIELD,
    InvalidManifestsError,
    ManifestsProvider,
    ManifestsRequirer,
)

ENDPOINTS = ("secrets", "pod-defaults")


class Dispatcher(ops.CharmBase):
    """Publishes the namespaces named in its config on both endpoints."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._go)

    def _go(self, _: ops.EventBase) -> None:
        names = str(self.config.get("namespaces", "")).split()
        for endpoint in ENDPOINTS:
            ManifestsProvider(self, endpoint).publish_namespaces(names)


class Consumer(ops.CharmBase):
    """Reads the profile namespaces on `secrets` into its status."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._go)

    def _go(self, _: ops.EventBase) -> None:
        try:
            names = ManifestsRequirer(self, "secrets").profile_namespaces()
        except InvalidManifestsError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        self.unit.status = ops.ActiveStatus("none" if names is None else json.dumps(sorted(names)))


DISPATCHER_META = {
    "name": "dispatcher",
    "provides": {e: {"interface": "kubernetes_manifest"} for e in (*ENDPOINTS, "config-maps")},
}
DISPATCHER_CONFIG = {"options": {"namespaces": {"type": "string", "default": ""}}}
CONSUMER_META = {
    "name": "consumer",
    "requires": {"secrets": {"interface": "kubernetes_manifest"}},
}


def _dispatcher() -> testing.Context:
    return testing.Context(Dispatcher, meta=DISPATCHER_META, config=DISPATCHER_CONFIG)


def _consumer() -> testing.Context:
    return testing.Context(Consumer, meta=CONSUMER_META)


def _provider_relation(endpoint: str, app: str) -> testing.Relation:
    return testing.Relation(endpoint, interface="kubernetes_manifest", remote_app_name=app)


def test_leader_writes_sorted_names_on_every_relation_of_the_endpoint():
    a = _provider_relation("secrets", "minio")
    b = _provider_relation("secrets", "kfp")
    c = _provider_relation("pod-defaults", "minio")
    other = _provider_relation("config-maps", "kfp")
    ctx = _dispatcher()
    state = testing.State(
        leader=True, relations={a, b, c, other}, config={"namespaces": "bob alice bob"}
    )

    out = ctx.run(ctx.on.config_changed(), state)

    for rel in (a, b, c):
        assert out.get_relation(rel.id).local_app_data == {NAMESPACES_FIELD: '["alice", "bob"]'}
    # An endpoint nobody published on is left alone.
    assert out.get_relation(other.id).local_app_data == {}


def test_unchanged_names_write_nothing_and_a_change_is_written():
    rel = _provider_relation("secrets", "minio")
    ctx = _dispatcher()
    first = ctx.run(
        ctx.on.config_changed(),
        testing.State(leader=True, relations={rel}, config={"namespaces": "alice"}),
    )

    again = ctx.run(ctx.on.config_changed(), first)
    assert again.relations == first.relations

    changed = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True,
            relations=first.relations,
            config={"namespaces": "alice carol"},
        ),
    )
    assert changed.get_relation(rel.id).local_app_data == {NAMESPACES_FIELD: '["alice", "carol"]'}
    # No profile left: an empty list, not a missing key (the requirer can tell the two apart).
    empty = ctx.run(
        ctx.on.config_changed(),
        testing.State(leader=True, relations=changed.relations, config={"namespaces": ""}),
    )
    assert empty.get_relation(rel.id).local_app_data == {NAMESPACES_FIELD: "[]"}


def test_a_non_leader_writes_nothing():
    rel = _provider_relation("secrets", "minio")
    ctx = _dispatcher()
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(leader=False, relations={rel}, config={"namespaces": "alice"}),
    )
    assert out.get_relation(rel.id).local_app_data == {}


def test_an_invalid_name_is_refused_before_anything_is_written():
    rel = _provider_relation("secrets", "minio")
    ctx = _dispatcher()
    with pytest.raises(testing.errors.UncaughtCharmError) as raised:
        ctx.run(
            ctx.on.config_changed(),
            testing.State(leader=True, relations={rel}, config={"namespaces": "alice Bad_Name"}),
        )
    assert isinstance(raised.value.__cause__, ValueError)
    assert "Bad_Name" in str(raised.value.__cause__)


def test_requirer_reads_what_the_provider_wrote():
    rel = _provider_relation("secrets", "minio")
    dispatcher = _dispatcher()
    out = dispatcher.run(
        dispatcher.on.config_changed(),
        testing.State(leader=True, relations={rel}, config={"namespaces": "bob alice"}),
    )
    written = dict(out.get_relation(rel.id).local_app_data)

    ctx = _consumer()
    seen = testing.Relation("secrets", interface="kubernetes_manifest", remote_app_data=written)
    result = ctx.run(ctx.on.update_status(), testing.State(relations={seen}))
    assert result.unit_status == testing.ActiveStatus('["alice", "bob"]')


def test_requirer_takes_the_union_over_its_relations():
    ctx = _consumer()
    one = kubernetes_manifests.relation_for_requirer(namespaces=["alice", "bob"])
    two = kubernetes_manifests.relation_for_requirer(
        remote_app_name="other-dispatcher", namespaces=["carol", "alice"]
    )
    silent = kubernetes_manifests.relation_for_requirer(remote_app_name="canonical-dispatcher")

    out = ctx.run(ctx.on.update_status(), testing.State(relations={one, two, silent}))

    assert out.unit_status == testing.ActiveStatus('["alice", "bob", "carol"]')


@pytest.mark.parametrize(
    "relations",
    [
        pytest.param((), id="no relation"),
        pytest.param(
            (kubernetes_manifests.relation_for_requirer(),), id="a dispatcher that writes nothing"
        ),
    ],
)
def test_requirer_gets_none_when_nobody_says(relations):
    ctx = _consumer()
    out = ctx.run(ctx.on.update_status(), testing.State(relations=set(relations)))
    assert out.unit_status == testing.ActiveStatus("none")


def test_requirer_gets_an_empty_set_when_there_is_no_profile():
    ctx = _consumer()
    rel = kubernetes_manifests.relation_for_requirer(namespaces=[])
    out = ctx.run(ctx.on.update_status(), testing.State(relations={rel}))
    assert out.unit_status == testing.ActiveStatus("[]")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("alice", "resource-dispatcher's profile namespaces are not JSON"),
        ('{"alice": 1}', "resource-dispatcher's profile namespaces are not a list"),
        ('["alice", "Bad_Name"]', "resource-dispatcher sent invalid profile namespace names"),
        ('["alice", 7]', "resource-dispatcher sent invalid profile namespace names"),
        ('["a-very-long-name' + "x" * 60 + '"]', "invalid profile namespace names"),
        ('["-dash"]', "invalid profile namespace names"),
    ],
)
def test_requirer_refuses_a_malformed_list(raw, message):
    ctx = _consumer()
    rel = kubernetes_manifests.relation_for_requirer(remote_app_data={NAMESPACES_FIELD: raw})
    out = ctx.run(ctx.on.update_status(), testing.State(relations={rel}))
    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert message in out.unit_status.message


def test_helper_fills_the_provider_side_and_keeps_other_data():
    rel = kubernetes_manifests.relation_for_requirer(
        "config-maps", namespaces={"bob", "alice"}, remote_app_data={"extra": "kept"}
    )
    assert rel.endpoint == "config-maps"
    assert rel.remote_app_data == {NAMESPACES_FIELD: '["alice", "bob"]', "extra": "kept"}
    assert kubernetes_manifests.relation_for_requirer().remote_app_data == {}
