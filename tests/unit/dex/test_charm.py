"""The dex charm: config, the rendered Dex config, Pebble, status, leadership, no-op hooks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bcrypt
import ops
import pytest
from ops import testing
from unit.dex.helpers import (
    ADMIN_HASH,
    ADMIN_PASSWORD,
    CHARM,
    DB_HOST,
    DB_PASSWORD,
    DB_USER,
    ISSUER,
    admin_secret,
    bcrypt_hash,
    config_text,
    dex_config,
    dex_container,
    everything_shown,
    has_config,
    make_state,
    oauth_relation,
    peers,
    replace_secret,
    route_relation,
    user_secret,
)

NO_LOGIN = "no way to log in: set connectors, static-users-secret-id or admin-username"
ENTRA_SECRET = "entra-Client~Secret$with.dollar"
LDAP_PASSWORD = "ldap-bind-pw-0123"
ENTRA = """
- type: microsoft
  id: entra
  name: Microsoft Entra ID
  config:
    clientID: 2f1c7e4a-0000-4000-8000-000000000001
    clientSecret: ${entra-client-secret}
    tenant: 9b0d2c31-0000-4000-8000-000000000002
"""
OIDC = """
- type: oidc
  id: keycloak
  name: Keycloak
  config:
    issuer: https://keycloak.example.com/realms/kubeflow
    clientID: kubeflow
    clientSecret: literal-not-secret
    redirectURI: https://kubeflow.example.com/dex/callback
"""
LDAP = """
- type: ldap
  id: corp
  name: Corporate LDAP
  config:
    host: ldap.example.com:636
    bindDN: cn=dex,dc=example,dc=com
    bindPW: ${ldap-bind-password}
    userSearch:
      baseDN: ou=people,dc=example,dc=com
      username: uid
      idAttr: uid
      emailAttr: mail
      nameAttr: cn
"""
SAML = """
- type: saml
  id: adfs
  name: ADFS
  config:
    ssoURL: https://adfs.example.com/adfs/ls/
    caData: ${saml-ca}
    usernameAttr: name
    emailAttr: email
