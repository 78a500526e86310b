"""Objects reach every profile namespace, follow the relations, and never leave it."""

from __future__ import annotations

import dataclasses

import pytest
from ops import testing
from unit.resource_dispatcher.helpers import (
    CHARM,
    MODEL,
    WATCH_ACCOUNT,
    add_namespace,
    add_object,
    changed_secret,
    config_map,
    containers,
    names,
    notice,
    offer,
    pinned,
    pod_default,
    relation_in_clear_for_provider,
    replace_secret,
    secret_object,
    service_account,
    state,
    without_relation,
)


def _minio(objects=None):
    return offer("secrets", "minio", objects or [secret_object("minio-credentials")])


def test_relation_changed_puts_objects_in_every_profile_namespace(ctx, kube):
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    relation, secret = _minio()

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert names(kube, "Secret") == {
        ("team-a", "minio-credentials"),
        ("team-b", "minio-credentials"),
    }
    obj = kube.get("Secret", "minio-credentials", "team-a")
    assert obj is not None and obj["stringData"] == {"key": "value"}
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 2 profile namespace(s)")
    # The CRD and the webhook are in place, and passed the schemas (checked by the fixture).
    assert names(kube, "CustomResourceDefinition") == {(None, "poddefaults.kubeflow.org")}
    assert len(kube.of_kind("MutatingWebhookConfiguration")) == 1


def test_unlabelled_namespaces_are_never_touched(ctx, kube):
    add_namespace(kube, "team-a")
    add_namespace(kube, "kube-system", labels={})
    add_namespace(kube, "other", labels={"app.kubernetes.io/part-of": "something-else"})
    add_object(
        kube,
        {
            **secret_object("minio-credentials"),
            "metadata": {"name": "minio-credentials", "namespace": "other"},
        },
    )
    relation, secret = _minio()

    ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert names(kube, "Secret") == {
        ("team-a", "minio-credentials"),
        ("other", "minio-credentials"),
    }
    untouched = kube.get("Secret", "minio-credentials", "other")
    assert untouched is not None and "labels" not in untouched["metadata"]
    touched = {w[2] for w in kube.writes if w[0] == "delete"}
    assert touched == set()


