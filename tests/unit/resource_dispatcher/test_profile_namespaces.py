"""The dispatcher tells every requirer which profile namespaces exist, and writes only changes."""

from __future__ import annotations

import dataclasses
import json

from ops import testing
from unit.resource_dispatcher.helpers import (
    CHARM,
    add_namespace,
    containers,
    names,
    notice,
    offer,
    pinned,
    secret_object,
    state,
)

from kubeflow_charms.kubernetes import KubernetesError
from kubeflow_interfaces import kubernetes_manifests

KEY = kubernetes_manifests.NAMESPACES_FIELD


def _published(out: testing.State, *relations: testing.Relation) -> list[list[str] | None]:
    values = [out.get_relation(r.id).local_app_data.get(KEY) for r in relations]
    return [None if v is None else json.loads(v) for v in values]


def _wake(ctx: testing.Context, out: testing.State, name: str) -> testing.State:
    woken = dataclasses.replace(out, containers=containers(notices=(notice(name),)))
    container = woken.get_container("namespace-watch")
    return ctx.run(ctx.on.pebble_custom_notice(container, container.notices[0]), woken)


def test_every_relation_of_every_endpoint_gets_the_profile_namespaces(ctx, kube):
    add_namespace(kube, "team-b")
    add_namespace(kube, "team-a")
    add_namespace(kube, "kube-system", labels={})
    minio, minio_secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    kfp, kfp_secret = offer("secrets", "kfp", [secret_object("kfp-token")])
    pod_defaults, pd_secret = offer("pod-defaults", "minio", [])
    service_accounts = testing.Relation(
        "service-accounts", interface="kubernetes_manifest", remote_app_name="kfp"
    )
    # A requirer that has sent nothing yet (waiting for the list) gets it too.
    config_maps = testing.Relation(
        "config-maps", interface="kubernetes_manifest", remote_app_name="mlflow-server"
    )
    relations = (minio, kfp, pod_defaults, service_accounts, config_maps)
    base = state(*relations, secrets={minio_secret, kfp_secret, pd_secret})

    out = ctx.run(ctx.on.relation_changed(config_maps), base)

    assert _published(out, *relations) == [["team-a", "team-b"]] * len(relations)
    # The dispatcher writes nothing else to its side of the relations.
    assert {k for r in relations for k in out.get_relation(r.id).local_app_data} == {KEY}


def test_the_list_follows_namespaces_coming_and_going(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    assert _published(out, relation) == [["team-a"]]

    add_namespace(kube, "team-c")
    out = _wake(ctx, out, "team-c")
    assert _published(out, relation) == [["team-a", "team-c"]]

    # team-a stops being a profile; the watch reports the change.
    kube.objects[("v1", "namespaces", None, "team-a")].body["metadata"]["labels"] = {}
    out = _wake(ctx, out, "team-a")
    assert _published(out, relation) == [["team-c"]]


def test_a_settled_hook_writes_nothing(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    writes = list(kube.writes)

    for event in (
        ctx.on.update_status(),
        ctx.on.relation_changed(settled.get_relation(relation.id)),
    ):
        again = ctx.run(event, settled)
        assert again.relations == settled.relations
    assert kube.writes == writes


def test_a_non_leader_writes_nothing(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])

    out = ctx.run(
        ctx.on.relation_changed(relation), state(relation, secrets={secret}, leader=False)
    )

    assert _published(out, relation) == [None]


def test_an_unreachable_cluster_leaves_the_list_as_it_was(ctx, kube, monkeypatch):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    def unreachable() -> list[str]:
        raise KubernetesError("the Kubernetes API is unreachable: timed out")

    monkeypatch.setattr(CHARM, "profile_namespaces", unreachable)
    out = ctx.run(ctx.on.relation_changed(settled.get_relation(relation.id)), settled)

    assert out.unit_status.name != "active"
    assert out.relations == settled.relations


def test_objects_pinned_per_profile_reach_only_profiles(ctx, kube):
    """A requirer pins one object per namespace it was told of; stale or foreign pins stay out."""
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    add_namespace(kube, "kube-system", labels={})
    relation, secret = offer("secrets", "minio", [])
    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    told = _published(out, relation)[0]
    assert told == ["team-a", "team-b"]

    # team-b stops being a profile before the requirer's next objects arrive.
    kube.objects[("v1", "namespaces", None, "team-b")].body["metadata"]["labels"] = {}
    objects = [pinned(secret_object(f"creds-{ns}"), ns) for ns in [*told, "kube-system"]]
    newer, newer_secret = offer("secrets", "minio", objects)
    newer = dataclasses.replace(newer, id=relation.id, local_app_data={KEY: json.dumps(told)})
    out = ctx.run(
        ctx.on.relation_changed(newer),
        dataclasses.replace(
            out,
            relations=(out.relations - {out.get_relation(relation.id)}) | {newer},
            secrets=out.secrets | {newer_secret},
        ),
    )

    assert names(kube, "Secret") == {("team-a", "creds-team-a")}
    assert _published(out, relation) == [["team-a"]]
