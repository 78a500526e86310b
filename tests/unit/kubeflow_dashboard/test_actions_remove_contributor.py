"""remove-contributor takes every binding and policy of the user in the profile away.

KFAM finds a contributor's RoleBindings by their `user` and `role`
annotations, whatever the name (kubeflow/kubeflow v1.10.0,
components/access-management/kfam/bindings.go, List), and may bind any of
admin, edit, view (roleBindingNameMap). The profile controller annotates its
own objects for the owner the same way (user, role admin) under fixed names,
`namespaceAdmin` and `ns-owner-access-istio` (components/profile-controller/
controllers/profile_controller.go).
"""

from __future__ import annotations

from typing import Any

import yaml
from unit.kubeflow_dashboard.helpers import (
    ALICE,
    BOB,
    CAROL,
    GATEWAY_PRINCIPAL,
    action_fails,
    namespace,
    state,
)

PROFILE = "team-a"


def _binding(kube, name: str, user: str, role: str, *, annotated: bool = True) -> None:
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    metadata: dict[str, Any] = {"name": name, "namespace": PROFILE}
    if annotated:
        metadata["annotations"] = {"user": user, "role": role}
    kube.client().create(
        RoleBinding.from_dict(
            {
                "metadata": metadata,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"kubeflow-{role}",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    )


def _policy(kube, name: str, annotated_user: str, header_value: str, role: str) -> None:
    from lightkube.generic_resource import create_namespaced_resource

    kind = create_namespaced_resource(
        "security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"
    )
    kube.client().create(
        kind.from_dict(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": {
                    "name": name,
                    "namespace": PROFILE,
                    "annotations": {"user": annotated_user, "role": role},
                },
                "spec": {
                    "rules": [
                        {
                            "from": [{"source": {"principals": [GATEWAY_PRINCIPAL]}}],
                            "when": [
                                {
                                    "key": "request.headers[kubeflow-userid]",
                                    "values": [header_value],
                                }
                            ],
                        }
                    ]
                },
            }
        )
    )


def _names(kube, kind: str) -> set[str]:
    return {
        o["metadata"]["name"] for o in kube.of_kind(kind) if o["metadata"]["namespace"] == PROFILE
    }


def _run(ctx, action: str, **params):
    return ctx.run(ctx.on.action(action, params=params), state())


def _owner_objects(kube) -> None:
    """What the profile controller makes for the owner (alice)."""
    _binding(kube, "namespaceAdmin", ALICE, "admin")
    _policy(kube, "ns-owner-access-istio", ALICE, ALICE, "admin")


def test_every_binding_and_policy_of_the_user_goes(ctx, cluster):
    _owner_objects(cluster)
    # This charm's (and KFAM's) pair, from the action.
    _run(ctx, "add-contributor", profile=PROFILE, user=BOB, role="edit")
    # KFAM's admin binding, made from the dashboard's "Manage contributors".
    _binding(cluster, "user-bob-example-com-clusterrole-admin", BOB, "admin")
    _policy(cluster, "user-bob-example-com-clusterrole-admin", BOB, BOB, "admin")
    # An earlier charm's name, and its policy annotated with the prefixed id.
    _binding(cluster, "user-bob-example-com-clusterrole-kubeflow-view", BOB, "view")
    _policy(cluster, "user-bob-example-com-clusterrole-kubeflow-view", f"oidc:{BOB}", BOB, "view")
    # Somebody else's, and a policy annotated with bob under a name of its own.
    _run(ctx, "add-contributor", profile=PROFILE, user=CAROL, role="view")
    _policy(cluster, "bob-extra", BOB, BOB, "edit")

    _run(ctx, "remove-contributor", profile=PROFILE, user=BOB)

    assert _names(cluster, "RoleBinding") == {
        "namespaceAdmin",
        "user-carol-smith-example-com-clusterrole-view",
    }
    assert _names(cluster, "AuthorizationPolicy") == {
        "ns-owner-access-istio",
        "user-carol-smith-example-com-clusterrole-view",
    }
    assert ctx.action_results == {
        "profile": PROFILE,
        "removed-role": "admin, edit, view",
        "removed-bindings": (
            "user-bob-example-com-clusterrole-admin, user-bob-example-com-clusterrole-edit, "
            "user-bob-example-com-clusterrole-kubeflow-view"
        ),
        "removed-policies": (
            "bob-extra, user-bob-example-com-clusterrole-admin, "
            "user-bob-example-com-clusterrole-edit, "
            "user-bob-example-com-clusterrole-kubeflow-view"
        ),
    }


