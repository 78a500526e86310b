"""`oauth`: charmlibs-interfaces-oauth's requirer against our real dex charm.

The requirer registers the way Hydra's clients do through the same library
(it was migrated from `charms.hydra.v0.oauth`): scopes and grant types Hydra
serves and Dex does not. Dex (v2.45.1, dexidp/dex server/oauth2.go and
server/server.go) recognises the scopes openid, email, groups, profile,
offline_access, federated:id and audience:server:client_id:<id>, and has no
client_credentials grant.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import ops
import pytest
from charmlibs.interfaces.oauth import ClientConfig, OAuthRequirer
from ops import testing
from unit.dex.helpers import (
    CALLBACK,
    CHARM,
    admin_secret,
    dex_config,
    make_state,
    peers,
    route_relation,
)

REQUIRER_META = {"name": "hydra-app", "requires": {"oauth": {"interface": "oauth", "limit": 1}}}


class OAuthClientCharm(ops.CharmBase):
    """A client registering through the library, as Hydra's requirers do."""

    config_to_register: ClassVar[ClientConfig | None] = None
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.oauth = OAuthRequirer(self, self.config_to_register, relation_name="oauth")
        framework.observe(self.oauth.on.oauth_info_changed, self._on_info)

    def _on_info(self, event: ops.EventBase) -> None:
        info = self.oauth.get_provider_info()
        assert info is not None
        type(self).seen.append(
            {"client_id": info.client_id, "client_secret": info.client_secret, "scope": info.scope}
        )
        self.unit.status = ops.ActiveStatus(f"client {info.client_id}")


def _register(config: ClientConfig) -> testing.Relation:
    """The requirer's side after the library registered `config` (relation-created)."""
    OAuthClientCharm.config_to_register = config
    ctx = testing.Context(OAuthClientCharm, meta=REQUIRER_META)
    relation = testing.Relation("oauth", remote_app_name="dex")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations={relation})
    )
    result = out.get_relation(relation.id)
    assert isinstance(result, testing.Relation)
    return result


@pytest.fixture
def dex() -> testing.Context:
    return testing.Context(CHARM.DexCharm)


def _dex_answers(
    ctx: testing.Context, registration: dict[str, str]
) -> tuple[testing.State, testing.Relation]:
    ours = testing.Relation(
        "oauth", interface="oauth", remote_app_name="hydra-app", remote_app_data=registration
    )
    state = make_state(relations=(route_relation(), peers(), ours), secrets=(admin_secret(),))
    out = ctx.run(ctx.on.relation_changed(ours, remote_unit=0), state)
    return out, ours


def test_hydra_style_registration_gets_a_client_and_hears_what_was_dropped(
    dex: testing.Context,
):
    OAuthClientCharm.seen = []
    theirs = _register(
        ClientConfig(
            redirect_uri=CALLBACK,
            scope="openid profile email phone",
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
        )
    )
    registration = dict(theirs.local_app_data)

    dex_out, ours = _dex_answers(dex, registration)

    answer = dict(dex_out.get_relation(ours.id).local_app_data)
    assert answer["client_id"] == f"hydra-app-{ours.id}"
    assert json.loads(answer["dropped-scopes"]) == ["phone"]
    assert json.loads(answer["dropped-grant-types"]) == ["client_credentials"]
    assert dex_out.app_status == testing.ActiveStatus(
        "1 oauth client(s); not served by Dex, dropped: hydra-app: scope phone and "
        "grant type client_credentials"
    )
    shared = dex_out.get_secret(id=answer["client_secret_id"])
    (static_client,) = dex_config(dex, dex_out)["staticClients"]

    # The library reads dex's answer, the two extra keys beside it, and the secret.
    ctx = testing.Context(OAuthClientCharm, meta=REQUIRER_META)
    theirs = testing.Relation(
        "oauth",
        id=theirs.id,
        remote_app_name="dex",
        local_app_data=registration,
        remote_app_data=answer,
    )
    seen_secret = testing.Secret(tracked_content=dict(shared.latest_content or {}), id=shared.id)
    out = ctx.run(
        ctx.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}, secrets={seen_secret}),
    )

    assert out.unit_status == testing.ActiveStatus(f"client hydra-app-{ours.id}")
    (info,) = OAuthClientCharm.seen
    assert info["client_id"] == static_client["id"]
    assert info["client_secret"] == static_client["secret"]
    assert "phone" not in info["scope"].split()  # Dex's scopes, as it announces them


def test_a_client_credentials_only_registration_is_refused(dex: testing.Context):
    theirs = _register(
        ClientConfig(redirect_uri=None, scope="openid", grant_types=["client_credentials"])
    )

    dex_out, ours = _dex_answers(dex, dict(theirs.local_app_data))

    assert dex_out.app_status.name == "blocked"
    assert dex_out.app_status.message.startswith(
        "oauth client refused: hydra-app: no grant type Dex serves (asked for: client_credentials"
    )
    assert "client_id" not in dex_out.get_relation(ours.id).local_app_data
    assert not any(s.label == f"client_secret_{ours.id}" for s in dex_out.secrets)
