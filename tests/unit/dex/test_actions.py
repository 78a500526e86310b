"""The get-admin-password action."""

from __future__ import annotations

import bcrypt
import pytest
from ops import testing
from unit.dex.helpers import ADMIN_HASH, ADMIN_PASSWORD, admin_secret, make_state


def _failure(ctx: testing.Context, state: testing.State) -> str:
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("get-admin-password"), state)
    return failure.value.message


def test_get_admin_password(ctx: testing.Context):
    ctx.run(ctx.on.action("get-admin-password"), make_state(secrets=(admin_secret(),)))

    assert ctx.action_results == {
        "username": "admin",
        "email": "admin@kubeflow.local",
        "password": ADMIN_PASSWORD,
    }
    assert bcrypt.checkpw(ADMIN_PASSWORD.encode(), ADMIN_HASH.encode())
    assert ADMIN_PASSWORD not in " ".join(e.message for e in ctx.juju_log)


def test_get_admin_password_with_an_email_login(ctx: testing.Context):
    state = make_state(config={"admin-username": "ops@example.com"}, secrets=(admin_secret(),))

    ctx.run(ctx.on.action("get-admin-password"), state)

    results = ctx.action_results or {}
    assert (results["username"], results["email"]) == ("ops", "ops@example.com")


def test_get_admin_password_on_a_non_leader_fails(ctx: testing.Context):
    state = make_state(leader=False, secrets=(admin_secret(),))

    assert _failure(ctx, state) == "run get-admin-password on the leader unit"


def test_get_admin_password_before_it_is_generated_fails(ctx: testing.Context):
    assert _failure(ctx, make_state()) == (
        "the admin password is not generated yet; wait for the charm to settle"
    )


def test_get_admin_password_without_admin_user_fails(ctx: testing.Context):
    state = make_state(config={"admin-username": ""}, secrets=(admin_secret(),))

    assert _failure(ctx, state) == "there is no admin user: admin-username is empty"


def test_get_admin_password_with_invalid_config_fails(ctx: testing.Context):
    state = make_state(config={"admin-username": "not valid!"}, secrets=(admin_secret(),))

    assert _failure(ctx, state).startswith("invalid config: admin-username:")


def test_action_writes_nothing(ctx: testing.Context):
    state = make_state(secrets=(admin_secret(),))

    state_out = ctx.run(ctx.on.action("get-admin-password"), state)

    assert state_out.secrets == state.secrets
    assert state_out.relations == state.relations
    assert state_out.get_container("dex").plan.services == {}
