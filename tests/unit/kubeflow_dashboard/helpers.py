"""Building blocks of the kubeflow-dashboard charm's unit tests: states and the fake cluster."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import ops
import pytest
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from ops import testing

from kubeflow_interfaces import dashboard_links, istio_ingress_route
from kubeflow_interfaces.dashboard_links import DashboardLink

CHARM = load_charm("kubeflow-dashboard")
services = sys.modules["dashboard_services"]  # the charm's workload module, as it imported it

profiles = sys.modules["profile_admin"]  # the charm's profile module, as it imported it


MODEL = "kubeflow"
APP = "kubeflow-dashboard"
PEERS = "dashboard-peers"
GATEWAY = "gateway-metadata"
CONTAINERS = services.CONTAINERS
# Where the bundle's istio charm runs its gateway, and as whom (its gateway-metadata).
ISTIO_MODEL = "istio-system-model"
GATEWAY_ACCOUNT = "istio-ingressgateway"
GATEWAY_PRINCIPAL = f"cluster.local/ns/{ISTIO_MODEL}/sa/{GATEWAY_ACCOUNT}"
# Users of the profile actions' tests.
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "Carol.Smith@example.com"


def containers(*, can_connect: bool = True) -> set[testing.Container]:
    return {testing.Container(name, can_connect=can_connect) for name in CONTAINERS}


def checks_up(out: testing.State) -> testing.State:
    """Pebble reports every ready check up, as it does once the services serve."""
    ready = set()
    for c in out.containers:
        if services.check_name(c.name) not in c.plan.checks:
            ready.add(c)  # not configured (yet): no check to report
            continue
        info = testing.CheckInfo(
            services.check_name(c.name),
            level=ops.pebble.CheckLevel.READY,
            status=ops.pebble.CheckStatus.UP,
        )
        ready.add(dataclasses.replace(c, check_infos=frozenset({info})))
    return dataclasses.replace(out, containers=ready)


def peers(**local_app_data: str) -> testing.PeerRelation:
    return testing.PeerRelation(PEERS, local_app_data=local_app_data)


def gateway_metadata(**fields: str) -> str:
    """The `metadata` value istio publishes, made by the ecosystem's own model.

    The wire format is charmlibs-interfaces-gateway-metadata's (1.0.1):
    GatewayMetadata.model_dump_json() under the app databag key `metadata`.
    """
    from charmlibs.interfaces.gateway_metadata import GatewayMetadata

    values = {
        "namespace": ISTIO_MODEL,
        "gateway_name": "kubeflow-gateway",
        "deployment_name": GATEWAY_ACCOUNT,
        "service_account": GATEWAY_ACCOUNT,
    }
    values.update(fields)
    return GatewayMetadata(**values).model_dump_json()


def gateway_relation(metadata: str | None = None, **kw: Any) -> testing.Relation:
    """The gateway-metadata relation, as istio fills it (or `metadata` as given)."""
    data = {"metadata": gateway_metadata() if metadata is None else metadata}
    return testing.Relation(
        GATEWAY, interface="gateway_metadata", remote_app_name="istio", remote_app_data=data, **kw
    )


def state(**kwargs: Any) -> testing.State:
    """A leader with its containers, peer and gateway-metadata relations, in model `kubeflow`."""
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": containers(),
        "model": testing.Model(name=MODEL),
    }
    defaults.update(kwargs)
    if "relations" not in defaults:
        defaults["relations"] = {peers(), gateway_relation()}
    return testing.State(**defaults)


def link(text: str, location: str = "menu", **kw: Any) -> DashboardLink:
    href = kw.pop("link", f"/{text.lower().replace(' ', '-')}/")
    return DashboardLink(text=text, link=href, location=location, **kw)  # type: ignore[arg-type]


def ui(app: str, *links: DashboardLink, **kw: Any) -> testing.Relation:
    return dashboard_links.relation_for_provider(list(links), remote_app_name=app, **kw)


def route_relation(**kw: Any) -> testing.Relation:
    """The dashboard's route as istio answers it: https://kf.example.com/."""
    kw.setdefault("external_host", "kf.example.com")
    kw.setdefault("tls_enabled", True)
    return istio_ingress_route.relation_for_requirer(**kw)


def with_relations(base: testing.State, *relations: testing.RelationBase) -> testing.State:
    return dataclasses.replace(base, relations=set(base.relations) | set(relations))


def settle(ctx: testing.Context, base: testing.State) -> testing.State:
    """config-changed, services come up, then update-status: as a model settles."""
    out = checks_up(ctx.run(ctx.on.config_changed(), base))
    return ctx.run(ctx.on.update_status(), out)


def peer_data(out: testing.State) -> dict[str, str]:
    (peer,) = [r for r in out.relations if r.endpoint == PEERS]
    return dict(peer.local_app_data)


def dashboard_config(kube: FakeKubernetes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dashboard ConfigMap's `links` and `settings` documents."""
    cm = kube.get("ConfigMap", f"{APP}-config", MODEL)
    assert cm is not None
    return json.loads(cm["data"]["links"]), json.loads(cm["data"]["settings"])


def profile_crd(kube: FakeKubernetes) -> None:
    """The Profile CRD, as the charm renders it (for action tests that start from it)."""
    from lightkube import codecs

    from kubeflow_charms.kubernetes import render

    api = kube.client()
    for obj in codecs.load_all_yaml(render(CHARM.TEMPLATES, ["crds.yaml.j2"], {})):
        api.apply(obj)


def istio_authorization_policy_crd(kube: FakeKubernetes) -> None:
    """Istio's AuthorizationPolicy kind, as the istio charm installs it."""
    from lightkube import codecs

    from kubeflow_charms.kubernetes import render

    istio_templates = CHARM.TEMPLATES.parent.parent.parent / "istio" / "src" / "templates"
    api = kube.client()
    for obj in codecs.load_all_yaml(render(istio_templates, ["crds.yaml.j2"], {})):
        if obj.spec.names.kind == "AuthorizationPolicy":
            api.apply(obj)


def namespace(kube: FakeKubernetes, name: str) -> None:
    """A profile namespace, as the profile controller makes it."""
    from lightkube.resources.core_v1 import Namespace

    kube.client().create(Namespace.from_dict({"metadata": {"name": name}}))


def snapshot(kube: FakeKubernetes) -> dict[Any, str]:
    """Every object in the fake cluster, to compare before and after."""
    return {k: repr(v.body) for k, v in kube.objects.items()}


def action_fails(
    ctx: testing.Context,
    kube: FakeKubernetes,
    action: str,
    message: str,
    base: testing.State | None = None,
    **params: Any,
) -> str:
    """Run an action that must fail with `message` in its message and change nothing."""
    before = snapshot(kube)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), base or state())
    assert message in failed.value.message
    assert snapshot(kube) == before
    return failed.value.message