def test_new_profile_namespace_gets_the_objects_on_the_watch_notice(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = _minio()
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    add_namespace(kube, "team-b")
    woken = dataclasses.replace(settled, containers=containers(notices=(notice("team-b"),)))
    container = woken.get_container("namespace-watch")
    out = ctx.run(ctx.on.pebble_custom_notice(container, container.notices[0]), woken)

    assert ("team-b", "minio-credentials") in names(kube, "Secret")
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 2 profile namespace(s)")


def test_changed_manifests_update_every_namespace(ctx, kube):
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    relation, secret = offer("pod-defaults", "minio", [pod_default("access-minio", {"A": "1"})])
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    newer = changed_secret(
        secret, [pod_default("access-minio", {"A": "2"}), pod_default("access-minio-ro")]
    )
    ctx.run(ctx.on.secret_changed(newer), replace_secret(settled, newer))

    for ns in ("team-a", "team-b"):
        obj = kube.get("PodDefault", "access-minio", ns)
        assert obj is not None and obj["spec"]["env"] == [{"name": "A", "value": "2"}]
    assert names(kube, "PodDefault") == {
        (ns, n) for ns in ("team-a", "team-b") for n in ("access-minio", "access-minio-ro")
    }


def test_dropped_object_is_pruned(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer(
        "service-accounts", "kfp", [service_account("a"), service_account("b")]
    )
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    newer = changed_secret(secret, [service_account("a")])
    ctx.run(ctx.on.secret_changed(newer), replace_secret(settled, newer))

    assert names(kube, "ServiceAccount") - {(MODEL, WATCH_ACCOUNT)} == {("team-a", "a")}


def test_removed_relation_removes_its_objects(ctx, kube):
    add_namespace(kube, "team-a")
    minio, minio_secret = _minio()
    kfp, kfp_secret = offer("secrets", "kfp", [secret_object("kfp-token")])
    base = state(minio, kfp, secrets={minio_secret, kfp_secret})
    settled = ctx.run(ctx.on.relation_changed(minio), base)
    assert names(kube, "Secret") == {("team-a", "minio-credentials"), ("team-a", "kfp-token")}

    out = ctx.run(ctx.on.relation_broken(settled.get_relation(minio.id)), settled)

    assert names(kube, "Secret") == {("team-a", "kfp-token")}
    peer = out.get_relation(next(r for r in out.relations if r.endpoint == "dispatcher-peers").id)
    assert peer.local_app_data["applied-apps"] == '["kfp"]'
    # Gone for good: a later hook has nothing more to do.
    writes = len(kube.writes)
    ctx.run(ctx.on.update_status(), without_relation(out, minio))
    assert len(kube.writes) == writes


def test_a_leader_scaled_away_leaves_every_namespace_as_it_is(kube):
    # On Kubernetes the highest-numbered unit goes; Juju runs relation-departed and
    # relation-broken on it for every relation it was in, and it still holds the lease.
    ctx = testing.Context(CHARM.ResourceDispatcherCharm, unit_id=1)
    add_namespace(kube, "team-a")
    minio, minio_secret = _minio()
    settled = ctx.run(
        ctx.on.relation_changed(minio), state(minio, secrets={minio_secret}, planned_units=2)
    )
    assert names(kube, "Secret") == {("team-a", "minio-credentials")}
    leaving = dataclasses.replace(settled, planned_units=1)
    writes = len(kube.writes)

    relation = leaving.get_relation(minio.id)
    ctx.run(ctx.on.relation_departed(relation, remote_unit=0, departing_unit=1), leaving)
    out = ctx.run(ctx.on.relation_broken(relation), leaving)

    assert names(kube, "Secret") == {("team-a", "minio-credentials")}
    assert len(kube.writes) == writes
    assert out.relations == leaving.relations


def test_conflicting_names_block_and_neither_is_applied(ctx, kube):
    add_namespace(kube, "team-a")
    minio, minio_secret = _minio([secret_object("shared", key="minio")])
    base = state(minio, secrets={minio_secret})
    settled = ctx.run(ctx.on.relation_changed(minio), base)

    mlflow, mlflow_secret = offer("secrets", "mlflow", [secret_object("shared", key="mlflow")])
    both = dataclasses.replace(
        settled,
        relations=settled.relations | {mlflow},
        secrets=settled.secrets | {mlflow_secret},
    )
    kfp, kfp_secret = offer("secrets", "kfp", [secret_object("kfp-token")])
    both = dataclasses.replace(
        both, relations=both.relations | {kfp}, secrets=both.secrets | {kfp_secret}
    )
    add_namespace(kube, "team-b")
    out = ctx.run(ctx.on.relation_changed(mlflow), both)

    assert out.unit_status == testing.BlockedStatus(
        "not dispatched: minio and mlflow both send Secret shared"
    )
    assert out.app_status == out.unit_status
    # What minio had stays as it was; mlflow's never lands; kfp is unaffected.
    kept = kube.get("Secret", "shared", "team-a")
    assert kept is not None and kept["stringData"] == {"key": "minio"}
    assert names(kube, "Secret") == {
        ("team-a", "shared"),
        ("team-a", "kfp-token"),
        ("team-b", "kfp-token"),
    }


def test_wrong_kind_is_refused_naming_the_app(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "kfp", [service_account("sneaky")])

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert out.unit_status == testing.BlockedStatus(
        "not dispatched: kfp sent v1 ServiceAccount on secrets (only Secret is accepted there)"
    )
    assert names(kube, "ServiceAccount") == {(MODEL, WATCH_ACCOUNT)}


def test_pinned_object_goes_only_to_its_profile_namespace(ctx, kube):
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    add_namespace(kube, "kube-system", labels={})
    objects = [
        pinned(secret_object("for-a"), "team-a"),
        pinned(secret_object("sneaky"), "kube-system"),
        pinned(secret_object("later"), "team-c"),
    ]
    relation, secret = offer("secrets", "kfp", objects)

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    # A namespace that is not a profile one is never written to.
    assert names(kube, "Secret") == {("team-a", "for-a")}
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 2 profile namespace(s)")

    # The pinned namespace becomes a profile: its object follows.
    add_namespace(kube, "team-c")
    woken = dataclasses.replace(out, containers=containers(notices=(notice("team-c"),)))
    container = woken.get_container("namespace-watch")
    ctx.run(ctx.on.pebble_custom_notice(container, container.notices[0]), woken)
    assert names(kube, "Secret") == {("team-a", "for-a"), ("team-c", "later")}


@pytest.mark.parametrize(("pinning", "unpinned"), [("kfp", "minio"), ("minio", "kfp")])
def test_pinned_object_takes_the_place_of_an_unpinned_one(ctx, kube, pinning, unpinned):
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    default, default_secret = offer("secrets", unpinned, [secret_object("shared", key="all")])
    override, override_secret = offer(
        "secrets", pinning, [pinned(secret_object("shared", key="only-a"), "team-a")]
    )
    base = state(default, override, secrets={default_secret, override_secret})

    out = ctx.run(ctx.on.relation_changed(override), base)

    assert out.unit_status == testing.ActiveStatus("2 app(s) dispatched to 2 profile namespace(s)")
    a = kube.get("Secret", "shared", "team-a")
    b = kube.get("Secret", "shared", "team-b")
    assert a is not None and a["stringData"] == {"key": "only-a"}
    assert b is not None and b["stringData"] == {"key": "all"}

    # The pinning app goes: the unpinned object comes back in its place.
    out = ctx.run(ctx.on.relation_broken(out.get_relation(override.id)), out)
    ctx.run(ctx.on.update_status(), without_relation(out, override))
    a = kube.get("Secret", "shared", "team-a")
    assert a is not None and a["stringData"] == {"key": "all"}
    assert names(kube, "Secret") == {("team-a", "shared"), ("team-b", "shared")}


def test_two_apps_pinning_one_name_to_one_namespace_conflict(ctx, kube):
    add_namespace(kube, "team-a")
    minio, minio_secret = offer("secrets", "minio", [pinned(secret_object("x"), "team-a")])
    kfp, kfp_secret = offer("secrets", "kfp", [pinned(secret_object("x"), "team-a")])

    out = ctx.run(
        ctx.on.relation_changed(kfp), state(minio, kfp, secrets={minio_secret, kfp_secret})
    )

    assert out.unit_status == testing.BlockedStatus(
        "not dispatched: kfp and minio both send Secret x for namespace team-a"
    )
    assert kube.of_kind("Secret") == []


@pytest.mark.parametrize(
    ("namespace", "message"),
    [("Kube_System", "names an invalid namespace"), (["team-a"], "names an invalid namespace")],
)
def test_invalid_namespace_is_refused_naming_the_app(ctx, kube, namespace, message):
    add_namespace(kube, "team-a")
    body = {**secret_object("x"), "metadata": {"name": "x", "namespace": namespace}}
    relation, secret = offer("secrets", "kfp", [body])

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert out.unit_status == testing.BlockedStatus(f"not dispatched: kfp's Secret x {message}")
    assert kube.of_kind("Secret") == []


def test_config_maps_are_dispatched(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = offer("config-maps", "kfp", [config_map("kfp-launcher")])

    out = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    assert names(kube, "ConfigMap") == {("team-a", "kfp-launcher")}
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 1 profile namespace(s)")


def test_objects_in_clear_are_read(ctx, kube):
    # Canonical's requirers before the secret form send the JSON list in clear.
    add_namespace(kube, "team-a")
    relation = relation_in_clear_for_provider(
        [pod_default("mlflow-server-access-minio")], "pod-defaults"
    )

    out = ctx.run(ctx.on.relation_changed(relation), state(relation))

    assert names(kube, "PodDefault") == {("team-a", "mlflow-server-access-minio")}
    assert out.unit_status == testing.ActiveStatus("1 app(s) dispatched to 1 profile namespace(s)")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"is_secret": "true"}, "kfp says its manifests are in a secret but names none"),
        (
            {"is_secret": "true", "kubernetes_manifests": "secret:cv0000000000000000a0"},
            "kfp's manifests secret cannot be read",
        ),
        ({"kubernetes_manifests": "secret:cv0000000000000000a0"}, "kfp's manifests are not JSON"),
        ({"kubernetes_manifests": '{"kind": "Secret"}'}, "kfp's manifests are not a list"),
    ],
)
def test_unreadable_databag_blocks_and_keeps_what_was_there(ctx, kube, data, message):
    add_namespace(kube, "team-a")
    relation, secret = offer("secrets", "kfp", [secret_object("kfp-token")])
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    current = settled.get_relation(relation.id)
    broken = dataclasses.replace(current, remote_app_data=data)
    out = ctx.run(
        ctx.on.relation_changed(broken),
        dataclasses.replace(settled, relations=(settled.relations - {current}) | {broken}),
    )

    assert out.unit_status == testing.BlockedStatus(f"not dispatched: {message}")
    assert names(kube, "Secret") == {("team-a", "kfp-token")}


