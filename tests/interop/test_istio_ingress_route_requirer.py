"""Our UI charms against the ecosystem's istio_ingress_route provider.

The mesh's side is `IstioIngressRouteProvider` from
charmlibs-interfaces-istio-ingress-route, the library istio-ingress-k8s
uses, in a tiny charm. Each of our charms asks for its route; the provider
must parse the config and be ready; its answer (`update_ingress_address`),
read back by our charm, must give the charm the right URL. With TLS on, the
charm asks again with the listener on 443, and the provider reads that too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ops
import pytest
from charm_loader import load_charm
from charmlibs.interfaces.istio_ingress_route import (
    IstioIngressRouteConfig,
    IstioIngressRouteProvider,
)
from ops import testing

from kubeflow_interfaces import istio_ingress_route

HOST = "kf.example.com"
ENDPOINT = "istio-ingress-route"
MESH_META = {"name": "istio", "provides": {ENDPOINT: {"interface": "istio_ingress_route"}}}


class Mesh(ops.CharmBase):
    """The provider, as a charm using the ecosystem library has it, at HOST with TLS."""

    seen: list[Any] = []  # noqa: RUF012 - what the last run read, for the test

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.routes = IstioIngressRouteProvider(self, external_host=HOST, tls_enabled=True)
        framework.observe(self.routes.on.ready, self._ready)

    def _ready(self, event: ops.RelationEvent) -> None:
        Mesh.seen[:] = [
            self.routes.is_ready(event.relation),
            self.routes.get_config(event.relation),
        ]


def _mesh(asked: dict[str, str], app: str) -> tuple[list[Any], dict[str, str]]:
    """What the provider reads from our databag, and what it answers."""
    relation = testing.Relation(
        ENDPOINT, interface="istio_ingress_route", remote_app_name=app, remote_app_data=asked
    )
    Mesh.seen = []
    ctx = testing.Context(Mesh, meta=MESH_META)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations={relation})
    )
    return list(Mesh.seen), dict(out.get_relation(relation.id).local_app_data)


@dataclasses.dataclass(frozen=True)
class Case:
    """One of our charms: how to build its state, and what shows it has the route's URL."""

    charm: str
    app: str
    cls: str
    prefix: str
    port: int
    rewrite: str | None
    state: Callable[[Path], testing.State]
    shows_url: Callable[[testing.State, Path], bool]


def _with_route(state: testing.State, route: testing.Relation) -> testing.State:
    others = {r for r in state.relations if r.endpoint != ENDPOINT}
    return dataclasses.replace(state, relations=others | {route})


def _dashboard(tmp_path: Path) -> testing.State:
    from unit.kubeflow_dashboard.helpers import state

    return state()


def _notebooks(tmp_path: Path) -> testing.State:
    from unit.kubeflow_notebooks.helpers import state

    return state()


def _dex(tmp_path: Path) -> testing.State:
    from unit.dex.helpers import admin_secret, make_state, peers

    return make_state(relations=(peers(),), secrets=(admin_secret(),))


def _gateway(tmp_path: Path) -> testing.State:
    from unit.oidc_gateway.helpers import dex_state

    return dex_state(tmp_path)


def _probe(tmp_path: Path) -> testing.State:
    return testing.State(leader=True, model=testing.Model(name="kubeflow"))


def _secure_cookies(out: testing.State, _: Path) -> bool:
    env = out.get_container("jupyter-web-app").plan.services["jupyter-web-app"].environment
    return env["APP_SECURE_COOKIES"] == "true" and out.unit_status == ops.ActiveStatus()


def _callback(out: testing.State, tmp_path: Path) -> bool:
    from unit.oidc_gateway.helpers import toml_config

    return toml_config(tmp_path)[
        "redirect_url"
    ] == f"https://{HOST}/oauth2/callback" and out.unit_status == ops.ActiveStatus(
        f"login via dex at https://{HOST}"
    )


