"""`kubernetes_manifest`: Canonical's requirers to our dispatcher, our minio to their dispatcher.

Canonical publishes the interface's library only on Charmhub (it is fetched
by charmcraft, not installed from PyPI), so both sides here are built from
its wire format, read from:

- canonical/resource-dispatcher @ 8b655320cd18bfef63aa754fd9905a2c1ed91268,
  `lib/charms/resource_dispatcher/v0/kubernetes_manifests.py` (LIBPATCH 2):
  the requirer writes to its application databag `kubernetes_manifests` (the
  URI of a secret granted to the relation) and `is_secret: "true"`, the
  secret's content key `manifests` holding `json.dumps` of the list of
  objects; the provider reads the secret when `is_secret` is `"true"`, and
  otherwise `json.loads` the `kubernetes_manifests` value itself (the form
  LIBPATCH 1 requirers write, at d76732e^ of the same file). `src/charm.py`
  there writes each object to `<folder>/<metadata.namespace or _global>/
  <metadata.name>.yaml`, refusing two with the same namespace and name.
  The library, lines 348-477: their requirer (`KubernetesManifestRequirerWrapper.
  send_data`, which `KubernetesManifestsRequirer` calls) touches only its own
  application databag and reads nothing the provider writes; their provider
  (lines 174-347) reads the requirer's databag and writes nothing to its own,
  nor does their `src/charm.py`.
  So the `profile-namespaces` key our dispatcher adds is never read by their
  requirers, and our requirers related to their dispatcher find no list.
- canonical/resource-dispatcher-image @ 5d752a4dfcd8f90db580565898a8325c210e9a4b,
  `resource_dispatcher/src/server.py`: for each namespace carrying the
  target label, every file is rendered as a Jinja2 template with
  `NAMESPACE`, loaded as YAML, skipped when pinned to another namespace, and
  placed in the namespace.
- canonical/kfp-operators @ bbc97a3475fcd1295c59d1fd9b88567956e96492,
  `charms/kfp-profile-controller` (library at LIBPATCH 2, endpoints
  `secrets` and `config-maps`, templates `src/templates/minio_secret.yaml.j2`
  and `kfp_launcher_configmap.yaml.j2`).
- canonical/mlflow-operator @ 17cfd547f10e4ed94818b7f5f8f641f99320e957
  (library at LIBPATCH 1, endpoints `secrets` and `pod-defaults`, templates
  `src/secrets/mlflow-minio-artifact.j2` and
  `src/poddefaults/poddefault-minio.yaml.j2`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import jinja2
import ops
import pytest
import yaml
from charm_loader import load_charm
from ops import testing
from unit.resource_dispatcher.conftest import cluster_ca  # noqa: F401 - autouse fixture
from unit.resource_dispatcher.helpers import CHARM as DISPATCHER
from unit.resource_dispatcher.helpers import add_namespace, names, state

from kubeflow_interfaces import kubernetes_manifests
from kubeflow_interfaces.kubernetes_manifests import ManifestsRequirer

MINIO = load_charm("minio")
INTERFACE = "kubernetes_manifest"


# --- Canonical's requirers, as their library writes the databag ------------------------------


def kfp_secret(access_key: str, secret_key: str) -> dict[str, Any]:
    # kfp-profile-controller's minio_secret.yaml.j2: base64 `data`, no namespace.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlpipeline-minio-artifact"},
        "data": {
            "accesskey": base64.b64encode(access_key.encode()).decode(),
            "secretkey": base64.b64encode(secret_key.encode()).decode(),
        },
    }


def kfp_launcher() -> dict[str, Any]:
    # kfp-profile-controller's kfp_launcher_configmap.yaml.j2, rendered.
    providers = (
        "minio:\n  default:\n    endpoint: minio.kubeflow:9000\n    disableSSL: true\n"
        "    region: us-east-1\n    forcePathStyle: true\n    credentials:\n"
        "      fromEnv: false\n      secretRef:\n        secretName: mlpipeline-minio-artifact\n"
        "        accessKeyKey: accesskey\n        secretKeyKey: secretkey\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kfp-launcher"},
        "data": {"providers": providers},
    }


def in_secret(
    endpoint: str, app: str, objects: list[dict[str, Any]]
) -> tuple[testing.Relation, testing.Secret]:
    """LIBPATCH 2: the objects in a secret the requirer owns and grants to the relation."""
    secret = testing.Secret(tracked_content={"manifests": json.dumps(objects)})
    relation = testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=app,
        remote_app_data={"kubernetes_manifests": secret.id, "is_secret": "true"},
    )
    return relation, secret


def in_clear(endpoint: str, app: str, objects: list[dict[str, Any]]) -> testing.Relation:
    """LIBPATCH 1: the JSON list itself in the application databag."""
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=app,
        remote_app_data={"kubernetes_manifests": json.dumps(objects)},
    )


def test_kfp_profile_controller_secret_form_is_dispatched(kube):
    add_namespace(kube, "alice")
    add_namespace(kube, "bob")
    secrets, secret = in_secret(
        "secrets", "kfp-profile-controller", [kfp_secret("minio", "minio-secret")]
    )
    config_maps, config_secret = in_secret(
        "config-maps", "kfp-profile-controller", [kfp_launcher()]
    )
    ctx = testing.Context(DISPATCHER.ResourceDispatcherCharm)

    out = ctx.run(
        ctx.on.relation_changed(secrets),
        state(secrets, config_maps, secrets={secret, config_secret}),
    )

    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 2 profile namespace(s)")
    assert names(kube, "Secret") == {
        ("alice", "mlpipeline-minio-artifact"),
        ("bob", "mlpipeline-minio-artifact"),
    }
    assert names(kube, "ConfigMap") == {("alice", "kfp-launcher"), ("bob", "kfp-launcher")}
    applied = kube.get("Secret", "mlpipeline-minio-artifact", "alice")
    assert applied is not None
    assert base64.b64decode(applied["data"]["secretkey"]) == b"minio-secret"

    # Their requirer sets new content on the same secret: the new revision is dispatched.
    content = {"manifests": json.dumps([kfp_secret("minio", "rotated")])}
    newer = dataclasses.replace(secret, tracked_content=content, latest_content=content)
    rotated = dataclasses.replace(
        out, secrets={s for s in out.secrets if s.id != secret.id} | {newer}
    )
    ctx.run(ctx.on.secret_changed(newer), rotated)
    applied = kube.get("Secret", "mlpipeline-minio-artifact", "bob")
    assert applied is not None and base64.b64decode(applied["data"]["secretkey"]) == b"rotated"


def test_mlflow_server_clear_form_is_dispatched(kube):
    add_namespace(kube, "alice")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlflow-server-minio-artifact"},
        "stringData": {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio-secret"},
    }
    ref = {"name": "mlflow-server-minio-artifact", "optional": False}
    pod_default = {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": "mlflow-server-access-minio"},
        "spec": {
            "desc": "Allow access to Minio",
            "selector": {"matchLabels": {"access-minio": "true"}},
            "env": [
                {
                    "name": "AWS_ACCESS_KEY_ID",
                    "valueFrom": {"secretKeyRef": {**ref, "key": "AWS_ACCESS_KEY_ID"}},
                },
                {
                    "name": "AWS_SECRET_ACCESS_KEY",
                    "valueFrom": {"secretKeyRef": {**ref, "key": "AWS_SECRET_ACCESS_KEY"}},
                },
                {"name": "MINIO_ENDPOINT_URL", "value": "http://minio.kubeflow:9000"},
            ],
        },
    }
    secrets = in_clear("secrets", "mlflow-server", [secret])
    pod_defaults = in_clear("pod-defaults", "mlflow-server", [pod_default])
    ctx = testing.Context(DISPATCHER.ResourceDispatcherCharm)

    out = ctx.run(ctx.on.relation_changed(pod_defaults), state(secrets, pod_defaults))

    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 1 profile namespace(s)")
    assert names(kube, "Secret") == {("alice", "mlflow-server-minio-artifact")}
    assert names(kube, "PodDefault") == {("alice", "mlflow-server-access-minio")}


def test_pinned_object_reaches_only_its_namespace(kube):
    # A manifest with metadata.namespace goes to that namespace alone (resource-dispatcher #171).
    add_namespace(kube, "alice")
    add_namespace(kube, "bob")
    pinned = {**kfp_secret("a", "b"), "metadata": {"name": "for-alice", "namespace": "alice"}}
    secrets, secret = in_secret("secrets", "kfp-profile-controller", [pinned])
    ctx = testing.Context(DISPATCHER.ResourceDispatcherCharm)

    ctx.run(ctx.on.relation_changed(secrets), state(secrets, secrets={secret}))

    assert names(kube, "Secret") == {("alice", "for-alice")}


# --- our minio, read as Canonical's dispatcher reads it ------------------------------------------


def canonical_dispatcher_reads(data: dict[str, str], secrets: dict[str, dict[str, str]]) -> list:
    """What their provider's get_manifests() returns for one relation's application databag."""
    if data.get("is_secret", "false") == "true":
        return json.loads(secrets[data["kubernetes_manifests"]].get("manifests", "[]"))
    return json.loads(data.get("kubernetes_manifests", "[]"))


def canonical_files(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """Their charm's _sync_manifests: one YAML file per (namespace or _global, name)."""
    keys = [(m.get("metadata", {}).get("namespace"), m["metadata"]["name"]) for m in manifests]
    assert len(keys) == len(set(keys)), "their charm blocks on a repeated (namespace, name)"
    return {
        f"{ns or '_global'}/{name}.yaml": yaml.dump(m)
        for (ns, name), m in zip(keys, manifests, strict=True)
    }


