"""User ids in the profile actions: an e-mail address or a user name, nothing a mesh reads wider.

A contributor's AuthorizationPolicy matches the user-id header against
`<prefix><user>`, and Istio reads a `*` at either end of a string match as a
prefix, suffix or presence match (istio/api 1.29.6,
security/v1beta1/authorization_policy.proto:383), so `user=*` would let
every logged-in user in. Each refused id fails its
action with a message naming the field and changes nothing.
"""

from __future__ import annotations

import pytest
from unit.kubeflow_dashboard.helpers import (
    BOB,
    action_fails,
    profiles,
    route_relation,
    state,
    with_relations,
)

# Ids no login can issue as one user, each with the part of the message that says why.
REFUSED = [
    ("*", "'*' is a wildcard"),
    ("*@example.com", "'*' is a wildcard"),
    ("bob@*", "'*' is a wildcard"),
    ("bob*", "'*' is a wildcard"),
    ("", "give an e-mail address or a user name"),
    (" bob@example.com", "U+0020, a space, control or invisible character"),
    ("bob@example.com\n", "U+000A, a space, control or invisible character"),
    ("bob@example.com\r\nx-injected: 1", "U+000D, a space, control"),
    ("b\x00ob", "U+0000, a space, control"),
    ("bo\u200bb@example.com", "U+200B, a space, control or invisible"),  # zero-width space
    ("\u202ebob@example.com", "U+202E, a space, control"),  # right-to-left override
    ("bob\u00a0smith", "U+00A0, a space"),  # no-break space
    ("b\u0441b@example.com", "U+0441"),  # Cyrillic es: looks like c
    ("bob@ex\u0430mple.com", "give an internationalised domain in its xn-- form"),
    ("bob@xn--pple-43d.com", "mixes Cyrillic and Latin letters"),  # apple, its first a Cyrillic
    ("bob@xn--ab-zzz.com", "is not a valid internationalised domain label"),
    ("bob@ab--cd.com", "reserved for xn-- labels"),
    ("oidc:bob@example.com", "before the @, an e-mail address has"),
    ("bob..smith@example.com", "in runs joined by single dots"),
    (".bob@example.com", "in runs joined by single dots"),
    ("a" * 65 + "@example.com", "1 to 64 ASCII letters"),
    ("bob@", "is not a domain"),
    ("bob@example..com", "is not a domain"),
    ("bob@-example.com", "is not a domain"),
    ("bob@10.0.0.1", "its last label is a number"),
    ("bob@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 60, "at most 254"),
    ("DOMAIN\\bob", "a user name is 1 to 64"),
    ("-bob", "starting with a letter or digit"),
    ("b" * 65, "a user name is 1 to 64"),
    ("bob/../admin", "a user name is 1 to 64"),
]

ACCEPTED = [
    BOB,
    "Carol.Smith@example.com",
    "o'brien+kubeflow@mail.example.co.uk",
    "bob@xn--mnchen-3ya.de",  # münchen.de
    "admin@kubeflow.local",  # the dex charm's admin
    "bob@localhost",
    "jdoe",
    "j.doe_2-x",
    "a" * 64 + "@example.com",
]


@pytest.mark.parametrize(("user", "why"), REFUSED)
def test_create_profile_refuses_an_owner_that_is_not_one_user(ctx, cluster, user, why):
    message = action_fails(ctx, cluster, "create-profile", why, name="team-b", owner=user)
    assert message.startswith("owner: ") and " is not a user id: " in message


@pytest.mark.parametrize(("user", "why"), REFUSED)
def test_add_contributor_refuses_a_user_that_is_not_one_user(ctx, cluster, user, why):
    message = action_fails(
        ctx, cluster, "add-contributor", why, profile="team-a", user=user, role="edit"
    )
    assert message.startswith("user: ") and " is not a user id: " in message


@pytest.mark.parametrize(("user", "why"), REFUSED)
def test_remove_contributor_refuses_a_user_that_is_not_one_user(ctx, cluster, user, why):
    message = action_fails(ctx, cluster, "remove-contributor", why, profile="team-a", user=user)
    assert message.startswith("user: ") and " is not a user id: " in message


def test_an_invisible_character_is_shown_escaped_in_the_message(ctx, cluster):
    message = action_fails(
        ctx,
        cluster,
        "add-contributor",
        "is not a user id",
        profile="team-a",
        user="bo\u200bb@example.com",
        role="edit",
    )
    assert "'bo\\u200bb@example.com'" in message
    assert "\u200b" not in message


@pytest.mark.parametrize("user", ACCEPTED)
def test_each_kind_of_user_id_is_taken(ctx, cluster, user):
    ctx.run(ctx.on.action("create-profile", params={"name": "own", "owner": user}), state())
    assert cluster.get("Profile", "own")["spec"]["owner"]["name"] == user
    ctx.run(
        ctx.on.action(
            "add-contributor", params={"profile": "team-a", "user": user, "role": "view"}
        ),
        state(),
    )
    binding = ctx.action_results["binding"]
    policy = cluster.get("AuthorizationPolicy", binding, "team-a")
    assert policy["spec"]["rules"][0]["when"][0]["values"] == [user]
    ctx.run(
        ctx.on.action("remove-contributor", params={"profile": "team-a", "user": user}), state()
    )
    assert cluster.get("RoleBinding", binding, "team-a") is None
    assert cluster.get("AuthorizationPolicy", binding, "team-a") is None


@pytest.mark.parametrize(("user", "why"), REFUSED)
def test_check_user_says_why(user, why):
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.check_user(user)
    assert str(refused.value).startswith("user: ")
    assert why in str(refused.value)


def test_a_prefix_with_a_wildcard_is_refused(ctx, cluster):
    # The prefix comes from the mesh (the OIDC gateway's userid-prefix); with a '*' the
    # policy's `*bob@example.com` would let in anyone whose id ends the same way.
    route = route_relation(user_prefix="*")
    action_fails(
        ctx,
        cluster,
        "add-contributor",
        # The charm is Blocked on such a prefix, and the action says why.
        "istio-ingress-route: the user-id header or prefix contains *",
        with_relations(state(), route),
        profile="team-a",
        user=BOB,
        role="edit",
    )


def test_the_policy_is_annotated_with_the_bare_user_as_kfam_does(ctx, cluster):
    # KFAM annotates its policy with binding.User.Name and matches the header on the
    # prefixed id (kubeflow/kubeflow v1.10.0 components/access-management/kfam/bindings.go,
    # Create and getAuthorizationPolicy).
    route = route_relation(user_prefix="oidc:")
    ctx.run(
        ctx.on.action(
            "add-contributor", params={"profile": "team-a", "user": BOB, "role": "edit"}
        ),
        with_relations(state(), route),
    )
    policy = cluster.get("AuthorizationPolicy", ctx.action_results["binding"], "team-a")
    assert policy["metadata"]["annotations"] == {"user": BOB, "role": "edit"}
    assert policy["spec"]["rules"][0]["when"][0]["values"] == [f"oidc:{BOB}"]
