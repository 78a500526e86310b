"""The oauth and istio-ingress-route relations of the dex charm.

Registrations come from the ecosystem library's own requirer, and what dex
answers is read back through that requirer: the two sides agree on the wire.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing
from unit.dex.helpers import (
    CALLBACK,
    CHARM,
    ISSUER,
    admin_secret,
    dex_config,
    dex_container,
    everything_shown,
    make_state,
    oauth_relation,
    peers,
    provider_info_seen_by_requirer,
    registration,
    route_relation,
)

from kubeflow_interfaces import istio_ingress_route

# The browser goes to the issuer's address; clients call the rest in the cluster.
SERVICE = "http://dex.kubeflow.svc.cluster.local:5556/dex"
ENDPOINTS = {
    "issuer_url": ISSUER,
    "authorization_endpoint": f"{ISSUER}/auth",
    "token_endpoint": f"{SERVICE}/token",
    "introspection_endpoint": f"{SERVICE}/token/introspect",
    "userinfo_endpoint": f"{SERVICE}/userinfo",
    "jwks_endpoint": f"{SERVICE}/keys",
    "scope": "openid email groups profile offline_access",
}


def with_oauth(*oauth: testing.Relation, **kwargs) -> testing.State:
    kwargs.setdefault("secrets", (admin_secret(),))
    return make_state(relations=(route_relation(), peers(), *oauth), **kwargs)


def peer_data(state: testing.State) -> dict[str, str]:
    return dict(next(r for r in state.relations if r.endpoint == "dex-peers").local_app_data)


def issued(state: testing.State) -> list[dict[str, object]]:
    return json.loads(peer_data(state).get("oauth-clients", "[]"))


def client_secret_of(state: testing.State, relation: testing.Relation) -> str:
    data = state.get_relation(relation.id).local_app_data
    return (state.get_secret(id=data["client_secret_id"]).latest_content or {})["secret"]


# --- registration ---------------------------------------------------------------------


def test_registration_becomes_a_static_client(ctx: testing.Context):
    relation = oauth_relation()

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    ours = state_out.get_relation(relation.id).local_app_data
    client_id = f"oidc-gateway-{relation.id}"
    assert ours["client_id"] == client_id
    secret = state_out.get_secret(id=ours["client_secret_id"])
    assert secret.owner == "app"
    assert secret.remote_grants == {relation.id: {"oidc-gateway"}}
    client_secret = (secret.latest_content or {})["secret"]
    assert len(client_secret) >= 32

    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client == {
        "id": client_id,
        "secret": client_secret,
        "name": "oidc-gateway",
        "redirectURIs": [CALLBACK],
    }

    # The requirer's own library reads the answer, secret included.
    info = provider_info_seen_by_requirer(state_out, relation)
    assert info is not None
    assert info.client_id == client_id
    assert info.client_secret == client_secret
    assert info.jwt_access_token is True
    for key, value in ENDPOINTS.items():
        assert getattr(info, key) == value

    assert client_secret not in everything_shown(ctx, state_out)
    assert issued(state_out) == [
        {"relation-id": relation.id, "client-id": client_id, "secret-id": secret.id}
    ]
    assert state_out.app_status == testing.ActiveStatus("1 oauth client(s)")


def test_several_redirect_uris(ctx: testing.Context):
    uris = [CALLBACK, "https://other.example.com/oauth2/callback"]
    relation = oauth_relation(data=registration(redirect_uri=uris))

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client["redirectURIs"] == uris


def test_device_code_client_without_redirect(ctx: testing.Context):
    grants = ("urn:ietf:params:oauth:grant-type:device_code", "refresh_token")
    relation = oauth_relation(data=registration(redirect_uri=[], grant_types=grants))

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client["redirectURIs"] == []


def test_two_clients_in_relation_order(ctx: testing.Context):
    first = oauth_relation("oidc-gateway")
    second = oauth_relation(
        "mlflow-ui", data=registration(redirect_uri="https://ml.example.com/cb")
    )

    state_out = ctx.run(ctx.on.relation_changed(second, remote_unit=0), with_oauth(first, second))

    clients = dex_config(ctx, state_out)["staticClients"]
    assert [c["id"] for c in clients] == [f"oidc-gateway-{first.id}", f"mlflow-ui-{second.id}"]
    assert clients[0]["secret"] != clients[1]["secret"]
    assert client_secret_of(state_out, first) == clients[0]["secret"]
    assert client_secret_of(state_out, second) == clients[1]["secret"]


def test_nothing_registered_yet(ctx: testing.Context):
    relation = oauth_relation(data={})

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    ours = state_out.get_relation(relation.id).local_app_data
    assert ours == {**ENDPOINTS, "jwt_access_token": "True"}
    assert dex_config(ctx, state_out)["staticClients"] == []
    assert state_out.app_status == testing.ActiveStatus("0 oauth client(s)")


def test_registration_before_the_issuer_is_known(ctx: testing.Context):
    relation = oauth_relation()
    state_in = make_state(relations=(peers(), relation), secrets=(admin_secret(),))

    waiting = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state_in)

    assert waiting.get_relation(relation.id).local_app_data == {}
    assert not any(s.label and s.label.startswith("client_secret") for s in waiting.secrets)

    answered = dataclasses.replace(waiting, relations={*waiting.relations, route_relation()})
    state_out = ctx.run(ctx.on.config_changed(), answered)

    info = provider_info_seen_by_requirer(state_out, relation)
    assert info is not None and info.issuer_url == ISSUER
    assert len(dex_config(ctx, state_out)["staticClients"]) == 1


def test_issuer_change_reaches_the_requirers(ctx: testing.Context):
    relation = oauth_relation()
    before = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))
    secret_before = client_secret_of(before, relation)
    state_in = dataclasses.replace(before, config={"issuer-url": "https://login.example.com/dex"})

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    info = provider_info_seen_by_requirer(state_out, relation)
    assert info is not None
    assert info.issuer_url == "https://login.example.com/dex"
    assert info.authorization_endpoint == "https://login.example.com/dex/auth"
    assert info.token_endpoint == f"{SERVICE}/token"
    # Same client, same secret.
    assert info.client_secret == secret_before


def test_client_secret_kept_across_hooks_and_leaders(ctx: testing.Context):
    relation = oauth_relation()
    before = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    after = ctx.run(ctx.on.leader_elected(), before)
    updated = dataclasses.replace(
        after.get_relation(relation.id),
        remote_app_data=registration(redirect_uri=[CALLBACK, "https://b.example.com/cb"]),
    )
    state_out = ctx.run(
        ctx.on.relation_changed(updated, remote_unit=0),
        dataclasses.replace(
            after, relations=(after.relations - {after.get_relation(relation.id)}) | {updated}
        ),
    )

    assert state_out.secrets == before.secrets
    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client["secret"] == client_secret_of(before, relation)
    assert client["redirectURIs"] == [CALLBACK, "https://b.example.com/cb"]


def test_client_removed_with_its_relation(ctx: testing.Context):
    keep = oauth_relation("kept-app")
    gone = oauth_relation()
    before = ctx.run(ctx.on.relation_changed(gone, remote_unit=0), with_oauth(keep, gone))
    gone_secret = before.get_relation(gone.id).local_app_data["client_secret_id"]

    state_out = ctx.run(ctx.on.relation_broken(before.get_relation(gone.id)), before)

    clients = dex_config(ctx, state_out)["staticClients"]
    assert [c["id"] for c in clients] == [f"kept-app-{keep.id}"]
    assert not any(s.id == gone_secret for s in state_out.secrets)
    assert [e["relation-id"] for e in issued(state_out)] == [keep.id]


def test_last_client_removed_clears_the_peer_list(ctx: testing.Context):
    relation = oauth_relation()
    before = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    state_out = ctx.run(ctx.on.relation_broken(before.get_relation(relation.id)), before)

    assert dex_config(ctx, state_out)["staticClients"] == []
    assert "oauth-clients" not in peer_data(state_out)
    assert {s.label for s in state_out.secrets if s.owner} == {"admin-credentials"}


def test_a_leader_scaled_away_keeps_the_client_and_its_secret(tmp_path):
    # On Kubernetes the highest-numbered unit goes; Juju runs relation-broken on
    # it for every relation it was in, and it still holds the lease.
    ctx = testing.Context(CHARM.DexCharm, unit_id=1)
    relation = oauth_relation()
    before = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0),
        with_oauth(relation, container=dex_container(tmp_path), planned_units=2),
    )
    config = (tmp_path / "etc-dex" / "config.yaml").read_text()
    leaving = dataclasses.replace(before, planned_units=1)

    state_out = ctx.run(ctx.on.relation_broken(leaving.get_relation(relation.id)), leaving)

    assert state_out.secrets == leaving.secrets
    assert peer_data(state_out) == peer_data(leaving)
    assert (tmp_path / "etc-dex" / "config.yaml").read_text() == config
    assert f"oidc-gateway-{relation.id}" in config


def test_new_leader_reissues_a_removed_secret(ctx: testing.Context):
    # Should a client secret be gone (removed by hand, say), the next leader reissues it.
    relation = oauth_relation()
    before = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))
    old_id = before.get_relation(relation.id).local_app_data["client_secret_id"]
    without = dataclasses.replace(before, secrets={s for s in before.secrets if s.id != old_id})

    state_out = ctx.run(ctx.on.leader_elected(), without)

    new_id = state_out.get_relation(relation.id).local_app_data["client_secret_id"]
    assert new_id != old_id
    assert issued(state_out)[0]["secret-id"] == new_id
    info = provider_info_seen_by_requirer(state_out, relation)
    assert info is not None
    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client["secret"] == info.client_secret


# --- registrations Dex cannot serve ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            registration(redirect_uri=[], grant_types=("client_credentials",)),
            "no grant type Dex serves (asked for: client_credentials; Dex serves "
            "authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:device_code)",
        ),
        ({"scope": "openid", "grant_types": "not json"}, "its registration does not parse"),
        (
            {**registration(), "redirect_uri": "not-a-url"},
            "Invalid URL not-a-url",
        ),
    ],
)
def test_refused_registration_blocks_the_app_only(
    ctx: testing.Context, data: dict[str, str], why: str
):
    good = oauth_relation("good-app")
    bad = oauth_relation("bad-app", data=data)

    state_out = ctx.run(ctx.on.relation_changed(bad, remote_unit=0), with_oauth(good, bad))

    assert state_out.app_status == testing.BlockedStatus(f"oauth client refused: bad-app: {why}")
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)
    assert "client_id" not in state_out.get_relation(bad.id).local_app_data
    clients = dex_config(ctx, state_out)["staticClients"]
    assert [c["id"] for c in clients] == [f"good-app-{good.id}"]


def test_unserved_scopes_and_grant_types_are_dropped_and_said(ctx: testing.Context):
    # A Hydra-style registration: scopes and a grant type Dex (v2.45) does not serve.
    relation = oauth_relation(
        "hydra-app",
        data=registration(
            scope="openid email phone address",
            grant_types=("authorization_code", "client_credentials", "refresh_token"),
        ),
    )

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    data = state_out.get_relation(relation.id).local_app_data
    assert json.loads(data["dropped-scopes"]) == ["phone", "address"]
    assert json.loads(data["dropped-grant-types"]) == ["client_credentials"]
    (client,) = dex_config(ctx, state_out)["staticClients"]
    assert client["id"] == f"hydra-app-{relation.id}"
    info = provider_info_seen_by_requirer(state_out, relation)
    assert info is not None
    assert info.client_id == client["id"]
    assert info.client_secret == client["secret"]
    assert state_out.app_status == testing.ActiveStatus(
        "1 oauth client(s); not served by Dex, dropped: hydra-app: scope phone, address "
        "and grant type client_credentials"
    )
    # A settled hook writes nothing more.
    again = ctx.run(ctx.on.update_status(), state_out)
    assert again.get_relation(relation.id).local_app_data == data


def test_dropped_keys_go_when_the_registration_asks_only_for_what_dex_serves(
    ctx: testing.Context,
):
    relation = oauth_relation(data=registration(scope="openid phone"))
    first = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))
    assert json.loads(first.get_relation(relation.id).local_app_data["dropped-scopes"]) == [
        "phone"
    ]
    secret = client_secret_of(first, relation)

    fixed = dataclasses.replace(first.get_relation(relation.id), remote_app_data=registration())
    out = ctx.run(
        ctx.on.relation_changed(fixed, remote_unit=0),
        dataclasses.replace(
            first, relations={r for r in first.relations if r.id != relation.id} | {fixed}
        ),
    )

    data = out.get_relation(relation.id).local_app_data
    assert "dropped-scopes" not in data and "dropped-grant-types" not in data
    assert client_secret_of(out, relation) == secret
    assert out.app_status == testing.ActiveStatus("1 oauth client(s)")


def test_cross_client_and_federated_scopes_are_served(ctx: testing.Context):
    scope = "openid federated:id audience:server:client_id:kfp"
    relation = oauth_relation(data=registration(scope=scope))

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))

    assert len(dex_config(ctx, state_out)["staticClients"]) == 1


# --- other units ----------------------------------------------------------------------


def test_non_leader_renders_the_clients_the_leader_issued(ctx: testing.Context):
    relation = oauth_relation()
    leader = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))
    shared = {s for s in leader.secrets if s.owner == "app"}
    follower_ctx = testing.Context(CHARM.DexCharm)

    follower = follower_ctx.run(
        follower_ctx.on.relation_changed(relation, remote_unit=0),
        make_state(
            leader=False,
            secrets=tuple(shared),
            relations=(route_relation(), peers(**peer_data(leader)), relation),
        ),
    )

    assert (
        dex_config(follower_ctx, follower)["staticClients"]
        == dex_config(ctx, leader)["staticClients"]
    )
    assert follower.get_relation(relation.id).local_app_data == {}
    assert {s for s in follower.secrets if s.owner} == {
        s for s in leader.secrets if s.owner == "app"
    }


def test_non_leader_waits_for_the_leader_to_issue(ctx: testing.Context):
    relation = oauth_relation()

    state_out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation, leader=False)
    )

    assert dex_config(ctx, state_out)["staticClients"] == []
    assert state_out.get_relation(relation.id).local_app_data == {}
    assert {s.label for s in state_out.secrets if s.owner} == {"admin-credentials"}


def test_non_leader_renders_nothing_without_the_secret(ctx: testing.Context):
    relation = oauth_relation()
    listed = json.dumps([{"relation-id": relation.id, "client-id": "x", "secret-id": "secret:x"}])
    state_in = make_state(
        leader=False,
        secrets=(admin_secret(),),
        relations=(route_relation(), peers(**{"oauth-clients": listed}), relation),
    )

    state_out = ctx.run(ctx.on.update_status(), state_in)

    assert dex_config(ctx, state_out)["staticClients"] == []


# --- the route -------------------------------------------------------------------------


def test_route_request_is_dex_under_its_issuer_path(ctx: testing.Context):
    relation = route_relation(None)

    state_out = ctx.run(
        ctx.on.relation_created(relation), make_state(relations=(relation, peers()))
    )

    # What Canonical's charms write for the same route, with the ecosystem's models.
    assert state_out.get_relation(relation.id).local_app_data == {
        "config": istio_ingress_route.config_json(app="dex", prefix="/dex", port=5556)
    }


def test_route_request_even_with_invalid_config(ctx: testing.Context):
    relation = route_relation(None)
    state_in = make_state(config={"log-level": "loud"}, relations=(relation, peers()))

    state_out = ctx.run(ctx.on.relation_created(relation), state_in)

    assert "config" in state_out.get_relation(relation.id).local_app_data
    assert state_out.get_container("dex").plan.services == {}


def test_non_leader_does_not_write_the_route_request(ctx: testing.Context):
    relation = route_relation(None)

    state_out = ctx.run(
        ctx.on.relation_created(relation),
        make_state(leader=False, relations=(relation, peers()), secrets=(admin_secret(),)),
    )

    assert state_out.get_relation(relation.id).local_app_data == {}


def test_invalid_route_host_blocks_and_changes_nothing(ctx: testing.Context):
    before = ctx.run(
        ctx.on.config_changed(),
        make_state(secrets=(admin_secret(),), container=dex_container()),
    )
    (old,) = [r for r in before.relations if r.endpoint == "istio-ingress-route"]
    bad = dataclasses.replace(
        old, remote_app_data={"external_host": "http://x/", "tls_enabled": "False"}
    )
    state_in = dataclasses.replace(before, relations={bad, *(before.relations - {old})})

    state_out = ctx.run(ctx.on.relation_changed(bad), state_in)

    assert state_out.unit_status == testing.BlockedStatus(
        "istio-ingress-route: external_host 'http://x/' is not a host name or address"
    )
    assert state_out.get_container("dex").plan == before.get_container("dex").plan


def test_route_removed_leaves_dex_running(ctx: testing.Context):
    relation = route_relation()
    before = ctx.run(
        ctx.on.config_changed(),
        make_state(
            relations=(relation, peers()), secrets=(admin_secret(),), container=dex_container()
        ),
    )

    state_out = ctx.run(ctx.on.relation_broken(before.get_relation(relation.id)), before)

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for the route's URL (or set issuer-url)"
    )
    assert state_out.get_container("dex").plan == before.get_container("dex").plan


# --- client secret rotation (our extension of the interface) ---------------------------


def test_a_new_rotation_token_gets_a_new_client_secret(ctx: testing.Context):
    relation = oauth_relation()
    first = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), with_oauth(relation))
    old = client_secret_of(first, relation)
    secret_id = first.get_relation(relation.id).local_app_data["client_secret_id"]

    asked = dataclasses.replace(
        first.get_relation(relation.id),
        remote_app_data={**relation.remote_app_data, "client-secret-rotation": "token-1"},
    )
    rotated = ctx.run(
        ctx.on.relation_changed(asked, remote_unit=0),
        dataclasses.replace(
            first, relations=(set(first.relations) - {first.get_relation(relation.id)}) | {asked}
        ),
    )
    ours = rotated.get_relation(relation.id).local_app_data
    new = client_secret_of(rotated, relation)
    assert new != old and len(new) >= 32
    assert ours["client_secret_id"] == secret_id  # the same secret, a new revision
    assert ours["client-secret-rotation"] == "token-1"  # the answer to the request
    (client,) = dex_config(ctx, rotated)["staticClients"]
    assert client["secret"] == new
    assert any(e.get("rotation") == "token-1" for e in issued(rotated))  # wakes other units

    # The same token again: nothing more rotates.
    again = ctx.run(
        ctx.on.relation_changed(rotated.get_relation(relation.id), remote_unit=0), rotated
    )
    assert client_secret_of(again, relation) == new
