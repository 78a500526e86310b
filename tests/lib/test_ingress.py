"""`ingress` and `ingress-auth`: both sides agree on the wire; bad data is refused."""

from __future__ import annotations

import ops
import pytest
from ops import testing

from kubeflow_interfaces import ingress, ingress_auth
from kubeflow_interfaces.ingress import IngressProvider, IngressRequirer, InvalidIngressDataError
from kubeflow_interfaces.ingress_auth import (
    IngressAuthData,
    IngressAuthProvider,
    IngressAuthRequirer,
    InvalidIngressAuthDataError,
)


class Routed(ops.CharmBase):
    """A UI charm that asks for /ui/ without login."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.ingress = IngressRequirer(self, prefix="/ui/", port=8080, rewrite="/", auth=False)
        framework.observe(self.on["ingress"].relation_changed, self._changed)

    def _changed(self, _):
        self.ingress.publish_request()
        self.unit.status = ops.ActiveStatus(self.ingress.url or "no url")


class Mesh(ops.CharmBase):
    """A mesh that serves every route under one host, and reads the auth service."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.routes = IngressProvider(self)
        self.auth = IngressAuthRequirer(self)
        framework.observe(self.on["ingress"].relation_changed, self._changed)
        framework.observe(self.on["ingress-auth"].relation_changed, self._auth)

    def _changed(self, event):
        try:
            request = self.routes.request(event.relation)
        except InvalidIngressDataError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        if request is not None:
            self.routes.publish(event.relation, f"http://mesh.example{request.prefix}")
            self.unit.status = ops.ActiveStatus(
                f"{request.target}:{request.port} auth={request.auth}"
            )

    def _auth(self, _):
        try:
            data = self.auth.data()
        except InvalidIngressAuthDataError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        self.unit.status = ops.ActiveStatus(f"{data.target}:{data.port}" if data else "none")


class Gate(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._publish)

    def _publish(self, _):
        IngressAuthProvider(self).publish(
            IngressAuthData(
                service="gate",
                namespace="kubeflow",
                port=4180,
                include_request_headers=["Cookie"],
                headers_to_upstream=["kubeflow-userid"],
            )
        )


ROUTED_META = {"name": "ui", "requires": {"ingress": {"interface": "ingress", "limit": 1}}}
MESH_META = {
    "name": "mesh",
    "provides": {"ingress": {"interface": "ingress"}},
    "requires": {"ingress-auth": {"interface": "ingress-auth", "limit": 1}},
}
GATE_META = {"name": "gate", "provides": {"ingress-auth": {"interface": "ingress-auth"}}}