def canonical_workload_renders(files: dict[str, str], namespace: str) -> list[dict[str, Any]]:
    """Their image's generate_manifests() for one target namespace."""
    out = []
    for text in files.values():
        manifest = yaml.safe_load(jinja2.Template(text).render(NAMESPACE=namespace))
        pinned = manifest.get("metadata", {}).get("namespace")
        if pinned and pinned != namespace:
            continue
        manifest.setdefault("metadata", {})["namespace"] = namespace
        out.append(manifest)
    return out


def test_minio_hands_canonical_dispatcher_every_object_in_a_secret():
    # Canonical's dispatcher sends no profile namespace list: no profile gets keys.
    secrets_rel = testing.Relation("secrets", interface=INTERFACE, remote_app_name="dispatcher")
    pod_defaults_rel = testing.Relation(
        "pod-defaults", interface=INTERFACE, remote_app_name="dispatcher"
    )
    ctx = testing.Context(MINIO.MinioCharm)
    base = testing.State(
        leader=True,
        relations={secrets_rel, pod_defaults_rel},
        containers={testing.Container("minio", can_connect=True)},
        storages={testing.Storage("data")},
        model=testing.Model(name="kubeflow"),
    )

    out = ctx.run(ctx.on.relation_created(secrets_rel), base)

    root = out.get_secret(label="root-credentials").latest_content or {}
    assert root.get("secret-key")
    contents = {s.id: dict(s.latest_content or {}) for s in out.secrets}
    read: dict[str, list[dict[str, Any]]] = {}
    for rel in (secrets_rel, pod_defaults_rel):
        data = dict(out.get_relation(rel.id).local_app_data)
        # Only the secret's id and the flag: no object, and no credential, in clear.
        assert set(data) == {"kubernetes_manifests", "is_secret"}
        for value in root.values():
            assert value not in json.dumps(data)
        assert rel.id in out.get_secret(id=data["kubernetes_manifests"]).remote_grants
        read[rel.endpoint] = canonical_dispatcher_reads(data, contents)
        # A dispatcher on LIBPATCH 1 reads the value as the JSON list: the URI is not JSON.
        with pytest.raises(json.JSONDecodeError):
            json.loads(data["kubernetes_manifests"])

    # No Secret, and never the root keys: the profiles wait for keys of their own.
    assert canonical_workload_renders(canonical_files(read["secrets"]), "alice") == []
    assert out.app_status == testing.ActiveStatus(
        "0 bucket request(s) served; profile credentials wait for the dispatcher's namespace list"
    )

    (pod_default,) = canonical_workload_renders(canonical_files(read["pod-defaults"]), "alice")
    assert pod_default["kind"] == "PodDefault"
    assert pod_default["metadata"] == {"name": "access-minio", "namespace": "alice"}
    assert pod_default["spec"]["envFrom"] == [{"secretRef": {"name": "minio-credentials"}}]