CASES = [
    Case(
        "kubeflow-dashboard",
        "kubeflow-dashboard",
        "KubeflowDashboardCharm",
        "/",
        8082,
        None,
        _dashboard,
        lambda out, _: out.unit_status == ops.ActiveStatus(f"https://{HOST}/"),
    ),
    Case(
        "kubeflow-notebooks",
        "kubeflow-notebooks",
        "NotebooksCharm",
        "/jupyter",
        5000,
        "/",
        _notebooks,
        _secure_cookies,
    ),
    Case(
        "dex",
        "dex",
        "DexCharm",
        "/dex",
        5556,
        None,
        _dex,
        lambda out, _: out.unit_status == ops.ActiveStatus(f"https://{HOST}/dex"),
    ),
    Case(
        "oidc-gateway",
        "oidc-gateway",
        "OidcGatewayCharm",
        "/oauth2",
        4180,
        None,
        _gateway,
        _callback,
    ),
    Case(
        "route-probe",
        "route-probe",
        "RouteProbeCharm",
        "/probe",
        8080,
        None,
        _probe,
        lambda out, _: out.unit_status == ops.ActiveStatus(f"https://{HOST}/probe"),
    ),
]


def _route_of(state: testing.State) -> testing.Relation:
    (route,) = [r for r in state.relations if r.endpoint == ENDPOINT]
    return route


def _check_config(config: IstioIngressRouteConfig | None, case: Case, listener: int) -> None:
    assert config is not None
    assert config.model == "kubeflow"
    assert [(li.port, li.protocol.value) for li in config.listeners] == [(listener, "HTTP")]
    (route,) = config.http_routes
    assert route.listener.port == listener
    assert route.matches and route.matches[0].path
    assert (route.matches[0].path.type.value, route.matches[0].path.value) == (
        "PathPrefix",
        case.prefix,
    )
    assert [(b.service, b.port) for b in route.backends] == [(case.app, case.port)]
    if case.rewrite is None:
        assert not route.filters
    else:
        assert route.filters
        (rewrite,) = route.filters
        path = rewrite.urlRewrite.path  # type: ignore[union-attr]
        assert path and (path.type.value, path.value) == ("ReplacePrefixMatch", case.rewrite)


@pytest.mark.parametrize("case", CASES, ids=[c.charm for c in CASES])
def test_the_provider_serves_our_route_and_we_read_its_url(case: Case, kube, tmp_path):
    charm = getattr(load_charm(case.charm), case.cls)
    ctx = testing.Context(charm, app_name=case.app)
    waiting = istio_ingress_route.relation_for_requirer(external_host=None)
    state = _with_route(case.state(tmp_path), waiting)

    asked = ctx.run(ctx.on.relation_created(waiting), state)
    seen, answer = _mesh(dict(_route_of(asked).local_app_data), case.app)

    assert seen, "the provider did not emit ready"
    ready, config = seen
    assert ready is True
    _check_config(config, case, 80)
    # What the provider answers, in the ecosystem's own keys.
    assert answer == {"external_host": HOST, "tls_enabled": "True"}

    answered = dataclasses.replace(_route_of(asked), remote_app_data=answer)
    out = ctx.run(ctx.on.relation_changed(answered), _with_route(asked, answered))
    if case.charm in ("kubeflow-dashboard", "kubeflow-notebooks"):
        out = _settle(ctx, out)
    assert case.shows_url(out, tmp_path), out.unit_status

    # TLS is on: the charm asks again, on 443, and the provider reads that too.
    seen, _ = _mesh(dict(_route_of(out).local_app_data), case.app)
    assert seen and seen[0] is True
    _check_config(seen[1], case, 443)


def _settle(ctx: testing.Context, out: testing.State) -> testing.State:
    """The workloads' ready checks pass, as they do once they serve; one more hook."""
    up = set()
    for c in out.containers:
        infos = frozenset(
            testing.CheckInfo(
                name, level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
            )
            for name in c.plan.checks
        )
        up.add(dataclasses.replace(c, check_infos=infos))
    return ctx.run(ctx.on.update_status(), dataclasses.replace(out, containers=up))
