"""The rotate-secrets action: a new cookie key, and a new client secret asked of Dex."""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing
from unit.oidc_gateway.helpers import (
    COOKIE_SECRET,
    DEX_APP,
    DEX_CLIENT_ID,
    DEX_CLIENT_SECRET,
    EXTERNAL_CLIENT_SECRET,
    alpha_config,
    cookie_secret,
    dex_published,
    dex_state,
    external_state,
    oauth2_proxy,
    provider_sees,
    registration,
    written,
)

ACTION = "rotate-secrets"


def _oauth(state: testing.State) -> testing.Relation:
    (relation,) = [r for r in state.relations if r.endpoint == "oauth"]
    return relation


def _cookie(state: testing.State) -> str:
    (secret,) = [s for s in state.secrets if s.label == "cookie-secret"]
    return secret.latest_content["cookie-secret"]


def _settled(ctx: testing.Context, state: testing.State) -> testing.State:
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "active", out.unit_status
    return out


def _dex_answers(
    state: testing.State, client: tuple[str, str] | None
) -> tuple[testing.State, testing.Relation]:
    """The state once Dex has published `client` (None: it dropped the client)."""
    oauth = _oauth(state)
    published, secret = dex_published(client=client, relation_id=oauth.id)
    changed = dataclasses.replace(oauth, remote_app_data=published)
    relations = {r for r in state.relations if r.endpoint != "oauth"} | {changed}
    secrets = {s for s in state.secrets if s.label == "cookie-secret"}
    if secret is not None:
        secrets.add(secret)
    return dataclasses.replace(state, relations=relations, secrets=secrets), changed


def test_with_dex_replaces_the_cookie_key_and_asks_for_a_new_client_secret(ctx, tmp_path, calls):
    first = _settled(ctx, dex_state(tmp_path))
    calls.clear()
    out = ctx.run(ctx.on.action(ACTION), first)

    cookie = _cookie(out)
    assert cookie != COOKIE_SECRET
    assert oauth2_proxy.is_valid_cookie_secret(cookie)
    assert written(tmp_path, "secrets/cookie-secret") == cookie
    assert calls.count("Container.restart") == 1  # sessions end now
    # The registration stands; one more key asks Dex for a new client secret.
    ours = dict(out.get_relation(_oauth(first).id).local_app_data)
    token = ours.pop("client-secret-rotation")
    assert len(token) == 16
    assert ours == registration()
    assert ctx.action_results == {
        "cookie-secret": "replaced; every session has ended",
        "client-secret": f"requested from {DEX_APP}; the proxy restarts when it arrives",
        "restarted": "true",
    }
    assert out.unit_status.name == "active"

    # Run again: a new token, so Dex rotates again.
    again = ctx.run(ctx.on.action(ACTION), out)
    assert again.get_relation(_oauth(first).id).local_app_data["client-secret-rotation"] != token


@pytest.mark.parametrize(
    ("ours", "events"),
    [
        # Written again as it was: Dex's library sees the same client, which keeps its secret.
        (registration(), ["client_changed"]),
        # Changed: still an update of the same client.
        (registration("https://other.example.com/oauth2/callback"), ["client_changed"]),
        # Withdrawn: no client configuration, no event at all.
        ({}, []),
    ],
    ids=["unchanged", "changed", "withdrawn"],
)
def test_no_registration_asks_dex_for_a_new_secret(ours, events):
    published, _ = dex_published(client=(DEX_CLIENT_ID, DEX_CLIENT_SECRET))
    assert provider_sees(ours, published) == events


def test_only_a_provider_without_a_client_issues_one():
    # What a new relation looks like to Dex's library: the one way to a new secret.
    published, _ = dex_published(client=None)
    assert provider_sees(registration(), published) == ["client_created"]


def test_new_credentials_from_dex_restart_the_proxy(ctx, tmp_path, calls):
    # E.g. a new Dex leader re-issuing a removed secret, or a relation added again.
    first = _settled(ctx, dex_state(tmp_path))
    issued, oauth = _dex_answers(first, client=("oidc-gateway-9c1d", "dex-new-secret-77"))
    calls.clear()
    out = ctx.run(ctx.on.relation_changed(oauth), issued)

    assert written(tmp_path, "secrets/client-secret") == "dex-new-secret-77"
    assert alpha_config(tmp_path)["providers"][0]["clientID"] == "oidc-gateway-9c1d"
    assert calls.count("Container.restart") == 1
    assert out.unit_status.name == "active"