# --- the profile namespaces our dispatcher adds, next to Canonical's charms ----------------------

CANONICAL_KEYS = {"kubernetes_manifests", "is_secret"}


class CanonicalRequirer(ops.CharmBase):
    """What their requirer library does on each event, as its wire format says (see above).

    send_data: a secret labelled `manifest.<endpoint>.<relation id>` holding the
    objects, granted to the relation, and the two keys in its own databag. It
    looks at nothing the provider wrote.
    """

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on["secrets"].relation_changed, self._send)

    def _send(self, event: ops.RelationChangedEvent) -> None:
        content = {"manifests": json.dumps([kfp_secret("minio", "minio-secret")])}
        label = f"manifest.{event.relation.name}.{event.relation.id}"
        try:
            secret = self.model.get_secret(label=label)
            secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self.app.add_secret(content, label=label)
        secret.grant(event.relation)
        event.relation.data[self.app].update(
            {"kubernetes_manifests": secret.id or "", "is_secret": "true"}
        )


def test_canonical_requirer_is_served_beside_the_profile_namespaces_key(kube):
    add_namespace(kube, "alice")
    add_namespace(kube, "bob")
    secrets, secret = in_secret(
        "secrets", "kfp-profile-controller", [kfp_secret("minio", "minio-secret")]
    )
    ctx = testing.Context(DISPATCHER.ResourceDispatcherCharm)
    out = ctx.run(ctx.on.relation_changed(secrets), state(secrets, secrets={secret}))

    ours = dict(out.get_relation(secrets.id).local_app_data)
    assert ours == {"profile-namespaces": '["alice", "bob"]'}
    assert CANONICAL_KEYS.isdisjoint(ours)

    # Their requirer, with our key in the provider's databag, sends as it always does ...
    requirer = testing.Context(
        CanonicalRequirer,
        meta={
            "name": "kfp-profile-controller",
            "requires": {"secrets": {"interface": INTERFACE}},
        },
    )
    theirs = testing.Relation(
        "secrets",
        interface=INTERFACE,
        remote_app_name="resource-dispatcher",
        remote_app_data=ours,
    )
    sent = requirer.run(
        requirer.on.relation_changed(theirs), testing.State(leader=True, relations={theirs})
    )
    data = dict(sent.get_relation(theirs.id).local_app_data)
    assert set(data) == CANONICAL_KEYS
    (their_secret,) = sent.secrets

    # ... and the dispatcher dispatches what it sent.
    again = dataclasses.replace(out.get_relation(secrets.id), remote_app_data=data)
    handed = testing.Secret(tracked_content=their_secret.tracked_content, id=their_secret.id)
    result = ctx.run(
        ctx.on.relation_changed(again),
        dataclasses.replace(
            out,
            relations=(out.relations - {out.get_relation(secrets.id)}) | {again},
            secrets={s for s in out.secrets if s.id != secret.id} | {handed},
        ),
    )
    assert result.unit_status == testing.ActiveStatus(
        "1 app(s) dispatched to 2 profile namespace(s)"
    )
    assert names(kube, "Secret") == {
        ("alice", "mlpipeline-minio-artifact"),
        ("bob", "mlpipeline-minio-artifact"),
    }


class OurRequirer(ops.CharmBase):
    """Our requirer library reading the profile namespaces into its status."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._read)

    def _read(self, _: ops.EventBase) -> None:
        found = ManifestsRequirer(self, "secrets").profile_namespaces()
        self.unit.status = ops.ActiveStatus(
            "no list" if found is None else ",".join(sorted(found))
        )


def test_our_requirer_finds_no_list_beside_canonical_dispatcher():
    # Their provider writes nothing to its own databag: the relation's provider side is empty.
    ctx = testing.Context(
        OurRequirer, meta={"name": "minio", "requires": {"secrets": {"interface": INTERFACE}}}
    )
    canonical = kubernetes_manifests.relation_for_requirer(remote_app_name="dispatcher")
    ours = kubernetes_manifests.relation_for_requirer(
        remote_app_name="resource-dispatcher", namespaces=["alice"]
    )

    alone = ctx.run(ctx.on.update_status(), testing.State(relations={canonical}))
    both = ctx.run(ctx.on.update_status(), testing.State(relations={canonical, ours}))

    assert alone.unit_status == testing.ActiveStatus("no list")
    assert both.unit_status == testing.ActiveStatus("alice")
