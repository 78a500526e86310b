"""`istio_ingress_route`: our requirer writes what the ecosystem library writes and reads back.

The other side is the ecosystem's own `IstioIngressRouteProvider`
(charmlibs-interfaces-istio-ingress-route), run in a small charm.
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from charm_loader import run_fresh
from charmlibs.interfaces.istio_ingress_route import (
    IstioIngressRouteConfig,
    IstioIngressRouteProvider,
    PathModifierType,
)
from ops import testing

from kubeflow_interfaces import istio_ingress_route as route
from kubeflow_interfaces.istio_ingress_route import InvalidRouteDataError, RouteRequirer

UI_META = {
    "name": "ui",
    "requires": {"istio-ingress-route": {"interface": "istio_ingress_route", "limit": 1}},
}
MESH_META = {
    "name": "istio",
    "provides": {"istio-ingress-route": {"interface": "istio_ingress_route"}},
}


class Ui(ops.CharmBase):
    """A UI that asks for /ui, rewritten to /, and shows what it reads back."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.route = RouteRequirer(self, prefix="/ui", port=8080, rewrite="/")
        framework.observe(self.on["istio-ingress-route"].relation_changed, self._changed)
        framework.observe(self.on.update_status, self._changed)

    def _changed(self, _: ops.EventBase) -> None:
        wrote = self.route.publish()
        try:
            header, prefix = self.route.user_header
            url = self.route.url
        except InvalidRouteDataError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        self.unit.status = ops.ActiveStatus(f"wrote={wrote} url={url} user={header}:{prefix}")