def test_each_run_makes_a_new_cookie_key(ctx, tmp_path):
    once = ctx.run(ctx.on.action(ACTION), _settled(ctx, dex_state(tmp_path)))
    twice = ctx.run(ctx.on.action(ACTION), once)
    assert len({COOKIE_SECRET, _cookie(once), _cookie(twice)}) == 3
    assert written(tmp_path, "secrets/cookie-secret") == _cookie(twice)


def test_with_an_external_provider_only_the_cookie_key_rotates(ctx, tmp_path, calls):
    first = _settled(ctx, external_state(tmp_path))
    calls.clear()
    out = ctx.run(ctx.on.action(ACTION), first)

    assert _cookie(out) != COOKIE_SECRET
    assert written(tmp_path, "secrets/cookie-secret") == _cookie(out)
    assert written(tmp_path, "secrets/client-secret") == EXTERNAL_CLIENT_SECRET
    assert calls.count("Container.restart") == 1
    assert ctx.action_results == {
        "cookie-secret": "replaced; every session has ended",
        "client-secret": "the operator's: update the secret named in client-secret-id to "
        "rotate it",
        "restarted": "true",
    }
    assert out.unit_status.name == "active"


def test_results_hold_no_secret(ctx, tmp_path):
    out = ctx.run(ctx.on.action(ACTION), _settled(ctx, dex_state(tmp_path)))
    text = json.dumps(ctx.action_results)
    for secret in (COOKIE_SECRET, _cookie(out), DEX_CLIENT_SECRET):
        assert secret not in text


def test_other_units_restart_with_the_new_cookie_key(ctx, tmp_path, calls):
    # Juju tells the other units of the owner when the leader sets a new
    # revision of an app secret they read (ops.testing models them as readers).
    state = dex_state(tmp_path, leader=False)
    others = {s for s in state.secrets if s.label != "cookie-secret"}
    state = dataclasses.replace(state, secrets={*others, cookie_secret(owner=None)})
    follower = _settled(ctx, state)
    (shared,) = [s for s in follower.secrets if s.label == "cookie-secret"]
    new_key = oauth2_proxy.generate_cookie_secret()
    rotated = dataclasses.replace(shared, latest_content={"cookie-secret": new_key})
    others = {s for s in follower.secrets if s.label != "cookie-secret"}
    calls.clear()
    out = ctx.run(
        ctx.on.secret_changed(rotated), dataclasses.replace(follower, secrets={*others, rotated})
    )
    assert written(tmp_path, "secrets/cookie-secret") == new_key
    assert calls.count("Container.restart") == 1
    assert out.unit_status.name == "active"


def test_leader_removes_the_old_cookie_revision(ctx, tmp_path):
    rotated = ctx.run(ctx.on.action(ACTION), _settled(ctx, dex_state(tmp_path)))
    (secret,) = [s for s in rotated.secrets if s.label == "cookie-secret"]
    ctx.run(ctx.on.secret_remove(secret, revision=1), rotated)
    assert ctx.removed_secret_revisions == [1]


# --- refusals ------------------------------------------------------------------------------------


def test_fails_on_a_non_leader(ctx, tmp_path):
    state = _settled(ctx, dex_state(tmp_path, leader=False))
    with pytest.raises(testing.ActionFailed, match="run rotate-secrets on the leader unit"):
        ctx.run(ctx.on.action(ACTION), state)


def test_fails_before_the_proxy_is_set_up(ctx, tmp_path, calls):
    state = dex_state(tmp_path)
    calls.clear()
    with pytest.raises(testing.ActionFailed, match="the proxy is not set up yet"):
        ctx.run(ctx.on.action(ACTION), state)
    assert calls.log == []


def test_fails_before_the_cookie_secret_exists(ctx, tmp_path):
    state = dex_state(tmp_path)
    state = dataclasses.replace(
        state, secrets={s for s in state.secrets if s.label != "cookie-secret"}
    )
    with pytest.raises(testing.ActionFailed, match="the proxy is not set up yet"):
        ctx.run(ctx.on.action(ACTION), state)


def test_fails_while_blocked(ctx, tmp_path, calls):
    state = external_state(tmp_path, config={}, secrets={cookie_secret()})
    with pytest.raises(testing.ActionFailed, match="nothing to rotate until this is fixed: no "):
        ctx.run(ctx.on.action(ACTION), state)
    assert calls.log == []


def test_fails_on_invalid_config(ctx, tmp_path):
    first = _settled(ctx, dex_state(tmp_path))
    state = dataclasses.replace(first, config={"userid-header": "bad header"})
    with pytest.raises(testing.ActionFailed, match="invalid config: userid-header"):
        ctx.run(ctx.on.action(ACTION), state)
