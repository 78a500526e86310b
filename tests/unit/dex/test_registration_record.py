"""The registrations are read with the oauth library once, then from the leader's record.

A settled hook finds the requirers' data as the leader last read it and takes
the registrations from the peer databag; any change to that data, or a charm
upgrade, reads them with the library again.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from ops import testing
from unit.dex.helpers import (
    CHARM,
    admin_secret,
    dex_config,
    make_state,
    oauth_relation,
    peers,
    registration,
    route_relation,
)

OTHER_CALLBACK = "https://other.example.com/oauth2/callback"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The relation ids whose registration the charm reads with the library."""
    seen: list[int] = []
    read = CHARM.OAuthClients.registration

    def counted(self, relation):
        seen.append(relation.id)
        return read(self, relation)

    monkeypatch.setattr(CHARM.OAuthClients, "registration", counted)
    return seen


def settle(ctx: testing.Context, *relations: testing.Relation) -> testing.State:
    state = make_state(
        relations=(route_relation(), peers(), *relations), secrets=(admin_secret(),)
    )
    return ctx.run(ctx.on.config_changed(), state)


def peer_record(state: testing.State) -> dict[str, object]:
    peer = next(r for r in state.relations if r.endpoint == "dex-peers")
    return json.loads(peer.local_app_data[CHARM.REGISTRATIONS_KEY])


def test_settled_update_status_reads_no_registration(ctx: testing.Context, reads: list[int]):
    relation = oauth_relation()
    settled = settle(ctx, relation)
    assert reads == [relation.id]
    reads.clear()

    out = ctx.run(ctx.on.update_status(), settled)

    assert reads == []
    assert out.relations == settled.relations
    assert out.secrets == settled.secrets
    # A settled leader pushes nothing: its container (plan, services) is as it was.
    assert out.get_container("dex") == settled.get_container("dex")
    assert out.app_status == settled.app_status == testing.ActiveStatus("1 oauth client(s)")


def test_a_changed_registration_is_read_again(ctx: testing.Context, reads: list[int]):
    relation = oauth_relation()
    settled = settle(ctx, relation)
    reads.clear()
    changed = dataclasses.replace(
        settled.get_relation(relation.id), remote_app_data=registration(OTHER_CALLBACK)
    )
    state = dataclasses.replace(
        settled, relations=(settled.relations - {settled.get_relation(relation.id)}) | {changed}
    )

    out = ctx.run(ctx.on.relation_changed(changed, remote_unit=0), state)

    assert reads == [relation.id]
    (client,) = dex_config(ctx, out)["staticClients"]
    assert client["redirectURIs"] == [OTHER_CALLBACK]
    assert peer_record(out) != peer_record(settled)
    reads.clear()

    again = ctx.run(ctx.on.update_status(), out)

    assert reads == []
    assert again.relations == out.relations


def test_dropped_and_refused_registrations_keep_their_status(
    ctx: testing.Context, reads: list[int]
):
    dropping = oauth_relation("kfp", data=registration(scope="openid phone"))
    refused = oauth_relation("hydra-app", data=registration(grant_types=("client_credentials",)))
    settled = settle(ctx, dropping, refused)
    reads.clear()

    out = ctx.run(ctx.on.update_status(), settled)

    assert reads == []
    assert out.app_status == settled.app_status
    assert out.app_status.name == "blocked"
    assert out.app_status.message.startswith(
        "oauth client refused: hydra-app: no grant type Dex serves"
    )
    assert out.relations == settled.relations
    assert dex_config(ctx, out) == dex_config(ctx, settled)


def test_dropped_scopes_are_shown_from_the_record(ctx: testing.Context, reads: list[int]):
    dropping = oauth_relation("kfp", data=registration(scope="openid phone"))
    settled = settle(ctx, dropping)
    reads.clear()

    out = ctx.run(ctx.on.update_status(), settled)

    assert reads == []
    assert out.app_status == testing.ActiveStatus(
        "1 oauth client(s); not served by Dex, dropped: kfp: scope phone"
    )


def test_other_units_take_the_leaders_record(ctx: testing.Context, reads: list[int]):
    relation = oauth_relation()
    leader = settle(ctx, relation)
    reads.clear()
    peer = next(r for r in leader.relations if r.endpoint == "dex-peers")
    follower_state = make_state(
        leader=False,
        secrets=tuple(s for s in leader.secrets if s.owner == "app"),
        relations=(route_relation(), peers(**peer.local_app_data), relation),
    )

    follower = ctx.run(ctx.on.update_status(), follower_state)

    assert reads == []
    assert dex_config(ctx, follower)["staticClients"] == dex_config(ctx, leader)["staticClients"]
    assert follower.relations == follower_state.relations


def test_upgrade_reads_the_registrations_again(ctx: testing.Context, reads: list[int]):
    relation = oauth_relation()
    settled = settle(ctx, relation)
    reads.clear()

    out = ctx.run(ctx.on.upgrade_charm(), settled)

    assert reads == [relation.id]
    assert out.relations == settled.relations  # read the same: nothing written


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda r: json.dumps(dict(r, digest="0" * 32)), id="other-data"),
        pytest.param(lambda r: "{not json", id="not-json"),
        pytest.param(lambda r: json.dumps({"digest": r["digest"]}), id="incomplete"),
    ],
)
def test_a_record_not_of_this_data_is_not_used(ctx: testing.Context, reads: list[int], spoil):
    relation = oauth_relation()
    settled = settle(ctx, relation)
    reads.clear()
    stale = peers(**{CHARM.REGISTRATIONS_KEY: spoil(peer_record(settled))})
    state = make_state(relations=(route_relation(), stale, relation), secrets=settled.secrets)

    out = ctx.run(ctx.on.update_status(), state)

    assert reads == [relation.id]
    assert peer_record(out) == peer_record(settled)


def test_the_record_goes_with_the_last_relation(ctx: testing.Context):
    relation = oauth_relation()
    settled = settle(ctx, relation)
    assert peer_record(settled)["registrations"]

    out = ctx.run(ctx.on.relation_broken(settled.get_relation(relation.id)), settled)

    peer = next(r for r in out.relations if r.endpoint == "dex-peers")
    assert CHARM.REGISTRATIONS_KEY not in peer.local_app_data