class Mesh(ops.CharmBase):
    """The ecosystem's provider: reads each config, answers with its host."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.routes = IstioIngressRouteProvider(self, external_host="kf.example.com")
        framework.observe(self.routes.on.ready, self._ready)

    def _ready(self, event: ops.RelationEvent) -> None:
        config = self.routes.get_config(event.relation)
        assert config is not None
        self.unit.status = ops.ActiveStatus(config.model_dump_json())


def _ui(relation: testing.Relation, *, leader: bool = True) -> testing.State:
    return testing.State(leader=leader, relations={relation}, model=testing.Model(name="kubeflow"))


def _run_ui(relation: testing.Relation, *, leader: bool = True) -> testing.State:
    ctx = testing.Context(Ui, meta=UI_META)
    return ctx.run(ctx.on.relation_changed(relation), _ui(relation, leader=leader))


def test_requirer_writes_what_the_ecosystem_library_writes():
    out = _run_ui(route.relation_for_requirer())

    (rel,) = out.relations
    expected = route.config_json(app="ui", prefix="/ui", port=8080, rewrite="/")
    assert rel.local_app_data == {"config": expected}
    assert out.unit_status == ops.ActiveStatus(
        "wrote=True url=http://10.0.0.1/ui user=kubeflow-userid:"
    )


def test_the_ecosystem_provider_reads_the_route():
    written = _run_ui(route.relation_for_requirer())
    (ours,) = written.relations
    relation = testing.Relation(
        "istio-ingress-route",
        interface=route.INTERFACE,
        remote_app_name="ui",
        remote_app_data=dict(ours.local_app_data),
    )
    ctx = testing.Context(Mesh, meta=MESH_META)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation})
    )

    config = IstioIngressRouteConfig.model_validate_json(out.unit_status.message)
    assert config.model == "kubeflow"
    assert [(li.port, li.protocol.value) for li in config.listeners] == [(80, "HTTP")]
    (http,) = config.http_routes
    assert (http.name, http.listener.port) == ("ui", 80)
    assert http.matches and http.matches[0].path
    assert (http.matches[0].path.type.value, http.matches[0].path.value) == ("PathPrefix", "/ui")
    assert [(b.service, b.port) for b in http.backends] == [("ui", 8080)]
    assert http.filters
    rewrite = http.filters[0].urlRewrite.path
    assert rewrite and (rewrite.type, rewrite.value) == (PathModifierType.ReplacePrefixMatch, "/")
    # The provider's answer, read back by our requirer.
    answer = out.get_relation(relation.id).local_app_data
    assert answer == {"external_host": "kf.example.com", "tls_enabled": "False"}
    back = _run_ui(dataclasses.replace(ours, remote_app_data=dict(answer)))
    assert back.unit_status == ops.ActiveStatus(
        "wrote=False url=http://kf.example.com/ui user=kubeflow-userid:"
    )


def test_an_equal_config_in_another_serialisation_is_not_rewritten():
    # What the library wrote, with its nulls, empty lists and keys in another order.
    written = json.loads(route.config_json(app="ui", prefix="/ui", port=8080, rewrite="/"))
    reordered = json.dumps(dict(reversed(list(written.items()))))
    relation = route.relation_for_requirer(local_app_data={"config": reordered})

    out = _run_ui(relation)

    assert out.get_relation(relation.id).local_app_data == {"config": reordered}
    assert out.unit_status.message.startswith("wrote=False")


@pytest.mark.parametrize(
    "config",
    [
        route.config_json(app="ui", prefix="/ui", port=8081, rewrite="/"),
        route.config_json(app="ui", prefix="/ui", port=8080),
        route.config_json(app="ui", prefix="/other", port=8080, rewrite="/"),
        "not json",
    ],
)
def test_a_different_config_is_replaced(config: str):
    relation = route.relation_for_requirer(local_app_data={"config": config})

    out = _run_ui(relation)

    data = out.get_relation(relation.id).local_app_data
    assert data == {"config": route.config_json(app="ui", prefix="/ui", port=8080, rewrite="/")}


def test_tls_moves_the_listener_to_443_and_the_url_to_https():
    out = _run_ui(route.relation_for_requirer(external_host="kf.example.com", tls_enabled=True))

    (rel,) = out.relations
    config = json.loads(rel.local_app_data["config"])
    assert config["listeners"] == [{"port": 443, "protocol": "HTTP"}]
    assert config["http_routes"][0]["listener"] == {"port": 443, "protocol": "HTTP"}
    assert out.unit_status.message.startswith("wrote=True url=https://kf.example.com/ui ")


def test_a_non_leader_writes_nothing():
    out = _run_ui(route.relation_for_requirer(), leader=False)

    (rel,) = out.relations
    assert rel.local_app_data == {}
    assert out.unit_status.message.startswith("wrote=False url=http://10.0.0.1/ui")


class TwoRoutes(ops.CharmBase):
    """A UI that asks for its own route, renamed, and one more to another service."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.route = RouteRequirer(self, prefix="/ui", port=8080)
        framework.observe(self.on["istio-ingress-route"].relation_changed, self._changed)

    def _changed(self, _: ops.EventBase) -> None:
        wanted = self.route.config()
        wanted["http_routes"][0]["name"] = "web"
        api = route.route_config(
            model=self.model.name, name="api", prefix="/api", port=9090, service="api"
        )
        wanted["http_routes"].extend(api["http_routes"])
        self.unit.status = ops.ActiveStatus(f"wrote={self.route.publish(wanted)}")


def _run_two_routes(relation: testing.Relation, *, leader: bool = True) -> testing.State:
    ctx = testing.Context(TwoRoutes, meta=UI_META)
    return ctx.run(ctx.on.relation_changed(relation), _ui(relation, leader=leader))


def test_a_config_given_to_publish_is_written_once():
    out = _run_two_routes(route.relation_for_requirer())

    (rel,) = out.relations
    config = IstioIngressRouteConfig.model_validate_json(rel.local_app_data["config"])
    assert [(r.name, r.backends[0].service) for r in config.http_routes] == [
        ("web", "ui"),
        ("api", "api"),
    ]
    assert out.unit_status == ops.ActiveStatus("wrote=True")
    again = _run_two_routes(rel)
    assert again.get_relation(rel.id).local_app_data == rel.local_app_data
    assert again.unit_status == ops.ActiveStatus("wrote=False")


def test_a_non_leader_does_not_write_a_config_given_to_publish():
    out = _run_two_routes(route.relation_for_requirer(), leader=False)

    (rel,) = out.relations
    assert rel.local_app_data == {}
    assert out.unit_status == ops.ActiveStatus("wrote=False")


