"""Building blocks of the istio charm's unit tests: states, the fake cluster, certificates."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import ops
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from ops import testing

CHARM = load_charm("istio")
istiod = CHARM.istiod  # the charm's workload module, as the charm imported it

MODEL = "kubeflow"
PEERS = "istio-peers"


# Where the container's files live for a test (set per test by conftest): folders that
# outlive a hook, as the container's own filesystem does in a pod.
FILES: dict[str, Path] = {}
FOLDERS = ("/etc/istio", "/var/lib/istio", "/var/run/secrets/istiod", "/etc/cacerts")


def container(*, can_connect: bool = True) -> testing.Container:
    """The istiod container, before the charm configured it."""
    mounts = {}
    if "root" in FILES:
        for folder in FOLDERS:
            source = FILES["root"] / folder.strip("/").replace("/", "_")
            source.mkdir(parents=True, exist_ok=True)
            mounts[folder] = testing.Mount(location=folder, source=source)
    return testing.Container(istiod.CONTAINER, can_connect=can_connect, mounts=mounts)


def checks_up(out: testing.State) -> testing.State:
    """Pebble reports istiod's ready check up, as it does once istiod serves."""
    c = out.get_container(istiod.CONTAINER)
    info = testing.CheckInfo(
        istiod.READY_CHECK, level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
    )
    ready = dataclasses.replace(c, check_infos=frozenset({info}))
    return dataclasses.replace(out, containers={ready})


def peers(**local_app_data: str) -> testing.PeerRelation:
    return testing.PeerRelation(PEERS, local_app_data=local_app_data)


def state(**kwargs: Any) -> testing.State:
    """A leader with its container and peer relation, in model `kubeflow`."""
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": {container()},
        "relations": {peers()},
        "model": testing.Model(name=MODEL),
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def route_config(
    app: str,
    prefix: str,
    *,
    port: int = 8080,
    rewrite: str | None = None,
    exact: bool = False,
    listener_port: int = 80,
    model: str = MODEL,
) -> str:
    """A requirer's `config`, as charmlibs-interfaces-istio-ingress-route serialises it."""
    from charmlibs.interfaces import istio_ingress_route as lib

    listener = lib.Listener(port=listener_port, protocol=lib.ProtocolType.HTTP)
    path_type = lib.HTTPPathMatchType.Exact if exact else lib.HTTPPathMatchType.PathPrefix
    filters = None
    if rewrite is not None:
        modifier = lib.PathModifier(type=lib.PathModifierType.ReplacePrefixMatch, value=rewrite)
        filters = [lib.URLRewriteFilter(urlRewrite=lib.URLRewriteSpec(path=modifier))]
    config = lib.IstioIngressRouteConfig(
        model=model,
        listeners=[listener],
        http_routes=[
            lib.HTTPRoute(
                name="http-ingress",
                listener=listener,
                matches=[lib.HTTPRouteMatch(path=lib.HTTPPathMatch(type=path_type, value=prefix))],
                filters=filters,
                backends=[lib.BackendRef(service=app, port=port)],
            )
        ],
    )
    return config.model_dump_json()


def route(
    app: str,
    prefix: str,
    *,
    auth: bool = True,
    port: int = 8080,
    rewrite: str | None = None,
    exact: bool = False,
    **kw: Any,
) -> testing.Relation:
    """An istio-ingress-route relation (authenticated or not) with a route asked for."""
    endpoint = "istio-ingress-route" if auth else "istio-ingress-route-unauthenticated"
    config = route_config(app, prefix, port=port, rewrite=rewrite, exact=exact)
    return testing.Relation(
        endpoint,
        interface="istio_ingress_route",
        remote_app_name=app,
        remote_app_data={"config": config},
        **kw,
    )


def auth_relation(
    *,
    address: str = "http://oidc-gateway.kubeflow.svc.cluster.local:4180",
    headers: tuple[str, ...] = ("kubeflow-userid", "kubeflow-groups"),
    user_header: str | None = None,
    user_prefix: str | None = None,
    **kwargs: Any,
) -> testing.Relation:
    """A forward-auth relation as the login provider writes it (JSON lists, as the library)."""
    data = {
        "decisions_address": address,
        "app_names": json.dumps(["dashboard"]),
        "headers": json.dumps(list(headers)),
    }
    if user_header is not None:
        data["kubeflow_user_header"] = json.dumps(user_header)
    if user_prefix is not None:
        data["kubeflow_user_prefix"] = json.dumps(user_prefix)
    kwargs.setdefault("remote_app_name", "oidc-gateway")
    return testing.Relation(
        "forward-auth", interface="forward_auth", remote_app_data=data, **kwargs
    )


def with_relations(base: testing.State, *relations: testing.Relation) -> testing.State:
    return dataclasses.replace(base, relations=set(base.relations) | set(relations))


def replace_relation(base: testing.State, relation: testing.RelationBase) -> testing.State:
    others = {r for r in base.relations if r.id != relation.id}
    return dataclasses.replace(base, relations=others | {relation})


def settle(ctx: testing.Context, base: testing.State, times: int = 2) -> testing.State:
    """Run config-changed, istiod comes up, then update-status: as a model settles."""
    out = checks_up(ctx.run(ctx.on.config_changed(), base))
    for _ in range(times - 1):
        out = ctx.run(ctx.on.update_status(), out)
    return out


ROUTE_ENDPOINTS = ("istio-ingress-route", "istio-ingress-route-unauthenticated")


def urls(out: testing.State) -> dict[str, str | None]:
    """Where each route requirer is told it is served (scheme and host), by app."""
    found: dict[str, str | None] = {}
    for r in out.relations:
        if isinstance(r, testing.Relation) and r.endpoint in ROUTE_ENDPOINTS:
            host = r.local_app_data.get("external_host")
            tls = r.local_app_data.get("tls_enabled") == "True"
            found[r.remote_app_name] = f"{'https' if tls else 'http'}://{host}" if host else None
    return found


def virtual_services(fake: FakeKubernetes) -> dict[str, dict[str, Any]]:
    """Served HTTP rules in the fake cluster, by the Gateway API path they serve.

    A PathPrefix `/a` is served by two Istio matches, `/a/` and exactly `/a`:
    both are filed under `/a`.
    """
    out: dict[str, dict[str, Any]] = {}
    for vs in fake.of_kind("VirtualService"):
        for http in vs["spec"]["http"]:
            for match in http["match"]:
                uri = match["uri"]
                path = uri.get("exact") or uri["prefix"].rstrip("/") or "/"
                out.setdefault(path, http)
    return out


def certificates_secret(out: testing.State) -> testing.Secret:
    (secret,) = [s for s in out.secrets if s.label == "istiod-certificates"]
    return secret


def file_text(ctx: testing.Context, out: testing.State, path: str) -> str:
    """A file the charm wrote into the istiod container."""
    c = out.get_container(istiod.CONTAINER)
    for folder, mount in c.mounts.items():
        if path.startswith(folder + "/"):
            return (Path(mount.source) / path[len(folder) + 1 :]).read_text()
    return (c.get_filesystem(ctx) / path.lstrip("/")).read_text()
