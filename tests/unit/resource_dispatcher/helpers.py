"""Building blocks of the resource dispatcher's unit tests: states, relations, the fake cluster."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from typing import Any

from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from ops import testing

from kubeflow_interfaces import kubernetes_manifests

CHARM = load_charm("resource-dispatcher")
webhook = CHARM.webhook
namespace_watch = CHARM.namespace_watch
watch_token = CHARM.watch_token

MODEL = "kubeflow"
PEERS = "dispatcher-peers"
WATCH_ACCOUNT = "resource-dispatcher-namespace-watch"
# What the charm container's own token volume holds as the cluster CA (any PEM will do).
CLUSTER_CA = "-----BEGIN CERTIFICATE-----\nY2x1c3Rlci1jYQ==\n-----END CERTIFICATE-----\n"
PROFILE = {"app.kubernetes.io/part-of": "kubeflow-profile"}


def add_namespace(fake: FakeKubernetes, name: str, labels: dict[str, str] | None = None) -> None:
    """A namespace in the fake cluster (a profile one unless labels say otherwise)."""
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Namespace

    meta = ObjectMeta(name=name, labels=PROFILE if labels is None else labels)
    fake.client().create(Namespace(metadata=meta))


def add_object(fake: FakeKubernetes, body: dict[str, Any]) -> None:
    """An object someone else put in the cluster (server-side apply as another manager)."""
    from lightkube import codecs

    fake.client(field_manager="someone-else").apply(codecs.from_dict(body))


def watch_mount() -> testing.Mount:
    """The watch-credentials storage where the namespace-watch container has it (a fresh dir)."""
    return testing.Mount(location=watch_token.TOKEN_DIR, source=tempfile.mkdtemp())


def containers(
    *, can_connect: bool = True, notices: tuple = (), mount: testing.Mount | None = None
) -> set[testing.Container]:
    mount = mount or watch_mount()
    return {
        testing.Container(webhook.CONTAINER, can_connect=can_connect),
        testing.Container(
            namespace_watch.CONTAINER,
            can_connect=can_connect,
            notices=notices,
            mounts={"watch-credentials": mount},
        ),
    }


def notice(name: str = "team-a") -> testing.Notice:
    return testing.Notice(key=namespace_watch.NOTICE_KEY, last_data={"name": name})


def peers(**local_app_data: str) -> testing.PeerRelation:
    return testing.PeerRelation(PEERS, local_app_data=local_app_data)


def state(*relations: testing.RelationBase, secrets: Any = (), **kwargs: Any) -> testing.State:
    """A leader with its containers and peer relation, in model `kubeflow`."""
    defaults: dict[str, Any] = {
        "leader": True,
        "containers": containers(),
        "relations": {peers(), *relations},
        "secrets": set(secrets),
        "model": testing.Model(name=MODEL),
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def offer(
    endpoint: str, app: str, objects: list[dict[str, Any]], **kwargs: Any
) -> tuple[testing.Relation, testing.Secret]:
    """A relation on `endpoint` from `app` with `objects`, and its secret."""
    return kubernetes_manifests.relation_for_provider(
        objects, endpoint, remote_app_name=app, **kwargs
    )


def relation_in_clear_for_provider(
    objects: list[dict[str, Any]], endpoint: str, app: str = "mlflow-server"
) -> testing.Relation:
    """A relation from `app` sending `objects` in clear, as older requirers do."""
    return kubernetes_manifests.relation_in_clear_for_provider(
        objects, endpoint, remote_app_name=app
    )


def secret_object(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": data or {"key": "value"},
    }


def pod_default(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": name},
        "spec": {
            "desc": f"{name} for notebooks",
            "selector": {"matchLabels": {name: "true"}},
            "env": [{"name": k, "value": v} for k, v in (env or {"A": "1"}).items()],
        },
    }


def service_account(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data or {"key": "value"},
    }


def pinned(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The object pinned to one namespace."""
    return {**body, "metadata": {**body["metadata"], "namespace": namespace}}


def changed_secret(secret: testing.Secret, objects: list[dict[str, Any]]) -> testing.Secret:
    """The same secret with a new revision holding `objects`."""
    content = {kubernetes_manifests.CONTENT_KEY: json.dumps(objects)}
    return dataclasses.replace(secret, tracked_content=content, latest_content=content)


def replace_secret(base: testing.State, secret: testing.Secret) -> testing.State:
    others = {s for s in base.secrets if s.id != secret.id}
    return dataclasses.replace(base, secrets=others | {secret})


def without_relation(base: testing.State, relation: testing.RelationBase) -> testing.State:
    return dataclasses.replace(base, relations={r for r in base.relations if r.id != relation.id})


def certificates_secret(out: testing.State) -> testing.Secret:
    (secret,) = [s for s in out.secrets if s.label == "webhook-certificates"]
    return secret


def names(fake: FakeKubernetes, kind: str) -> set[tuple[str | None, str]]:
    """(namespace, name) of every object of a kind in the fake cluster."""
    return {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in fake.of_kind(kind)}