def test_route_request_and_url_round_trip():
    ctx = testing.Context(Routed, meta=ROUTED_META)
    rel = testing.Relation("ingress", remote_app_name="mesh")
    out = ctx.run(
        ctx.on.relation_changed(rel, remote_unit=0),
        testing.State(leader=True, relations=[rel], model=testing.Model(name="kubeflow")),
    )
    request = dict(out.get_relation(rel.id).local_app_data)
    assert request == {
        "prefix": "/ui/",
        "rewrite": "/",
        "service": "ui",
        "namespace": "kubeflow",
        "port": "8080",
        "auth": "false",
    }

    mesh = testing.Context(Mesh, meta=MESH_META)
    rel2 = testing.Relation("ingress", remote_app_name="ui", remote_app_data=request)
    out2 = mesh.run(
        mesh.on.relation_changed(rel2, remote_unit=0), testing.State(leader=True, relations=[rel2])
    )
    assert out2.unit_status == testing.ActiveStatus(
        "ui.kubeflow.svc.cluster.local:8080 auth=False"
    )
    answer = dict(out2.get_relation(rel2.id).local_app_data)
    assert answer == {"url": "http://mesh.example/ui/"}

    rel3 = testing.Relation(
        "ingress", remote_app_name="mesh", local_app_data=request, remote_app_data=answer
    )
    out3 = ctx.run(
        ctx.on.relation_changed(rel3, remote_unit=0),
        testing.State(leader=True, relations=[rel3], model=testing.Model(name="kubeflow")),
    )
    assert out3.unit_status == testing.ActiveStatus("http://mesh.example/ui/")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"prefix": "ui", "service": "ui", "namespace": "k", "port": "80"}, "prefix"),
        ({"prefix": "/ui/", "service": "UI!", "namespace": "k", "port": "80"}, "service"),
        ({"prefix": "/ui/", "service": "ui", "namespace": "k", "port": "99999"}, "port"),
        (
            {"prefix": "/ui/", "service": "ui", "namespace": "k", "port": "80", "auth": "maybe"},
            "auth",
        ),
        ({"prefix": "/ui/"}, "namespace, port, service"),
    ],
)
def test_malformed_route_is_refused(data, field):
    mesh = testing.Context(Mesh, meta=MESH_META)
    rel = testing.Relation("ingress", remote_app_name="ui", remote_app_data=data)
    out = mesh.run(
        mesh.on.relation_changed(rel, remote_unit=0), testing.State(leader=True, relations=[rel])
    )
    assert out.unit_status == testing.BlockedStatus(f"invalid ingress relation data ({field})")
    assert out.get_relation(rel.id).local_app_data == {}


def test_empty_databags_parse():
    mesh = testing.Context(Mesh, meta=MESH_META)
    rel = testing.Relation("ingress", remote_app_name="ui")
    out = mesh.run(
        mesh.on.relation_changed(rel, remote_unit=0), testing.State(leader=True, relations=[rel])
    )
    assert out.get_relation(rel.id).local_app_data == {}
    auth = testing.Relation("ingress-auth", remote_app_name="gate")
    out = mesh.run(
        mesh.on.relation_changed(auth, remote_unit=0), testing.State(leader=True, relations=[auth])
    )
    assert out.unit_status == testing.ActiveStatus("none")


def test_auth_service_data_round_trip():
    gate = testing.Context(Gate, meta=GATE_META)
    rel = ingress_auth.relation_for_provider()
    out = gate.run(gate.on.config_changed(), testing.State(leader=True, relations=[rel]))
    data = dict(out.get_relation(rel.id).local_app_data)
    assert data["include-request-headers"] == '["cookie"]'

    mesh = testing.Context(Mesh, meta=MESH_META)
    rel2 = testing.Relation("ingress-auth", remote_app_name="gate", remote_app_data=data)
    out2 = mesh.run(
        mesh.on.relation_changed(rel2, remote_unit=0), testing.State(leader=True, relations=[rel2])
    )
    assert out2.unit_status == testing.ActiveStatus("gate.kubeflow.svc.cluster.local:4180")


def test_malformed_auth_data_is_refused():
    mesh = testing.Context(Mesh, meta=MESH_META)
    rel = testing.Relation(
        "ingress-auth",
        remote_app_name="gate",
        remote_app_data={
            "service": "gate",
            "namespace": "kubeflow",
            "port": "4180",
            "headers-to-upstream": '["bad header"]',
        },
    )
    out = mesh.run(
        mesh.on.relation_changed(rel, remote_unit=0), testing.State(leader=True, relations=[rel])
    )
    assert out.unit_status == testing.BlockedStatus(
        "invalid ingress-auth relation data (headers-to-upstream)"
    )


def test_helpers_build_parseable_relations():
    rel = ingress.relation_for_provider(prefix="/dex/", auth=False)
    assert ingress.IngressRequest.model_validate(dict(rel.remote_app_data)).auth is False
    rel = ingress_auth.relation_for_requirer()
    assert IngressAuthData.model_validate(dict(rel.remote_app_data)).port == 4180
    rel = ingress.relation_for_requirer(url="http://x/")
    assert rel.remote_app_data == {"url": "http://x/"}
