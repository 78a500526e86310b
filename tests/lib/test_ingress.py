"""`ingress`: both sides agree on the wire; bad data is refused."""

from __future__ import annotations

import ops
import pytest
from ops import testing

from kubeflow_interfaces import ingress
from kubeflow_interfaces.ingress import IngressProvider, IngressRequirer, InvalidIngressDataError


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
    """A mesh that serves every route under one host."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.routes = IngressProvider(self)
        framework.observe(self.on["ingress"].relation_changed, self._changed)

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


ROUTED_META = {"name": "ui", "requires": {"ingress": {"interface": "ingress", "limit": 1}}}
MESH_META = {"name": "mesh", "provides": {"ingress": {"interface": "ingress"}}}


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


def test_helpers_build_parseable_relations():
    rel = ingress.relation_for_provider(prefix="/dex/", auth=False)
    assert ingress.IngressRequest.model_validate(dict(rel.remote_app_data)).auth is False
    rel = ingress.relation_for_requirer(url="http://x/")
    assert rel.remote_app_data == {"url": "http://x/"}
