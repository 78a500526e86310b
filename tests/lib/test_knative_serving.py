"""The kubeflow_knative_serving interface: both sides in ops.testing."""

from __future__ import annotations

from typing import ClassVar

import ops
import pytest
from ops import testing

from kubeflow_interfaces.knative_serving import (
    KEYS,
    InvalidKnativeServingError,
    KnativeServing,
    KnativeServingProvider,
    KnativeServingRequirer,
)

SERVING = KnativeServing(
    namespace="kubeflow",
    local_gateway="kubeflow/knative-local-gateway",
    local_gateway_service="knative-local-gateway.kubeflow.svc.cluster.local",
    domain="models.example.com",
    version="1.16.2",
)
META = {
    "name": "side",
    "provides": {"provided": {"interface": "kubeflow_knative_serving"}},
    "requires": {"required": {"interface": "kubeflow_knative_serving", "limit": 1}},
}


class Side(ops.CharmBase):
    published: ClassVar[KnativeServing | None] = SERVING
    seen: ClassVar[list] = []

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._on_update_status)

    def _on_update_status(self, _: ops.EventBase) -> None:
        KnativeServingProvider(self, "provided").publish(type(self).published)
        try:
            type(self).seen.append(KnativeServingRequirer(self, "required").get())
        except InvalidKnativeServingError as e:
            type(self).seen.append(e)


@pytest.fixture
def ctx():
    Side.published, Side.seen = SERVING, []
    return testing.Context(Side, meta=META)


def test_the_leader_publishes_every_key(ctx):
    relation = testing.Relation("provided")
    out = ctx.run(ctx.on.update_status(), testing.State(leader=True, relations={relation}))
    assert out.get_relation(relation.id).local_app_data == SERVING.to_databag()
    assert set(SERVING.to_databag()) == set(KEYS)


def test_a_follower_writes_nothing(ctx):
    relation = testing.Relation("provided")
    out = ctx.run(ctx.on.update_status(), testing.State(leader=False, relations={relation}))
    assert out.get_relation(relation.id).local_app_data == {}


def test_withdrawing_removes_every_key(ctx):
    Side.published = None
    relation = testing.Relation("provided", local_app_data=SERVING.to_databag())
    out = ctx.run(ctx.on.update_status(), testing.State(leader=True, relations={relation}))
    assert out.get_relation(relation.id).local_app_data == {}


def test_the_requirer_reads_what_the_provider_wrote(ctx):
    relation = testing.Relation("required", remote_app_data=SERVING.to_databag())
    ctx.run(ctx.on.update_status(), testing.State(relations={relation}))
    assert Side.seen == [SERVING]


def test_no_data_yet_is_none(ctx):
    ctx.run(ctx.on.update_status(), testing.State(relations={testing.Relation("required")}))
    assert Side.seen == [None]


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        ({"domain": ""}, ("domain",)),
        ({"local-gateway": "no-slash"}, ("local-gateway",)),
        ({"namespace": "Not_A_Namespace"}, ("namespace",)),
        ({"local-gateway-service": "bad host!"}, ("local-gateway-service",)),
        ({"version": "v1.16"}, ("version",)),
    ],
)
def test_malformed_data_names_the_keys(ctx, change, keys):
    data = {**SERVING.to_databag(), **change}
    data = {k: v for k, v in data.items() if v}
    relation = testing.Relation("required", remote_app_data=data)
    ctx.run(ctx.on.update_status(), testing.State(relations={relation}))
    (error,) = Side.seen
    assert isinstance(error, InvalidKnativeServingError)
    assert error.keys == keys