def test_list_profiles_shows_each_role_a_user_holds(ctx, cluster):
    _owner_objects(cluster)
    _run(ctx, "add-contributor", profile=PROFILE, user=BOB, role="edit")
    _binding(cluster, "user-bob-example-com-clusterrole-admin", BOB, "admin")
    _run(ctx, "list-profiles")
    (listed,) = yaml.safe_load(ctx.action_results["profiles"])
    assert listed["contributors"] == [
        {"user": BOB, "role": "admin"},
        {"user": BOB, "role": "edit"},
    ]


def test_a_policy_left_without_its_binding_is_removed(ctx, cluster):
    _policy(cluster, "user-bob-example-com-clusterrole-edit", BOB, BOB, "edit")
    _run(ctx, "remove-contributor", profile=PROFILE, user=BOB)
    assert _names(cluster, "AuthorizationPolicy") == set()
    assert ctx.action_results["removed-policies"] == "user-bob-example-com-clusterrole-edit"
    assert ctx.action_results["removed-bindings"] == "none"


def test_add_contributor_refuses_while_a_policy_is_left(ctx, cluster):
    _policy(cluster, "user-bob-example-com-clusterrole-edit", BOB, BOB, "edit")
    action_fails(
        ctx,
        cluster,
        "add-contributor",
        "has mesh access to 'team-a' left without a binding: run remove-contributor first",
        profile=PROFILE,
        user=BOB,
        role="edit",
    )


def test_the_owners_objects_stay_and_the_owner_cannot_be_removed(ctx, cluster):
    _owner_objects(cluster)
    action_fails(
        ctx,
        cluster,
        "remove-contributor",
        "an owner cannot be removed",
        profile=PROFILE,
        user=ALICE,
    )


def test_only_the_exact_user_is_removed(ctx, cluster):
    _run(ctx, "add-contributor", profile=PROFILE, user=BOB, role="edit")
    _run(ctx, "add-contributor", profile=PROFILE, user="Bob@example.com", role="view")
    # A binding to bob without KFAM's annotations is not a contributor's: left alone.
    _binding(cluster, "hand-made", BOB, "view", annotated=False)
    _run(ctx, "remove-contributor", profile=PROFILE, user=BOB)
    assert _names(cluster, "RoleBinding") == {"user-bob-example-com-clusterrole-view", "hand-made"}
    assert _names(cluster, "AuthorizationPolicy") == {"user-bob-example-com-clusterrole-view"}


def test_a_wildcard_contributor_made_before_ids_were_checked_can_be_removed(ctx, cluster):
    # An earlier charm took `user=*`: a binding and a policy that let everyone in.
    _binding(cluster, "user-clusterrole-edit", "*", "edit")
    _policy(cluster, "user-clusterrole-edit", "*", "*", "edit")
    _run(ctx, "remove-contributor", profile=PROFILE, user="*")
    assert _names(cluster, "RoleBinding") == set()
    assert _names(cluster, "AuthorizationPolicy") == set()
    assert ctx.action_results["removed-bindings"] == "user-clusterrole-edit"


def test_bindings_in_another_profile_stay(ctx, cluster):
    _run(ctx, "create-profile", name="team-b", owner=CAROL)
    namespace(cluster, "team-b")
    _run(ctx, "add-contributor", profile=PROFILE, user=BOB, role="edit")
    _run(ctx, "add-contributor", profile="team-b", user=BOB, role="edit")
    _run(ctx, "remove-contributor", profile=PROFILE, user=BOB)
    assert cluster.get("RoleBinding", "user-bob-example-com-clusterrole-edit", "team-b")
    assert cluster.get("AuthorizationPolicy", "user-bob-example-com-clusterrole-edit", "team-b")