def test_label_removed_namespace_is_left_alone(ctx, kube):
    add_namespace(kube, "team-a")
    add_namespace(kube, "team-b")
    relation, secret = _minio()
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))

    # team-b stops being a profile: the dispatcher neither updates nor deletes there.
    kube.objects[("v1", "namespaces", None, "team-b")].body["metadata"]["labels"] = {}
    newer = changed_secret(secret, [secret_object("minio-credentials", key="rotated")])
    ctx.run(ctx.on.secret_changed(newer), replace_secret(settled, newer))

    a = kube.get("Secret", "minio-credentials", "team-a")
    b = kube.get("Secret", "minio-credentials", "team-b")
    assert a is not None and a["stringData"] == {"key": "rotated"}
    assert b is not None and b["stringData"] == {"key": "value"}


def test_non_leader_applies_nothing(ctx, kube):
    add_namespace(kube, "team-a")
    relation, secret = _minio()

    out = ctx.run(
        ctx.on.relation_changed(relation), state(relation, secrets={secret}, leader=False)
    )

    assert kube.writes == [("create", "Namespace", "team-a")]
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to make the certificate"
    )


def test_unchanged_inputs_are_not_rendered_again(ctx, kube, monkeypatch):
    add_namespace(kube, "team-a")
    relation, secret = _minio()
    settled = ctx.run(ctx.on.relation_changed(relation), state(relation, secrets={secret}))
    rendered: list[str] = []
    render = CHARM.render
    monkeypatch.setattr(
        CHARM, "render", lambda d, names, c: rendered.extend(names) or render(d, names, c)
    )
    writes = list(kube.writes)

    again = ctx.run(ctx.on.update_status(), settled)
    again = ctx.run(ctx.on.relation_changed(again.get_relation(relation.id)), again)
    assert rendered == []
    assert kube.writes == writes
    assert again.relations == settled.relations

    # A new namespace is a new input: everything is made again and applied there.
    add_namespace(kube, "team-b")
    ctx.run(ctx.on.relation_changed(again.get_relation(relation.id)), again)
    assert sorted(rendered) == [
        "crds.yaml.j2",
        "rbac.yaml.j2",
        "watch-rbac.yaml.j2",
        "webhook.yaml.j2",
    ]
    assert ("team-b", "minio-credentials") in names(kube, "Secret")
