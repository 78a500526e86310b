"""kubeflow_charms.gateway_identity: the gateway's identity from istio's `gateway-metadata`."""

from __future__ import annotations

import ops
import pytest
from charmlibs.interfaces.gateway_metadata import GatewayMetadata
from ops import testing

from kubeflow_charms import gateway_identity
from kubeflow_charms.gateway_identity import Gateway, InvalidGatewayMetadataError

META = {
    "name": "probe",
    "requires": {"gateway-metadata": {"interface": "gateway_metadata", "limit": 1}},
}
MISSING = "relate gateway-metadata"
SEEN: list[tuple[Gateway | None, ops.StatusBase | None] | str] = []


class ProbeCharm(ops.CharmBase):
    """Records what `read` says, or the error it raises."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._record)
        framework.observe(self.on["gateway-metadata"].relation_broken, self._record)

    def _record(self, event: ops.EventBase) -> None:
        broken = isinstance(event, ops.RelationBrokenEvent)
        try:
            SEEN.append(gateway_identity.read(self, missing=MISSING, broken=broken))
        except InvalidGatewayMetadataError as e:
            SEEN.append(str(e))


def _metadata() -> str:
    # The ecosystem's own model (charmlibs-interfaces-gateway-metadata) writes the value.
    return GatewayMetadata(
        namespace="kubeflow",
        gateway_name="kubeflow-gateway",
        deployment_name="istio-ingressgateway-workload",
        service_account="istio-ingressgateway-workload",
    ).model_dump_json()


def _relation(data: dict[str, str]) -> testing.Relation:
    return testing.Relation("gateway-metadata", interface="gateway_metadata", remote_app_data=data)


def _read(state: testing.State, event: str = "update_status", relation=None):
    SEEN.clear()
    ctx = testing.Context(ProbeCharm, meta=META)
    on = ctx.on.relation_broken(relation) if relation else getattr(ctx.on, event)()
    out = ctx.run(on, state)
    assert len(SEEN) == 1
    return SEEN[0], out


def test_the_gateway_from_the_metadata():
    relation = _relation({"metadata": _metadata()})

    seen, out = _read(testing.State(relations={relation}))

    gateway = Gateway(namespace="kubeflow", service_account="istio-ingressgateway-workload")
    assert seen == (gateway, None)
    assert gateway.principal == "cluster.local/ns/kubeflow/sa/istio-ingressgateway-workload"
    assert out.get_relation(relation.id).local_app_data == {}


def test_no_relation_is_blocked_with_the_charms_message():
    seen, _ = _read(testing.State())

    assert seen == (None, ops.BlockedStatus(MISSING))


def test_a_relation_going_away_is_blocked_with_the_charms_message():
    relation = _relation({"metadata": _metadata()})

    seen, _ = _read(testing.State(relations={relation}), relation=relation)

    assert seen == (None, ops.BlockedStatus(MISSING))


def test_waiting_until_istio_writes_its_metadata():
    seen, _ = _read(testing.State(relations={_relation({})}))

    assert seen == (None, ops.WaitingStatus("waiting for istio's gateway-metadata"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "metadata is not JSON"),
        ("[]", "metadata is not a JSON object"),
        ('{"namespace": "Bad_NS", "service_account": "sa"}', "namespace 'Bad_NS' is not"),
        ('{"namespace": "kubeflow"}', "service_account None is not a service account name"),
    ],
)
def test_unusable_metadata_raises(text: str, message: str):
    seen, _ = _read(testing.State(relations={_relation({"metadata": text})}))

    assert isinstance(seen, str) and seen.startswith(message)