"""
ALICE_HASH = bcrypt_hash("alice-password")


def connectors_secret() -> testing.Secret:
    return user_secret(
        {
            "entra-client-secret": ENTRA_SECRET,
            "ldap-bind-password": LDAP_PASSWORD,
            "saml-ca": "Q0EgZGF0YQ==",
        }
    )


ALICE = f'- email: alice@example.com\n  username: alice\n  hash: "{ALICE_HASH}"\n'


def users_secret(users: str = ALICE) -> testing.Secret:
    return user_secret({"users": users})


def settled(ctx: testing.Context, **kwargs: Any) -> testing.State:
    """A leader that has configured Dex already (admin secret made, file pushed)."""
    kwargs.setdefault("secrets", (admin_secret(),))
    return ctx.run(ctx.on.config_changed(), make_state(**kwargs))


def assert_untouched(ctx: testing.Context, state: testing.State) -> None:
    assert state.get_container("dex").plan.services == {}
    assert not has_config(ctx, state)
    assert not any(s.label == "admin-credentials" for s in state.secrets)
    assert not state.opened_ports


# --- valid config ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"issuer-url": "https://kubeflow.example.com/dex"},
        {"issuer-url": "https://kubeflow.example.com:8443/dex/"},
        {"issuer-url": "http://10.0.0.5/dex"},
        {"admin-username": "kfadmin"},
        {"admin-username": "platform.admin@example.com"},
        {"log-level": "debug"},
        {"log-level": "warn"},
        {"log-level": "error"},
        {"connectors": OIDC},
        {"connectors": OIDC, "admin-username": ""},
        {"connectors": "# nothing yet\n"},
    ],
)
def test_valid_config_runs_dex(ctx: testing.Context, config: dict[str, str]):
    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert isinstance(state_out.unit_status, testing.ActiveStatus)
    assert state_out.app_status == testing.ActiveStatus("0 oauth client(s)")
    assert "dex" in state_out.get_container("dex").plan.services
    assert dex_config(ctx, state_out)["logger"]["level"] == config.get("log-level", "info")


@pytest.mark.parametrize(
    "connectors",
    [ENTRA, LDAP, SAML, ENTRA + LDAP + SAML + OIDC],
    ids=["entra", "ldap", "saml", "all"],
)
def test_connectors_with_secret_values(ctx: testing.Context, connectors: str):
    secret = connectors_secret()
    config = {"connectors": connectors, "connectors-secret-id": secret.id, "admin-username": ""}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config, secrets=(secret,)))

    assert state_out.unit_status == testing.ActiveStatus(ISSUER)
    rendered = dex_config(ctx, state_out)
    assert rendered["enablePasswordDB"] is False
    assert rendered["staticPasswords"] == []
    assert len(rendered["connectors"]) == connectors.count("- type:")
    text = config_text(ctx, state_out)
    assert "${" not in text


# --- invalid config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"issuer-url": "ftp://kubeflow.example.com/dex"}, "issuer-url"),
        ({"issuer-url": "kubeflow.example.com/dex"}, "issuer-url"),
        ({"issuer-url": "https://kubeflow.example.com/"}, "issuer-url"),
        ({"issuer-url": "https://kubeflow.example.com/auth"}, "issuer-url"),
        ({"issuer-url": "https://user:pw@kubeflow.example.com/dex"}, "issuer-url"),
        ({"issuer-url": "https://kubeflow.example.com/dex?x=1"}, "issuer-url"),
        ({"issuer-url": "https://kubeflow.example.com:99999/dex"}, "issuer-url"),
        ({"connectors": "- type: [oidc"}, "connectors"),
        ({"connectors": "type: oidc"}, "connectors"),
        ({"connectors": "- just a string"}, "connectors"),
        ({"connectors": "- {type: oidc, id: a, config: {}, colour: red}"}, "connectors"),
        ({"connectors": "- {type: oidc, config: {}}"}, "connectors"),
        ({"connectors": "- {type: oidc, id: 'has space', config: {}}"}, "connectors"),
        ({"connectors": "- {type: oidc, id: local, config: {}}"}, "connectors"),
        ({"connectors": "- {type: okta, id: okta, config: {}}"}, "connectors"),
        ({"connectors": "- {type: mockPassword, id: mock, config: {}}"}, "connectors"),
        ({"connectors": "- {id: untyped, config: {}}"}, "connectors"),
        ({"connectors": "- {type: oidc, id: a, name: '', config: {}}"}, "connectors"),
        ({"connectors": "- {type: oidc, id: a, config: [1, 2]}"}, "connectors"),
        (
            {"connectors": "- {type: oidc, id: a, config: {}}\n- {type: ldap, id: a, config: {}}"},
            "connectors",
        ),
        ({"admin-username": "bad name!"}, "admin-username"),
        ({"admin-username": "a@b@example.com"}, "admin-username"),
        ({"admin-username": "-leading-dash"}, "admin-username"),
        ({"log-level": "verbose"}, "log-level"),
        ({"log-level": "INFO"}, "log-level"),
    ],
)
def test_invalid_config_blocks_and_leaves_workload(
    ctx: testing.Context, config: dict[str, str], option: str
):
    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith(f"invalid config: {option}:")
    assert state_out.app_status == state_out.unit_status
    assert_untouched(ctx, state_out)


def test_unknown_connector_type_names_the_known_ones(ctx: testing.Context):
    config = {"connectors": "- {type: okta, id: okta, config: {}}"}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    message = state_out.unit_status.message
    assert "unknown type 'okta'" in message
    assert "microsoft" in message and "oidc" in message and "saml" in message


@pytest.mark.parametrize(
    ("connectors", "content", "why"),
    [
        (ENTRA, None, "${entra-client-secret} need a secret: set connectors-secret-id"),
        (
            ENTRA + LDAP,
            {"entra-client-secret": ENTRA_SECRET},
            "${ldap-bind-password} not found in the connectors-secret-id secret",
        ),
    ],
)
def test_placeholders_without_values_block(
    ctx: testing.Context, connectors: str, content: dict[str, str] | None, why: str
):
    secrets: tuple[testing.Secret, ...] = ()
    config = {"connectors": connectors}
    if content is not None:
        secret = user_secret(content)
        secrets = (secret,)
        config["connectors-secret-id"] = secret.id

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config, secrets=secrets))

    assert state_out.unit_status == testing.BlockedStatus(f"connectors: {why}")
    assert_untouched(ctx, state_out)
    assert ENTRA_SECRET not in everything_shown(ctx, state_out)


@pytest.mark.parametrize("option", ["connectors-secret-id", "static-users-secret-id"])
def test_secret_not_granted_blocks(ctx: testing.Context, option: str):
    not_granted = testing.Secret(tracked_content={"users": ALICE}, owner=None)
    config = {option: not_granted.id, "connectors": OIDC}

    # The secret is not in the state: this application cannot see it.
    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert state_out.unit_status == testing.BlockedStatus(
        f"{option}: cannot read the secret; grant it to this application"
    )
    assert_untouched(ctx, state_out)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"people": ALICE}, "the secret needs the key `users`"),
        ({"users": ALICE, "extra": "x"}, "the secret has unknown keys: extra"),
        ({"users": "- email: [alice"}, "`users` is not valid YAML (line 1, column 16)"),
        (
            {"users": "email: alice@example.com"},
            "`users` must be a YAML list of at least one user",
        ),
        ({"users": "[]"}, "`users` must be a YAML list of at least one user"),
        ({"users": "- alice"}, "user 1 must be a mapping with email and hash"),
        ({"users": f'- hash: "{ALICE_HASH}"'}, "user 1 needs an email address"),
        ({"users": f'- email: not-an-email\n  hash: "{ALICE_HASH}"'}, "needs an email address"),
        (
            {"users": "- email: bob@example.com\n  password: hunter2hunter2"},
            "user bob@example.com: plain passwords are refused",
        ),
        (
            {"users": "- email: bob@example.com\n  hash: hunter2hunter2"},
            "user bob@example.com: `hash` must be a bcrypt hash with cost 10 to 16",
        ),
        (
            {"users": "- email: bob@example.com\n  hash: '$2b$04$" + "a" * 53 + "'"},
            "`hash` must be a bcrypt hash with cost 10 to 16",
        ),
        (
            {"users": "- email: bob@example.com\n  hash: '$2b$17$" + "a" * 53 + "'"},
            "`hash` must be a bcrypt hash with cost 10 to 16",
        ),
        (
            {"users": "- email: bob@example.com\n  hash: '$1$saltsalt$" + "a" * 22 + "'"},
            "`hash` must be a bcrypt hash",
        ),
        (
            {"users": ALICE + "  colour: red\n"},
            "user alice@example.com has unknown keys: colour",
        ),
        ({"users": ALICE + "  groups: admins\n"}, "groups must be a list of names"),
        ({"users": ALICE + "  username: ''\n"}, "username must be a non-empty string"),
        ({"users": ALICE + "  userID: ''\n"}, "userID must be a non-empty string"),
        (
            {"users": ALICE + ALICE.replace("alice@", "ALICE@")},
            "user ALICE@example.com is listed twice",
        ),
        (
            {"users": ALICE.replace("alice@example.com", "admin@kubeflow.local")},
            "user admin@kubeflow.local is the admin user (see admin-username)",
        ),
    ],
)
def test_static_users_secret_invalid_blocks(
    ctx: testing.Context, content: dict[str, str], why: str
):
    secret = user_secret(content)

    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(config={"static-users-secret-id": secret.id}, secrets=(secret,)),
    )

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith("static-users-secret-id: ")
    assert why in state_out.unit_status.message
    assert_untouched(ctx, state_out)
    shown = everything_shown(ctx, state_out)
    assert ALICE_HASH not in shown
    assert "hunter2hunter2" not in shown


def test_invalid_config_leaves_running_dex_alone(ctx: testing.Context, tmp_path: Path):
    before = settled(ctx, container=dex_container(tmp_path))
    text_before = config_text(ctx, before)

    bad = dataclasses.replace(before, config={"connectors": "- {type: okta, id: x}"})
    state_out = ctx.run(ctx.on.config_changed(), bad)

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.get_container("dex").plan == before.get_container("dex").plan
    assert config_text(ctx, state_out) == text_before
    assert state_out.secrets == before.secrets


# --- who can log in -------------------------------------------------------------------


def test_no_way_to_log_in_blocks(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state(config={"admin-username": ""}))

    assert state_out.unit_status == testing.BlockedStatus(NO_LOGIN)
    assert state_out.app_status == testing.BlockedStatus(NO_LOGIN)
    assert_untouched(ctx, state_out)


def test_empty_connector_list_is_no_way_to_log_in(ctx: testing.Context):
    config = {"admin-username": "", "connectors": "[]"}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert state_out.unit_status == testing.BlockedStatus(NO_LOGIN)


def test_static_users_alone_are_a_way_to_log_in(ctx: testing.Context):
    secret = users_secret()
    config = {"static-users-secret-id": secret.id, "admin-username": ""}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config, secrets=(secret,)))

    assert state_out.unit_status == testing.ActiveStatus(ISSUER)
    rendered = dex_config(ctx, state_out)
    assert rendered["enablePasswordDB"] is True
    assert [u["email"] for u in rendered["staticPasswords"]] == ["alice@example.com"]
    assert not any(s.label == "admin-credentials" for s in state_out.secrets)


# --- the rendered config --------------------------------------------------------------


def test_rendered_config_field_by_field(ctx: testing.Context):
    connectors = connectors_secret()
    users = users_secret(
        ALICE
        + f'- email: bob@example.com\n  hash: "{ALICE_HASH}"\n  userID: bob-1\n'
        + "  groups: [ml-team, admins]\n"
    )
    config = {
        "connectors": ENTRA + OIDC + LDAP,
        "connectors-secret-id": connectors.id,
        "static-users-secret-id": users.id,
        "admin-username": "kfadmin",
        "log-level": "debug",
    }

    state_out = ctx.run(
        ctx.on.config_changed(), make_state(config=config, secrets=(connectors, users))
    )

    rendered = dex_config(ctx, state_out)
    assert rendered["issuer"] == ISSUER
    assert rendered["storage"] == {
        "type": "mysql",
        "config": {
            "host": DB_HOST,
            "port": 3306,
            "database": "dex",
            "user": DB_USER,
            "password": DB_PASSWORD,
            "ssl": {"mode": "preferred"},
        },
    }
    assert rendered["web"] == {"http": "0.0.0.0:5556"}
    assert rendered["telemetry"] == {"http": "0.0.0.0:5558"}
    assert rendered["logger"] == {"level": "debug", "format": "json"}
    assert rendered["oauth2"] == {
        "responseTypes": ["code"],
        "grantTypes": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "skipApprovalScreen": True,
    }
    assert rendered["enablePasswordDB"] is True
    assert rendered["staticClients"] == []

    admin, alice, bob = rendered["staticPasswords"]
    assert set(admin) == {"email", "hash", "username", "userID"}
    assert admin["email"] == "kfadmin@kubeflow.local"
    assert admin["username"] == "kfadmin"
    assert admin["hash"].startswith("$2b$12$")
    assert alice == {
        "email": "alice@example.com",
        "hash": ALICE_HASH,
        "username": "alice",
        "userID": alice["userID"],
    }
    assert len(alice["userID"]) == 36  # a UUID derived from the email
    assert bob == {
        "email": "bob@example.com",
        "hash": ALICE_HASH,
        "username": "bob",
        "userID": "bob-1",
        "groups": ["ml-team", "admins"],
    }

    entra, keycloak, ldap = rendered["connectors"]
    assert entra == {
        "type": "microsoft",
        "id": "entra",
        "name": "Microsoft Entra ID",
        "config": {
            "clientID": "2f1c7e4a-0000-4000-8000-000000000001",
            "clientSecret": ENTRA_SECRET,
            "tenant": "9b0d2c31-0000-4000-8000-000000000002",
            "redirectURI": f"{ISSUER}/callback",
        },
    }
    # A redirectURI of its own is kept.
    assert keycloak["config"]["redirectURI"] == "https://kubeflow.example.com/dex/callback"
    assert keycloak["config"]["clientSecret"] == "literal-not-secret"
    # LDAP has no redirect; nested values are substituted too.
    assert "redirectURI" not in ldap["config"]
    assert ldap["config"]["bindPW"] == LDAP_PASSWORD
    assert ldap["config"]["userSearch"]["emailAttr"] == "mail"

    shown = everything_shown(ctx, state_out)
    for value in (ENTRA_SECRET, LDAP_PASSWORD, ALICE_HASH, admin["hash"]):
        assert value not in shown


def test_user_ids_are_the_same_on_every_render(ctx: testing.Context):
    users = users_secret()
    config = {"static-users-secret-id": users.id}
    first = ctx.run(ctx.on.config_changed(), make_state(config=config, secrets=(users,)))
    other_unit = testing.Context(CHARM.DexCharm)

    second = other_unit.run(
        other_unit.on.config_changed(),
        make_state(config=config, secrets=(users, first.get_secret(label="admin-credentials"))),
    )

    assert (
        dex_config(ctx, first)["staticPasswords"]
        == dex_config(other_unit, second)["staticPasswords"]
    )


def test_placeholder_escape_and_partial_substitution(ctx: testing.Context):
    secret = user_secret({"tenant": "tenant-1"})
    connectors = """
