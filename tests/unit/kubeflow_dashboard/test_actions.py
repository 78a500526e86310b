"""The profile actions: leader only; each success proven in the fake API, each failure inert."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from ops import testing
from unit.kubeflow_dashboard.helpers import (
    ALICE,
    BOB,
    CAROL,
    GATEWAY_PRINCIPAL,
    MODEL,
    action_fails,
    namespace,
    profile_crd,
    profiles,
    route_relation,
    snapshot,
    state,
    with_relations,
)

KFP_UI = f"cluster.local/ns/{MODEL}/sa/kfp"


def _run(ctx, action: str, **params):
    return ctx.run(ctx.on.action(action, params=params), state())


# --- create-profile --------------------------------------------------------------------


def test_create_profile_without_quota(ctx, cluster):
    _run(ctx, "create-profile", name="team-b", owner=BOB)
    profile = cluster.get("Profile", "team-b")
    assert profile["spec"] == {"owner": {"kind": "User", "name": BOB}}
    assert ctx.action_results == {"profile": "team-b", "owner": BOB, "quota": "none"}


def test_create_profile_with_every_quota(ctx, cluster):
    _run(
        ctx,
        "create-profile",
        name="gpu-team",
        owner=BOB,
        cpu="8",
        memory="32Gi",
        gpu=2,
        storage="500Gi",
    )
    profile = cluster.get("Profile", "gpu-team")
    assert profile["spec"]["resourceQuotaSpec"] == {
        "hard": {
            "cpu": "8",
            "memory": "32Gi",
            "requests.nvidia.com/gpu": "2",
            "requests.storage": "500Gi",
        }
    }
    assert ctx.action_results["quota"] == (
        "cpu=8, memory=32Gi, requests.nvidia.com/gpu=2, requests.storage=500Gi"
    )


@pytest.mark.parametrize(
    ("quota", "hard"),
    [
        ({"cpu": "9223372036854775807"}, {"cpu": "9223372036854775807"}),
        ({"cpu": "0.001"}, {"cpu": "0.001"}),
        ({"cpu": ".5"}, {"cpu": ".5"}),
        ({"memory": "7Ei"}, {"memory": "7Ei"}),
        ({"storage": "0"}, {"requests.storage": "0"}),
        ({"gpu": 0}, {"requests.nvidia.com/gpu": "0"}),
        ({"gpu": 2**63 - 1}, {"requests.nvidia.com/gpu": "9223372036854775807"}),
    ],
)
def test_create_profile_takes_quotas_up_to_the_kubernetes_limits(ctx, cluster, quota, hard):
    _run(ctx, "create-profile", name="edge", owner=BOB, **quota)
    assert cluster.get("Profile", "edge")["spec"]["resourceQuotaSpec"] == {"hard": hard}


def test_create_profile_with_some_quota(ctx, cluster):
    _run(ctx, "create-profile", name="small", owner=BOB, cpu="500m")
    assert cluster.get("Profile", "small")["spec"]["resourceQuotaSpec"] == {
        "hard": {"cpu": "500m"}
    }


def test_one_user_owns_several_profiles(ctx, cluster):
    _run(ctx, "create-profile", name="alice-2", owner=ALICE)
    owners = {
        p["metadata"]["name"]: p["spec"]["owner"]["name"] for p in cluster.of_kind("Profile")
    }
    assert owners == {"team-a": ALICE, "alice-2": ALICE}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "Team_A", "owner": BOB}, "is not a valid profile name"),
        ({"name": "-team", "owner": BOB}, "is not a valid profile name"),
        ({"name": "a" * 64, "owner": BOB}, "is not a valid profile name"),
        ({"name": "kube-system", "owner": BOB}, "is a reserved namespace"),
        ({"name": "kube-anything", "owner": BOB}, "is a reserved namespace"),
        ({"name": "kubeflow", "owner": BOB}, "is a reserved namespace"),
        ({"name": "default", "owner": BOB}, "is a reserved namespace"),
        ({"name": "team-b", "owner": "bob smith"}, "owner: 'bob smith' is not a user id"),
        ({"name": "team-a", "owner": BOB}, "profile 'team-a' exists already"),
        ({"name": "team-b", "owner": BOB, "cpu": "lots"}, "cpu: 'lots' is not a Kubernetes"),
        ({"name": "team-b", "owner": BOB, "memory": "-1Gi"}, "memory: '-1Gi' is not"),
        ({"name": "team-b", "owner": BOB, "storage": "10GB"}, "storage: '10GB' is not"),
        ({"name": "team-b", "owner": BOB, "gpu": -1}, "gpu: must be a count"),
        # Kubernetes keeps a quantity up to 2^63-1, to 3 decimal places, and caps or
        # rounds up the rest (kubernetes/apimachinery pkg/api/resource/quantity.go,
        # the Quantity doc comment, at eed236ce).
        (
            {"name": "team-b", "owner": BOB, "cpu": "99999999999999999999999"},
            "cpu: '99999999999999999999999' is beyond what Kubernetes keeps: at most "
            "9223372036854775807 (2^63-1), to 3 decimal places (1m)",
        ),
        ({"name": "team-b", "owner": BOB, "cpu": "9223372036854775808"}, "cpu: '92233720368547"),
        ({"name": "team-b", "owner": BOB, "cpu": "9223372036854776k"}, "cpu: '9223372036854776k"),
        ({"name": "team-b", "owner": BOB, "memory": "8Ei"}, "memory: '8Ei' is beyond what Kub"),
        ({"name": "team-b", "owner": BOB, "memory": "10E"}, "memory: '10E' is beyond what Kub"),
        ({"name": "team-b", "owner": BOB, "storage": "1" * 500}, "storage: '1111111111111111"),
        ({"name": "team-b", "owner": BOB, "cpu": "0.0001"}, "to 3 decimal places (1m)"),
        ({"name": "team-b", "owner": BOB, "cpu": "1.5m"}, "cpu: '1.5m' is beyond what Kuber"),
        ({"name": "team-b", "owner": BOB, "cpu": "10^12"}, "cpu: '10^12' is not a Kubernetes"),
        ({"name": "team-b", "owner": BOB, "cpu": "1e3 "}, "cpu: '1e3 ' is not a Kubernetes"),
        ({"name": "team-b", "owner": BOB, "cpu": "\u0664"}, "is not a Kubernetes quantity"),
        ({"name": "team-b", "owner": BOB, "gpu": 2**63}, "gpu: must be a count of GPUs, 0 to"),
    ],
)
def test_create_profile_refuses(ctx, cluster, params, message):
    action_fails(ctx, cluster, "create-profile", message, **params)


@pytest.mark.parametrize("gpu", ["10^12", "2", 1.5, True, [2]])
def test_a_gpu_quota_is_a_count_whatever_reaches_the_charm(gpu):
    # Juju (and ops.testing) check the integer type before the charm runs; the
    # quota checks it again, with the same message rather than a TypeError.
    with pytest.raises(profiles.ProfileError, match=r"^gpu: must be a count of GPUs"):
        profiles.Quota(gpu=gpu)


def test_a_quantity_that_is_not_text_is_refused_by_name():
    with pytest.raises(profiles.ProfileError, match=r"^memory: '16' is not a Kubernetes quantity"):
        profiles.Quota(memory=16)  # type: ignore[arg-type]


def test_create_profile_refuses_an_existing_namespace(ctx, cluster):
    namespace(cluster, "taken")
    action_fails(
        ctx, cluster, "create-profile", "namespace 'taken' exists already", name="taken", owner=BOB
    )


def test_create_profile_refuses_the_models_namespace(ctx, cluster):
    action_fails(ctx, cluster, "create-profile", "reserved", name=MODEL, owner=BOB)


# --- add-contributor / remove-contributor ------------------------------------------------


def test_add_contributor_binds_as_kfam_does(ctx, cluster):
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="edit")
    # KFAM's name for the dashboard's binding {User bob, ClusterRole edit} (kubeflow/kubeflow
    # v1.10.0 components/access-management/kfam/bindings.go getBindingName; the dashboard
    # sends the role as `edit`, app/api_workgroup.ts): its Delete looks the binding up by it.
    name = "user-bob-example-com-clusterrole-edit"
    assert ctx.action_results == {
        "profile": "team-a",
        "role": "edit",
        "binding": name,
        "mesh-access": "granted",
    }
    binding = cluster.get("RoleBinding", name, "team-a")
    assert binding["metadata"]["annotations"] == {"user": BOB, "role": "edit"}
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kubeflow-edit",
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BOB}
    ]
    # The mesh lets the contributor's requests (the gateway's user-id header) through,
    # from the gateway or the pipelines UI only, as KFAM's policy (bindings.go).
    policy = cluster.get("AuthorizationPolicy", name, "team-a")
    assert policy["metadata"]["annotations"] == {"user": BOB, "role": "edit"}
    assert policy["spec"] == {
        "rules": [
            {
                "from": [{"source": {"principals": [GATEWAY_PRINCIPAL, KFP_UI]}}],
                "when": [{"key": "request.headers[kubeflow-userid]", "values": [BOB]}],
            }
        ]
    }


def test_add_contributor_uses_the_user_header_the_route_passes_on(ctx, cluster):
    route = route_relation(user_header="x-auth-user", user_prefix="oidc:")
    ctx.run(
        ctx.on.action(
            "add-contributor", params={"profile": "team-a", "user": BOB, "role": "edit"}
        ),
        with_relations(state(), route),
    )
    policy = cluster.get("AuthorizationPolicy", ctx.action_results["binding"], "team-a")
    (rule,) = policy["spec"]["rules"]
    assert rule["when"] == [{"key": "request.headers[x-auth-user]", "values": [f"oidc:{BOB}"]}]


def test_add_contributor_without_the_gateway_fails_and_changes_nothing(ctx, cluster):
    before = snapshot(cluster)
    base = state()
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(
            ctx.on.action(
                "add-contributor", params={"profile": "team-a", "user": BOB, "role": "edit"}
            ),
            dataclasses.replace(
                base, relations={r for r in base.relations if r.endpoint != "gateway-metadata"}
            ),
        )
    assert failed.value.message.startswith("add the gateway-metadata relation to istio")
    assert snapshot(cluster) == before


def test_add_contributor_with_invalid_route_data_fails_and_changes_nothing(ctx, cluster):
    before = snapshot(cluster)
    route = route_relation(user_header="bad header")
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(
            ctx.on.action(
                "add-contributor", params={"profile": "team-a", "user": BOB, "role": "edit"}
            ),
            with_relations(state(), route),
        )
    assert failed.value.message == (
        "istio-ingress-route: kubeflow_user_header 'bad header' is not a header name"
    )
    assert snapshot(cluster) == before


def test_remove_contributor_takes_mesh_access_away(ctx, cluster):
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="view")
    _run(ctx, "remove-contributor", profile="team-a", user=BOB)
    assert cluster.of_kind("AuthorizationPolicy") == []
    assert [b for b in cluster.of_kind("RoleBinding") if "bob" in b["metadata"]["name"]] == []


def test_without_istio_the_contributor_gets_rbac_and_the_result_says_so(ctx, kube):
    profile_crd(kube)
    from lightkube.generic_resource import create_global_resource
    from lightkube.models.meta_v1 import ObjectMeta

    profile = create_global_resource("kubeflow.org", "v1", "Profile", "profiles")
    kube.client().create(
        profile(metadata=ObjectMeta(name="solo"), spec={"owner": {"kind": "User", "name": ALICE}})
    )
    namespace(kube, "solo")
    _run(ctx, "add-contributor", profile="solo", user=BOB, role="edit")
    assert ctx.action_results["mesh-access"].startswith("not granted")
    assert kube.get("RoleBinding", ctx.action_results["binding"], "solo")
    # The kind is not served: a 404 (not a refused object), as the API server answers.
    assert kube.rejected == []


def test_a_mesh_policy_the_cluster_refuses_fails_the_action_not_reported_as_no_istio(ctx, cluster):
    def require_a_selector(crd):
        # Istio is installed, but this cluster's schema refuses the policy (a 422).
        for version in crd["spec"]["versions"]:
            version["schema"] = {
                "openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "required": ["selector"]}},
                }
            }

    name = "authorizationpolicies.security.istio.io"
    cluster.edit("CustomResourceDefinition", name, None, require_a_selector)
    with pytest.raises(testing.ActionFailed) as failed:
        _run(ctx, "add-contributor", profile="team-a", user=BOB, role="edit")
    assert failed.value.message.startswith("the Kubernetes API refused: ")
    assert "selector" in failed.value.message
    assert cluster.of_kind("AuthorizationPolicy") == []
    assert [r.split(":")[0] for r in cluster.rejected] == [
        "AuthorizationPolicy/user-bob-example-com-clusterrole-edit"
    ]
    cluster.rejected.clear()  # refused on purpose


def test_binding_names_follow_kfams_rule(ctx, cluster):
    _run(ctx, "add-contributor", profile="team-a", user=CAROL, role="view")
    # Each run of characters other than ASCII letters and digits becomes '-', then the
    # name is lower-cased (getBindingName, kfam/bindings.go, kubeflow/kubeflow v1.10.0).
    name = "user-carol-smith-example-com-clusterrole-view"
    assert ctx.action_results["binding"] == name
    assert cluster.get("RoleBinding", name, "team-a")
    assert cluster.get("AuthorizationPolicy", name, "team-a")


def test_a_contributor_added_under_the_old_name_is_still_removed(ctx, cluster):
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    old = "user-bob-example-com-clusterrole-kubeflow-edit"
    cluster.client().create(
        RoleBinding.from_dict(
            {
                "metadata": {
                    "name": old,
                    "namespace": "team-a",
                    "annotations": {"user": BOB, "role": "edit"},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kubeflow-edit",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BOB}
                ],
            }
        )
    )
    _run(ctx, "remove-contributor", profile="team-a", user=BOB)
    assert ctx.action_results == {
        "profile": "team-a",
        "removed-role": "edit",
        "removed-bindings": old,
        "removed-policies": "none",
    }
    assert cluster.get("RoleBinding", old, "team-a") is None


def test_several_users_share_a_profile_and_one_joins_several(ctx, cluster):
    _run(ctx, "create-profile", name="team-b", owner=BOB)
    namespace(cluster, "team-b")
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="edit")
    _run(ctx, "add-contributor", profile="team-a", user=CAROL, role="view")
    _run(ctx, "add-contributor", profile="team-b", user=CAROL, role="edit")
    _run(ctx, "add-contributor", profile="team-b", user=ALICE, role="view")

    _run(ctx, "list-profiles")
    listed = yaml.safe_load(ctx.action_results["profiles"])
    assert ctx.action_results["count"] == 2
    assert listed == [
        {
            "name": "team-a",
            "owner": ALICE,
            "contributors": [{"user": CAROL, "role": "view"}, {"user": BOB, "role": "edit"}],
            "quota": {},
        },
        {
            "name": "team-b",
            "owner": BOB,
            "contributors": [{"user": CAROL, "role": "edit"}, {"user": ALICE, "role": "view"}],
            "quota": {},
        },
    ]


def test_list_shows_quota_and_ignores_other_bindings(ctx, cluster):
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    _run(ctx, "create-profile", name="q", owner=BOB, gpu=1)
    namespace(cluster, "q")
    # The controller's own binding for the owner: role admin, not a contributor.
    cluster.client().create(
        RoleBinding.from_dict(
            {
                "metadata": {
                    "name": "namespaceAdmin",
                    "namespace": "q",
                    "annotations": {"user": BOB, "role": "admin"},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "kubeflow-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BOB}
                ],
            }
        )
    )
    _run(ctx, "list-profiles")
    listed = {p["name"]: p for p in yaml.safe_load(ctx.action_results["profiles"])}
    assert listed["q"]["quota"] == {"requests.nvidia.com/gpu": "1"}
    assert listed["q"]["contributors"] == []


def test_list_with_no_profiles(ctx, kube):
    profile_crd(kube)
    _run(ctx, "list-profiles")
    assert ctx.action_results == {"count": 0, "profiles": "[]\n"}


def test_remove_contributor(ctx, cluster):
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="view")
    _run(ctx, "remove-contributor", profile="team-a", user=BOB)
    name = "user-bob-example-com-clusterrole-view"
    assert ctx.action_results == {
        "profile": "team-a",
        "removed-role": "view",
        "removed-bindings": name,
        "removed-policies": name,
    }
    assert cluster.of_kind("RoleBinding") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"profile": "nope", "user": BOB, "role": "edit"}, "no profile named 'nope'"),
        ({"profile": "Bad_Name", "user": BOB, "role": "edit"}, "is not a valid profile name"),
        ({"profile": "team-a", "user": ALICE, "role": "view"}, "owns profile 'team-a' already"),
        (
            {"profile": "team-a", "user": BOB, "role": "view"},
            "is a contributor of 'team-a' already",
        ),
        (
            {"profile": "team-a", "user": BOB, "role": "edit"},
            "is a contributor of 'team-a' already",
        ),
        ({"profile": "team-a", "user": "", "role": "edit"}, "is not a user id"),
        ({"profile": "team-a", "user": CAROL, "role": "admin"}, "role: must be edit or view"),
    ],
)
def test_add_contributor_refuses(ctx, cluster, params, message):
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="edit")
    action_fails(ctx, cluster, "add-contributor", message, **params)


def test_add_contributor_waits_for_the_namespace(ctx, cluster):
    _run(ctx, "create-profile", name="fresh", owner=BOB)
    action_fails(
        ctx,
        cluster,
        "add-contributor",
        "does not exist yet",
        profile="fresh",
        user=CAROL,
        role="edit",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"profile": "nope", "user": BOB}, "no profile named 'nope'"),
        ({"profile": "team-a", "user": CAROL}, "is not a contributor of 'team-a'"),
        ({"profile": "team-a", "user": ALICE}, "an owner cannot be removed"),
        ({"profile": "kubeflow", "user": BOB}, "is a reserved namespace"),
    ],
)
def test_remove_contributor_refuses(ctx, cluster, params, message):
    _run(ctx, "add-contributor", profile="team-a", user=BOB, role="edit")
    action_fails(ctx, cluster, "remove-contributor", message, **params)


# --- leader only, API errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "params"),
    [
        ("create-profile", {"name": "x", "owner": BOB}),
        ("add-contributor", {"profile": "team-a", "user": BOB, "role": "edit"}),
        ("remove-contributor", {"profile": "team-a", "user": BOB}),
        ("list-profiles", {}),
    ],
)
def test_actions_are_leader_only(ctx, cluster, action, params):
    before = snapshot(cluster)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action(action, params=params), state(leader=False))
    assert failed.value.message == "run this action on the leader unit"
    assert snapshot(cluster) == before


def test_no_profile_crd_fails_clearly(ctx, kube):
    with pytest.raises(testing.ActionFailed) as failed:
        _run(ctx, "create-profile", name="x", owner=BOB)
    assert failed.value.message.startswith("the Kubernetes API refused")
    assert kube.made() == {}
    kube.rejected.clear()  # the refusal is the point of this test
