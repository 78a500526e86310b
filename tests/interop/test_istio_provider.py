"""Canonical's requirer libraries against our real istio charm.

- charmlibs-interfaces-istio-ingress-route: a UI charm written as
  Canonical's kubeflow-dashboard charm is (`IstioIngressRouteRequirer`, one
  HTTP listener on port 80 and a PathPrefix `/` route, as in
  canonical/kubeflow-dashboard-operator src/charm.py `_ambient_mesh_ingress`
  at 31b1d6b1) asks our istio for a route and reads its answer.
- charmlibs-interfaces-gateway-metadata: a controller reads the gateway's
  names with `GatewayMetadataRequirer`.
- charmlibs-interfaces-forward-auth: our istio, as the requirer, is served
  by a provider written with `ForwardAuthProvider`.
"""

from __future__ import annotations

from collections.abc import Iterator

import ops
import pytest
from charmlibs.interfaces import forward_auth, gateway_metadata
from charmlibs.interfaces import istio_ingress_route as route_lib
from ops import testing
from unit.istio.helpers import CHARM, FILES, checks_up, state, virtual_services, with_relations

MODEL = "kubeflow"


@pytest.fixture(autouse=True)
def container_files(tmp_path) -> Iterator[None]:
    FILES["root"] = tmp_path
    yield
    FILES.clear()


def _settle_istio(*relations: testing.RelationBase) -> testing.State:
    ctx = testing.Context(CHARM.IstioCharm)
    out = checks_up(ctx.run(ctx.on.config_changed(), with_relations(state(), *relations)))
    return ctx.run(ctx.on.update_status(), out)


# --- istio-ingress-route ----------------------------------------------------------------------


class DashboardLike(ops.CharmBase):
    """Asks for its route as Canonical's kubeflow-dashboard charm does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.ingress = route_lib.IstioIngressRouteRequirer(
            self, relation_name="istio-ingress-route"
        )
        framework.observe(self.on.config_changed, self._submit)
        framework.observe(self.ingress.on.ready, self._submit)

    def _submit(self, _: ops.EventBase) -> None:
        port = 443 if self.ingress.tls_enabled else 80
        listener = route_lib.Listener(port=port, protocol=route_lib.ProtocolType.HTTP)
        config = route_lib.IstioIngressRouteConfig(
            model=self.model.name,
            listeners=[listener],
            http_routes=[
                route_lib.HTTPRoute(
                    name="http-ingress",
                    listener=listener,
                    matches=[route_lib.HTTPRouteMatch(path=route_lib.HTTPPathMatch(value="/"))],
                    backends=[route_lib.BackendRef(service=self.app.name, port=8082)],
                )
            ],
        )
        if self.unit.is_leader():
            self.ingress.submit_config(config)


DASHBOARD_META = {
    "name": "kubeflow-dashboard",
    "requires": {"istio-ingress-route": {"interface": "istio_ingress_route"}},
}


def _provider_with_login() -> testing.Relation:
    """A forward-auth provider's data, written by the ecosystem's provider library."""
    ctx = testing.Context(AuthProvider, meta=AUTH_META)
    relation = testing.Relation("forward-auth", interface="forward_auth", remote_app_name="istio")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations={relation})
    )
    data = out.get_relation(relation.id).local_app_data
    return testing.Relation(
        "forward-auth",
        interface="forward_auth",
        remote_app_name="oauth2-proxy",
        remote_app_data=dict(data),
    )


class AuthProvider(ops.CharmBase):
    """A login provider written with the ecosystem's ForwardAuthProvider."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.forward_auth = forward_auth.ForwardAuthProvider(
            self,
            forward_auth_config=forward_auth.ForwardAuthConfig(
                decisions_address="http://oauth2-proxy.kubeflow.svc.cluster.local:4180/oauth2/auth",
                app_names=["kubeflow-dashboard"],
                headers=["kubeflow-userid"],
            ),
        )


AUTH_META = {
    "name": "oauth2-proxy",
    "provides": {"forward-auth": {"interface": "forward_auth"}},
}


def test_a_canonical_style_ui_charm_is_routed_and_reads_its_answer(kube):
    ui_ctx = testing.Context(DashboardLike, meta=DASHBOARD_META)
    ui_relation = testing.Relation(
        "istio-ingress-route", interface="istio_ingress_route", remote_app_name="istio"
    )
    ui_out = ui_ctx.run(
        ui_ctx.on.config_changed(),
        testing.State(leader=True, relations={ui_relation}, model=testing.Model(name=MODEL)),
    )
    request = ui_out.get_relation(ui_relation.id).local_app_data
    assert "config" in request

    # Our istio on the other side: a route behind the login, with the ecosystem's login provider.
    on_istio = testing.Relation(
        "istio-ingress-route",
        interface="istio_ingress_route",
        remote_app_name="kubeflow-dashboard",
        remote_app_data=dict(request),
    )
    out = _settle_istio(on_istio, _provider_with_login())
    assert out.unit_status.name == "active", out.unit_status
    assert set(virtual_services(kube)) == {"/"}
    answer = out.get_relation(on_istio.id).local_app_data

    # The requirer library reads the answer: host and TLS flag.
    back = testing.Relation(
        "istio-ingress-route",
        interface="istio_ingress_route",
        id=ui_relation.id,
        remote_app_name="istio",
        local_app_data=dict(request),
        remote_app_data=dict(answer),
    )
    ui_ctx = testing.Context(DashboardLike, meta=DASHBOARD_META)
    with ui_ctx(
        ui_ctx.on.relation_changed(back),
        testing.State(leader=True, relations={back}, model=testing.Model(name=MODEL)),
    ) as manager:
        charm = manager.charm
        assert charm.ingress.external_host == "istio-ingressgateway.kubeflow.svc.cluster.local"
        assert charm.ingress.tls_enabled is False
        assert charm.ingress.is_ready()
        manager.run()


