"""Objects that would give profile users a token or the node are refused, naming the app.

Facts encoded here:
- a Secret of type `kubernetes.io/service-account-token` is filled by Kubernetes
  with a token of the service account it names (kubernetes/api v0.32.3,
  core/v1/types.go:7434);
- a PodDefault's `volumes`, `initContainers` and `sidecars` are added to each
  pod it selects (kubeflow/kubeflow v1.10.0,
  components/admission-webhook/pkg/apis/settings/v1alpha1/poddefault_types.go:43,47,67;
  components/admission-webhook/main.go, mergeVolumes and mergeContainers);
- a volume's `hostPath` and a container's `securityContext.privileged` are
  those of kubernetes/api v0.32.3 core/v1/types.go:59 and 7709.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from ops import testing
from unit.resource_dispatcher.helpers import (
    CHARM,
    add_namespace,
    changed_secret,
    names,
    offer,
    pod_default,
    replace_secret,
    secret_object,
    state,
)

dispatch = CHARM.dispatch


def _token_secret(name: str = "kfp-token") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "annotations": {"kubernetes.io/service-account.name": "default-editor"},
        },
        "type": "kubernetes.io/service-account-token",
    }


def _with_spec(body: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**body, "spec": {**body["spec"], **spec}}


def _host_path_pod_default() -> dict[str, Any]:
    return _with_spec(
        pod_default("access-kfp"),
        volumes=[
            {"name": "config", "configMap": {"name": "kfp-launcher"}},
            {"name": "node-root", "hostPath": {"path": "/", "type": "Directory"}},
        ],
        volumeMounts=[{"name": "node-root", "mountPath": "/host"}],
    )


def _privileged(field: str) -> dict[str, Any]:
    container = {
        "name": "helper",
        "image": "busybox",
        "securityContext": {"privileged": True},
    }
    return _with_spec(pod_default("access-kfp"), **{field: [container]})


DANGEROUS = [
    pytest.param(
        "secrets",
        _token_secret(),
        "kfp's Secret kfp-token is a service account token "
        "(type kubernetes.io/service-account-token)",
        id="service-account-token",
    ),
    pytest.param(
        "pod-defaults",
        _host_path_pod_default(),
        "kfp's PodDefault access-kfp mounts a hostPath volume (node-root)",
        id="hostPath",
    ),
    pytest.param(
        "pod-defaults",
        _privileged("sidecars"),
        "kfp's PodDefault access-kfp adds a privileged container (helper)",
        id="privileged-sidecar",
    ),
    pytest.param(
        "pod-defaults",
        _privileged("initContainers"),
        "kfp's PodDefault access-kfp adds a privileged container (helper)",
        id="privileged-init-container",
    ),
]


def _safe(endpoint: str) -> dict[str, Any]:
    if endpoint == "secrets":
        return secret_object("kfp-safe", key="first")
    return pod_default("kfp-safe", {"A": "first"})


def _kind(endpoint: str) -> str:
    return "Secret" if endpoint == "secrets" else "PodDefault"


@pytest.mark.parametrize(("endpoint", "body", "message"), DANGEROUS)
def test_dangerous_object_blocks_its_app_only(ctx, kube, endpoint, body, message):
    add_namespace(kube, "team-a")
    kfp, kfp_secret = offer(endpoint, "kfp", [_safe(endpoint)])
    minio, minio_secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    settled = ctx.run(
        ctx.on.relation_changed(kfp), state(kfp, minio, secrets={kfp_secret, minio_secret})
    )
    kind = _kind(endpoint)
    before = kube.get(kind, "kfp-safe", "team-a")
    assert before is not None

    # kfp now sends the dangerous object beside a changed safe one; a profile appears.
    changed = (
        secret_object("kfp-safe", key="second")
        if endpoint == "secrets"
        else pod_default("kfp-safe", {"A": "second"})
    )
    newer = changed_secret(kfp_secret, [changed, body])
    add_namespace(kube, "team-b")
    out = ctx.run(ctx.on.secret_changed(newer), replace_secret(settled, newer))

    assert out.unit_status == testing.BlockedStatus(f"not dispatched: {message}")
    assert out.app_status == out.unit_status
    # kfp's objects are as they were: nothing new, nothing changed, nothing in team-b.
    kfp_objects = {n for n in names(kube, kind) if n[1] != "minio-credentials"}
    assert kfp_objects == {("team-a", "kfp-safe")}
    assert kube.get(kind, "kfp-safe", "team-a") == before
    # minio is still served, in the new profile too.
    assert names(kube, "Secret") >= {
        ("team-a", "minio-credentials"),
        ("team-b", "minio-credentials"),
    }


@pytest.mark.parametrize(("endpoint", "body", "message"), DANGEROUS)
def test_dangerous_object_is_refused_on_first_sight(ctx, kube, endpoint, body, message):
    add_namespace(kube, "team-a")
    relation, secret = offer(endpoint, "kfp", [body])

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert out.unit_status == testing.BlockedStatus(f"not dispatched: {message}")
    assert kube.of_kind(_kind(endpoint)) == []


def test_fixing_the_object_lifts_the_block(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "kfp", [_token_secret()])
    blocked = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    assert isinstance(blocked.unit_status, testing.BlockedStatus)

    fixed = changed_secret(secret, [secret_object("kfp-token")])
    out = ctx.run(ctx.on.secret_changed(fixed), replace_secret(blocked, fixed))

    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 1 profile namespace(s)")
    assert names(kube, "Secret") == {("team-a", "kfp-token")}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {**secret_object("registry"), "type": "kubernetes.io/dockerconfigjson"},
            id="another-secret-type",
        ),
        pytest.param(
            _with_spec(
                pod_default("mounts"),
                volumes=[{"name": "creds", "secret": {"secretName": "minio-credentials"}}],
            ),
            id="secret-volume",
        ),
        pytest.param(
            _with_spec(
                pod_default("helper"),
                sidecars=[
                    {
                        "name": "helper",
                        "image": "busybox",
                        "securityContext": {"privileged": False},
                    }
                ],
            ),
            id="unprivileged-sidecar",
        ),
    ],
)
def test_ordinary_objects_are_not_refused(body):
    manifest = dispatch.Manifest("kfp", body)
    endpoint = "secrets" if body["kind"] == "Secret" else "pod-defaults"

    plan = dispatch.plan([dispatch.Offer(endpoint, "kfp", (manifest,))])

    assert dispatch.danger(manifest) is None
    assert plan.refused == {}
    assert plan.objects == {"kfp": (manifest,)}


def test_a_dangerous_object_on_one_endpoint_holds_the_app_on_every_endpoint():
    safe = dispatch.Manifest("kfp", secret_object("kfp-safe"))
    bad = dispatch.Manifest("kfp", _host_path_pod_default())
    other = dispatch.Manifest("minio", secret_object("minio-credentials"))

    plan = dispatch.plan(
        [
            dispatch.Offer("secrets", "kfp", (safe,)),
            dispatch.Offer("pod-defaults", "kfp", (bad,)),
            dispatch.Offer("secrets", "minio", (other,)),
        ]
    )

    assert plan.refused == {
        "kfp": "kfp's PodDefault access-kfp mounts a hostPath volume (node-root)"
    }
    assert plan.objects == {"minio": (other,)}


def test_the_charm_accepts_no_kind_that_carries_rights_or_a_pod_template():
    kinds = {kind for _, kind in dispatch.ENDPOINT_KINDS.values()}
    assert kinds == {"Secret", "PodDefault", "ServiceAccount", "ConfigMap"}
    assert {k.kind for k in CHARM.DISPATCHED_KINDS} == kinds


def test_blocked_state_keeps_the_stored_record(ctx, kube):
    """A refused app stays in the record of applied apps, so its objects go with its relation."""
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "kfp", [secret_object("kfp-safe")])
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    newer = changed_secret(secret, [_token_secret()])
    blocked = ctx.run(ctx.on.secret_changed(newer), replace_secret(settled, newer))
    assert isinstance(blocked.unit_status, testing.BlockedStatus)

    out = ctx.run(ctx.on.relation_broken(blocked.get_relation(relation.id)), blocked)
    gone = dataclasses.replace(out, relations={r for r in out.relations if r.id != relation.id})
    ctx.run(ctx.on.update_status(), gone)
    assert kube.of_kind("Secret") == []