def test_no_url_until_the_provider_answers():
    out = _run_ui(route.relation_for_requirer(external_host=None))

    assert out.unit_status == ops.ActiveStatus("wrote=True url=None user=kubeflow-userid:")


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("10.1.2.3", "http://10.1.2.3/ui"),
        ("kubeflow.example.com:8443", "http://kubeflow.example.com:8443/ui"),
        ("fd00::1", "http://[fd00::1]/ui"),
    ],
)
def test_url_from_the_external_host(host: str, url: str):
    out = _run_ui(route.relation_for_requirer(external_host=host))

    assert f" url={url} " in out.unit_status.message


def test_user_header_from_the_provider():
    relation = route.relation_for_requirer(user_header="x-auth-user", user_prefix="oidc:")

    out = _run_ui(relation)

    assert out.unit_status.message.endswith(" user=x-auth-user:oidc:")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"user_header": "bad header"}, "kubeflow_user_header 'bad header' is not a header name"),
        ({"user_prefix": "with space"}, "kubeflow_user_prefix must be at most 128 printable"),
        ({"external_host": "http://x/"}, "external_host 'http://x/' is not a host name"),
        ({"external_host": "host:99999"}, "external_host 'host:99999' is not a host name"),
    ],
)
def test_invalid_provider_data_raises(data: dict[str, str], message: str):
    out = _run_ui(route.relation_for_requirer(**data))

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "/ui/"}, "prefix: '/ui/' must be / or a path like /app"),
        ({"prefix": "ui"}, "prefix: 'ui' must be / or a path"),
        ({"prefix": "/a//b"}, "prefix: '/a//b' must be / or a path"),
        ({"prefix": "/ui", "rewrite": ""}, "rewrite: '' must be / or a path"),
        ({"prefix": "/ui", "port": 0}, "port: 0 is not a port number"),
        ({"prefix": "/ui", "service": "Not_A_Service"}, "service: 'Not_A_Service' is not"),
    ],
)
def test_invalid_request_is_refused(kwargs: dict, message: str):
    seen: list[str] = []

    class Bad(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            try:
                RouteRequirer(self, **{"port": 8080, **kwargs})
            except ValueError as e:
                seen.append(str(e))

    ctx = testing.Context(Bad, meta=UI_META)
    ctx.run(ctx.on.update_status(), testing.State())

    assert len(seen) == 1 and seen[0].startswith(message)


def test_provider_helper_holds_a_config_the_ecosystem_provider_reads():
    relation = route.relation_for_provider(app="notebooks", prefix="/jupyter", rewrite="/")
    ctx = testing.Context(Mesh, meta=MESH_META)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation})
    )

    config = IstioIngressRouteConfig.model_validate_json(out.unit_status.message)
    assert config.http_routes[0].backends[0].service == "notebooks"
    assert relation.interface == "istio_ingress_route"


SETTLED = r"""
import json, sys
import ops
from ops import testing
from kubeflow_interfaces import istio_ingress_route as route

class Ui(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        self.route = route.RouteRequirer(self, prefix="/ui", port=8080, rewrite="/")
        framework.observe(self.on.update_status, self._go)

    def _go(self, _):
        self.unit.status = ops.ActiveStatus(f"wrote={self.route.publish()} url={self.route.url}")

meta = {"name": "ui", "requires": {"istio-ingress-route": {"interface": "istio_ingress_route"}}}
relation = route.relation_for_requirer(local_app_data={"config": sys.stdin.read()})
ctx = testing.Context(Ui, meta=meta)
state = testing.State(leader=True, relations={relation}, model=testing.Model(name="kubeflow"))
out = ctx.run(ctx.on.update_status(), state)
print(json.dumps({
    "status": out.unit_status.message,
    "library": any(m.startswith("charmlibs") for m in sys.modules),
    "pydantic": "pydantic" in sys.modules,
}))
"""


def test_a_settled_hook_does_not_import_the_ecosystem_library():
    settled = route.config_json(app="ui", prefix="/ui", port=8080, rewrite="/")

    assert run_fresh(SETTLED, stdin=settled) == {
        "status": "wrote=False url=http://10.0.0.1/ui",
        "library": False,
        "pydantic": False,
    }


def test_a_hook_that_writes_imports_it():
    # The control: with nothing written yet the config is validated and serialised.
    outcome = run_fresh(SETTLED, stdin="")

    assert outcome["status"] == "wrote=True url=http://10.0.0.1/ui"
    assert outcome["library"] is True