def test_the_provider_library_reads_a_request_our_istio_serves(kube):
    # The same request parsed by the ecosystem's provider library, as istio-ingress-k8s would.
    ui_ctx = testing.Context(DashboardLike, meta=DASHBOARD_META)
    relation = testing.Relation("istio-ingress-route", remote_app_name="istio")
    out = ui_ctx.run(
        ui_ctx.on.config_changed(),
        testing.State(leader=True, relations={relation}, model=testing.Model(name=MODEL)),
    )
    config = route_lib.IstioIngressRouteConfig.model_validate_json(
        out.get_relation(relation.id).local_app_data["config"]
    )
    assert config.http_routes[0].matches[0].path.value == "/"


# --- forward-auth ------------------------------------------------------------------------------


def test_the_ecosystem_login_provider_protects_our_gateway(kube):
    out = _settle_istio(_provider_with_login())
    mesh_provider = CHARM.istiod.EXT_AUTHZ_PROVIDER
    policy = kube.get("AuthorizationPolicy", "istio-ingressgateway-ext-authz", MODEL)
    assert policy["spec"]["provider"] == {"name": mesh_provider}
    assert out.unit_status.name == "active"


def test_the_provider_library_reads_which_apps_we_put_behind_it(kube):
    on_istio = testing.Relation(
        "istio-ingress-route",
        interface="istio_ingress_route",
        remote_app_name="kubeflow-dashboard",
        remote_app_data={
            "config": route_lib.IstioIngressRouteConfig(
                model=MODEL,
                listeners=[route_lib.Listener(port=80, protocol=route_lib.ProtocolType.HTTP)],
                http_routes=[
                    route_lib.HTTPRoute(
                        name="r",
                        listener=route_lib.Listener(port=80, protocol=route_lib.ProtocolType.HTTP),
                        backends=[route_lib.BackendRef(service="kubeflow-dashboard", port=8082)],
                    )
                ],
            ).model_dump_json()
        },
    )
    auth = _provider_with_login()
    out = _settle_istio(on_istio, auth)
    ours = out.get_relation(auth.id).local_app_data
    # The provider library compares the apps it was asked to protect with these.
    back = testing.Relation(
        "forward-auth",
        interface="forward_auth",
        remote_app_name="istio",
        local_app_data=dict(auth.remote_app_data),
        remote_app_data=dict(ours),
    )
    ctx = testing.Context(AuthProvider, meta=AUTH_META)
    ctx.run(ctx.on.relation_changed(back), testing.State(leader=True, relations={back}))
    kinds = {type(e).__name__ for e in ctx.emitted_events}
    assert "ForwardAuthProxySet" in kinds
    assert "InvalidForwardAuthConfigEvent" not in kinds


# --- gateway-metadata --------------------------------------------------------------------------


class MetadataReader(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.gateway = gateway_metadata.GatewayMetadataRequirer(self)


def test_a_controller_reads_the_gateway_metadata(kube):
    relation = testing.Relation("gateway-metadata", remote_app_name="kubeflow-notebooks")
    out = _settle_istio(relation)
    data = out.get_relation(relation.id).local_app_data

    back = testing.Relation(
        "gateway-metadata",
        interface="gateway_metadata",
        remote_app_name="istio",
        remote_app_data=dict(data),
    )
    meta = {"name": "reader", "requires": {"gateway-metadata": {"interface": "gateway_metadata"}}}
    ctx = testing.Context(MetadataReader, meta=meta)
    with ctx(ctx.on.update_status(), testing.State(relations={back})) as manager:
        metadata = manager.charm.gateway.get_metadata()
        manager.run()
    assert metadata == gateway_metadata.GatewayMetadata(
        namespace=MODEL,
        gateway_name="kubeflow-gateway",
        deployment_name="istio-ingressgateway",
        service_account="istio-ingressgateway",
    )


# --- ingress v2 ------------------------------------------------------------------------------


def test_an_ingress_v2_requirer_as_the_spec_shows_is_served(kube):
    # Encoded as canonical/charm-relation-interfaces interfaces/ingress/v2/README.md
    # (at 4cf84d19) shows it: every value JSON text, strings with their quotes, the
    # port a JSON number. The spec's example names ("model_name", "app_name") are not
    # Juju names, so real ones stand in.
    relation = testing.Relation(
        "ingress",
        interface="ingress",
        remote_app_name="grafana",
        remote_app_data={"model": '"kubeflow"', "name": '"grafana"', "port": "4242"},
        remote_units_data={
            0: {"host": '"grafana-0.grafana-endpoints.kubeflow.svc.cluster.local"'}
        },
    )
    out = _settle_istio(relation, _provider_with_login())
    assert out.unit_status.name == "active", out.unit_status
    answer = out.get_relation(relation.id).local_app_data
    # The provider's answer as the spec encodes it: {"url": ...} as JSON text.
    import json

    assert json.loads(answer["ingress"]) == {
        "url": "http://istio-ingressgateway.kubeflow.svc.cluster.local/kubeflow-grafana"
    }
    assert set(virtual_services(kube)) == {"/kubeflow-grafana"}