- type: oidc
  id: corp
  name: Corp
  config:
    issuer: https://login.example.com/${tenant}/v2.0
    clientID: kubeflow
    clientSecret: $${not-a-placeholder}
"""
    config = {"connectors": connectors, "connectors-secret-id": secret.id}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config, secrets=(secret,)))

    (corp,) = dex_config(ctx, state_out)["connectors"]
    assert corp["config"]["issuer"] == "https://login.example.com/tenant-1/v2.0"
    assert corp["config"]["clientSecret"] == "${not-a-placeholder}"


def test_admin_hash_checks_against_the_action_password(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state())
    (admin,) = dex_config(ctx, state_out)["staticPasswords"]
    text = config_text(ctx, state_out)

    ctx.run(ctx.on.action("get-admin-password"), state_out)

    results = ctx.action_results or {}
    password = results["password"]
    assert len(password) >= 24
    assert bcrypt.checkpw(password.encode(), admin["hash"].encode())
    assert results["email"] == admin["email"] == "admin@kubeflow.local"
    assert results["username"] == admin["username"] == "admin"
    assert password not in text
    shown = everything_shown(ctx, state_out)
    assert password not in shown
    assert admin["hash"] not in shown
    stored = state_out.get_secret(label="admin-credentials").tracked_content
    assert stored == {"password": password, "hash": admin["hash"]}


def test_admin_secret_creation_wakes_the_other_units(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state())

    peer = next(r for r in state_out.relations if r.endpoint == "dex-peers")
    secret = state_out.get_secret(label="admin-credentials")
    assert peer.local_app_data == {"admin-secret-id": secret.id}


def test_admin_password_is_generated_once(ctx: testing.Context):
    first = ctx.run(ctx.on.config_changed(), make_state())
    secret_before = first.get_secret(label="admin-credentials")

    second = ctx.run(ctx.on.update_status(), first)

    assert second.get_secret(label="admin-credentials") == secret_before


def test_malformed_admin_secret_is_replaced(ctx: testing.Context):
    broken = admin_secret(password_hash="not-a-hash")

    state_out = ctx.run(ctx.on.config_changed(), make_state(secrets=(broken,)))

    content = state_out.get_secret(label="admin-credentials").latest_content or {}
    assert content["hash"].startswith("$2b$12$")
    assert bcrypt.checkpw(content["password"].encode(), content["hash"].encode())


def test_admin_email_given_as_username(ctx: testing.Context):
    config = {"admin-username": "ops@example.com"}

    state_out = ctx.run(
        ctx.on.config_changed(), make_state(config=config, secrets=(admin_secret(),))
    )

    (admin,) = dex_config(ctx, state_out)["staticPasswords"]
    assert admin["email"] == "ops@example.com"
    assert admin["username"] == "ops"
    assert admin["hash"] == ADMIN_HASH


def test_admin_disabled_keeps_its_secret_and_drops_the_user(ctx: testing.Context):
    config = {"admin-username": "", "connectors": OIDC}

    state_out = ctx.run(
        ctx.on.config_changed(), make_state(config=config, secrets=(admin_secret(),))
    )

    rendered = dex_config(ctx, state_out)
    assert rendered["staticPasswords"] == []
    assert rendered["enablePasswordDB"] is False
    assert state_out.get_secret(label="admin-credentials").tracked_content["password"] == (
        ADMIN_PASSWORD
    )


# --- the issuer -----------------------------------------------------------------------


def test_issuer_from_the_route_url(ctx: testing.Context):
    relations = (route_relation("kubeflow.example.com:8443", tls_enabled=True), peers())

    state_out = ctx.run(ctx.on.config_changed(), make_state(relations=relations))

    assert dex_config(ctx, state_out)["issuer"] == "https://kubeflow.example.com:8443/dex"
    assert state_out.unit_status == testing.ActiveStatus("https://kubeflow.example.com:8443/dex")


def test_issuer_url_overrides_the_route(ctx: testing.Context):
    config = {"issuer-url": "https://login.example.com/dex/"}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config))

    assert dex_config(ctx, state_out)["issuer"] == "https://login.example.com/dex"


def test_issuer_url_without_a_route(ctx: testing.Context):
    config = {"issuer-url": "https://login.example.com/dex"}

    state_out = ctx.run(ctx.on.config_changed(), make_state(config=config, relations=(peers(),)))

    assert state_out.unit_status == testing.ActiveStatus("https://login.example.com/dex")


@pytest.mark.parametrize(
    "relations",
    [(peers(),), (route_relation(None), peers())],
    ids=["no-route", "route-not-answered"],
)
def test_no_issuer_waits_and_does_not_start_dex(
    ctx: testing.Context, relations: tuple[testing.RelationBase, ...]
):
    state_out = ctx.run(ctx.on.config_changed(), make_state(relations=relations))

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for the route's URL (or set issuer-url)"
    )
    assert state_out.get_container("dex").plan.services == {}
    assert not has_config(ctx, state_out)
    # The leader still prepares the admin user meanwhile.
    assert state_out.get_secret(label="admin-credentials")


def test_issuer_change_rewrites_config_and_restarts(ctx: testing.Context, tmp_path: Path):
    before = settled(ctx, container=dex_container(tmp_path))
    (old,) = [r for r in before.relations if r.endpoint == "istio-ingress-route"]
    moved = dataclasses.replace(
        old, remote_app_data={"external_host": "kubeflow.example.com", "tls_enabled": "True"}
    )
    state_in = dataclasses.replace(
        before,
        relations={moved, *[r for r in before.relations if r.endpoint != "istio-ingress-route"]},
    )

    state_out = ctx.run(ctx.on.relation_changed(moved, remote_unit=0), state_in)

    assert dex_config(ctx, state_out)["issuer"] == "https://kubeflow.example.com/dex"
    assert state_out.unit_status == testing.ActiveStatus("https://kubeflow.example.com/dex")


# --- Pebble and the container ---------------------------------------------------------


def test_pebble_layer_checks_and_ports(ctx: testing.Context, tmp_path: Path):
    container = dex_container(tmp_path)

    state_out = ctx.run(ctx.on.pebble_ready(container), make_state(container=container))

    out = state_out.get_container("dex")
    service = out.plan.services["dex"]
    assert service.command == "/usr/local/bin/dex serve /etc/dex/config.yaml"
    assert service.startup == "enabled"
    assert service.user_id == 1001
    assert service.group_id == 1001
    assert dict(service.environment) == {"DEX_EXPAND_ENV": "false"}
    assert dict(service.on_check_failure) == {"dex-alive": "restart"}
    checks = out.plan.checks
    assert checks["dex-alive"].level == ops.pebble.CheckLevel.ALIVE
    assert checks["dex-alive"].http == {"url": "http://localhost:5558/healthz/live"}
    assert checks["dex-ready"].level == ops.pebble.CheckLevel.READY
    assert checks["dex-ready"].http == {"url": "http://localhost:5558/healthz"}
    assert out.service_statuses["dex"] == ops.pebble.ServiceStatus.ACTIVE
    assert state_out.opened_ports == {testing.TCPPort(5556)}
    config_file = tmp_path / "etc-dex" / "config.yaml"
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)


def test_container_not_ready_waits(ctx: testing.Context):
    relation = oauth_relation()
    state_in = make_state(
        container=dex_container(can_connect=False),
        relations=(route_relation(), peers(), relation),
    )

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for Pebble in the dex container"
    )
    # The leader's own work does not wait for the workload.
    assert state_out.get_secret(label="admin-credentials")
    assert "client_id" in state_out.get_relation(relation.id).local_app_data


def test_stopped_dex_is_started_again(ctx: testing.Context):
    before = settled(ctx)
    stopped = dataclasses.replace(
        before.get_container("dex"), service_statuses={"dex": ops.pebble.ServiceStatus.INACTIVE}
    )

    state_out = ctx.run(ctx.on.update_status(), dataclasses.replace(before, containers={stopped}))

    assert (
        state_out.get_container("dex").service_statuses["dex"] == ops.pebble.ServiceStatus.ACTIVE
    )


def test_ready_check_down_waits(ctx: testing.Context):
    before = settled(ctx)
    container = before.get_container("dex")
    down = {
        dataclasses.replace(c, status=ops.pebble.CheckStatus.DOWN) if c.name == "dex-ready" else c
        for c in container.check_infos
    }
    failing = dataclasses.replace(container, check_infos=frozenset(down))
    state_in = dataclasses.replace(before, containers={failing})
    failed = next(c for c in down if c.name == "dex-ready")

    state_out = ctx.run(ctx.on.pebble_check_failed(failing, failed), state_in)

    assert state_out.unit_status == testing.WaitingStatus("waiting for Dex to be ready")


def test_secret_update_reaches_dex(ctx: testing.Context, tmp_path: Path):
    secret = connectors_secret()
    config = {"connectors": ENTRA, "connectors-secret-id": secret.id}
    before = settled(
        ctx, config=config, secrets=(secret, admin_secret()), container=dex_container(tmp_path)
    )
    rotated = {**(secret.tracked_content), "entra-client-secret": "rotated-secret-value"}
    state_in = replace_secret(before, secret, latest_content=rotated)

    state_out = ctx.run(ctx.on.secret_changed(state_in.get_secret(id=secret.id)), state_in)

    (entra,) = dex_config(ctx, state_out)["connectors"]
    assert entra["config"]["clientSecret"] == "rotated-secret-value"
    assert "rotated-secret-value" not in everything_shown(ctx, state_out)


def test_secret_remove_drops_the_old_revision(ctx: testing.Context):
    secret = admin_secret()

    ctx.run(ctx.on.secret_remove(secret, revision=3), make_state(secrets=(secret,)))

    assert ctx.removed_secret_revisions == [3]


# --- leadership -----------------------------------------------------------------------


def test_non_leader_runs_dex_with_the_leaders_admin_user(ctx: testing.Context):
    state_out = ctx.run(
        ctx.on.config_changed(), make_state(leader=False, secrets=(admin_secret(),))
    )

    (admin,) = dex_config(ctx, state_out)["staticPasswords"]
    assert admin["hash"] == ADMIN_HASH
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)
    assert {s.label for s in state_out.secrets if s.owner} == {"admin-credentials"}


def test_non_leader_waits_for_the_admin_user(ctx: testing.Context):
    state_out = ctx.run(ctx.on.config_changed(), make_state(leader=False))

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for the leader to create the admin user"
    )
    assert not [s for s in state_out.secrets if s.owner]  # only the database's, not ours
    assert state_out.get_container("dex").plan.services == {}


def test_non_leader_without_admin_user_needs_no_leader(ctx: testing.Context):
    state_out = ctx.run(
        ctx.on.config_changed(),
        make_state(leader=False, config={"admin-username": "", "connectors": OIDC}),
    )

    assert state_out.unit_status == testing.ActiveStatus(ISSUER)


def test_leader_and_non_leader_render_the_same_config(ctx: testing.Context):
    secret = connectors_secret()
    users = users_secret()
    relation = oauth_relation()
    config = {
        "connectors": ENTRA,
        "connectors-secret-id": secret.id,
        "static-users-secret-id": users.id,
    }
    leader = ctx.run(
        ctx.on.config_changed(),
        make_state(
            config=config,
            secrets=(secret, users, admin_secret()),
            relations=(route_relation(), peers(), relation),
        ),
    )
    # What the other unit sees: the leader's peer data and app secrets, not its databags.
    peer = next(r for r in leader.relations if r.endpoint == "dex-peers")
    shared = {s for s in leader.secrets if s.owner == "app"}
    other_ctx = testing.Context(CHARM.DexCharm)

    follower = other_ctx.run(
        other_ctx.on.config_changed(),
        make_state(
            leader=False,
            config=config,
            secrets=(secret, users, *shared),
            relations=(route_relation(), peers(**peer.local_app_data), relation),
        ),
    )

    assert config_text(other_ctx, follower) == config_text(ctx, leader)
    assert len(dex_config(ctx, leader)["staticClients"]) == 1


# --- nothing to change, nothing written -----------------------------------------------


class Writes:
    """Counts every call that would change the container, a databag or a secret."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[str] = []
        for cls, names in (
            (ops.Container, ("push", "add_layer", "replan", "restart", "start", "stop")),
            (ops.model.RelationDataContent, ("_commit",)),
            (ops.Secret, ("set_content", "grant", "remove_all_revisions")),
            (ops.Application, ("add_secret",)),
            (ops.Unit, ("open_port", "close_port")),
        ):
            for name in names:
                self._spy(monkeypatch, cls, name)

    def _spy(self, monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> None:
        original = getattr(cls, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(f"{cls.__name__}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, spy)


@pytest.mark.parametrize("leader", [True, False])
def test_noop_reconcile_writes_nothing(
    ctx: testing.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leader: bool
):
    secret = connectors_secret()
    users = users_secret()
    config = {
        "connectors": ENTRA + LDAP,
        "connectors-secret-id": secret.id,
        "static-users-secret-id": users.id,
    }
    relations = (route_relation(), peers(), oauth_relation(), oauth_relation("other-app"))
    first = ctx.run(
        ctx.on.config_changed(),
        make_state(
            config=config,
            secrets=(secret, users),
            relations=relations,
            container=dex_container(tmp_path),
        ),
    )
    settled_state = dataclasses.replace(first, leader=leader)
    text_before = config_text(ctx, settled_state)
    writes = Writes(monkeypatch)

    events = [ctx.on.update_status(), ctx.on.config_changed()]
    if leader:
        events.append(ctx.on.leader_elected())
    for event in events:
        state_out = ctx.run(event, settled_state)

        assert writes.calls == []
        assert state_out.relations == settled_state.relations
        assert state_out.secrets == settled_state.secrets
        assert state_out.get_container("dex").plan == settled_state.get_container("dex").plan
        assert state_out.opened_ports == settled_state.opened_ports
        assert config_text(ctx, state_out) == text_before
        assert isinstance(state_out.unit_status, testing.ActiveStatus)


def test_changed_input_writes_only_what_changed(
    ctx: testing.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The control of the test above: the same spies see a real change.
    secret = connectors_secret()
    config = {"connectors": ENTRA, "connectors-secret-id": secret.id}
    before = settled(
        ctx, config=config, secrets=(secret, admin_secret()), container=dex_container(tmp_path)
    )
    rotated = {**secret.tracked_content, "entra-client-secret": "rotated-secret-value"}
    state_in = replace_secret(before, secret, latest_content=rotated)
    writes = Writes(monkeypatch)

    ctx.run(ctx.on.secret_changed(state_in.get_secret(id=secret.id)), state_in)

    assert writes.calls == ["Container.push", "Container.restart"]
