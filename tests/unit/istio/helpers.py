"""Building blocks of the istio charm's unit tests: states, the fake cluster, certificates."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ops
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from ops import testing

from kubeflow_interfaces import ingress, ingress_auth

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


def route(
    app: str,
    prefix: str,
    *,
    auth: bool = True,
    port: int = 8080,
    rewrite: str | None = "/",
    **kw: Any,
) -> testing.Relation:
    """An ingress relation with a route asked for."""
    return ingress.relation_for_provider(
        prefix=prefix,
        service=app,
        port=port,
        rewrite=rewrite,
        auth=auth,
        remote_app_name=app,
        **kw,
    )


def auth_relation(**kwargs: Any) -> testing.Relation:
    return ingress_auth.relation_for_requirer(**kwargs)


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


def urls(out: testing.State) -> dict[str, str | None]:
    """The URL published to each ingress requirer, by app."""
    return {
        r.remote_app_name: r.local_app_data.get("url")
        for r in out.relations
        if isinstance(r, testing.Relation) and r.endpoint == "ingress"
    }


def virtual_services(fake: FakeKubernetes) -> dict[str, dict[str, Any]]:
    """Served routes in the fake cluster, by prefix."""
    out = {}
    for vs in fake.of_kind("VirtualService"):
        for http in vs["spec"]["http"]:
            for match in http["match"]:
                out[match["uri"]["prefix"]] = vs
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
