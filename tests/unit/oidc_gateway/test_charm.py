"""The oidc-gateway charm: config, identity providers, relations, workload, status."""

from __future__ import annotations

import dataclasses
import json
import logging

import ops
import pytest
from ops import testing
from unit.oidc_gateway.helpers import (
    APP,
    CA_PEM,
    CALLBACK,
    CONTAINER,
    COOKIE_SECRET,
    DEX_APP,
    DEX_CLIENT_ID,
    DEX_CLIENT_SECRET,
    DEX_ENDPOINTS,
    DEX_ISSUER,
    EXTERNAL_CLIENT_ID,
    EXTERNAL_CLIENT_SECRET,
    EXTERNAL_ISSUER,
    MODEL,
    ORIGIN,
    alpha_config,
    cookie_secret,
    dex_published,
    dex_relation,
    dex_state,
    external_config,
    external_secret,
    external_state,
    forward_auth_relation,
    mode,
    oauth2_proxy,
    provider_reads,
    registration,
    route_relation,
    stamps,
    toml_config,
    written,
)

from kubeflow_interfaces import istio_ingress_route

WORKLOAD_WRITES = (
    "Container.push",
    "Container.add_layer",
    "Container.replan",
    "Container.restart",
)
DATABAG_WRITES = ("RelationDataContent.update",)


def _relation(state: testing.State, endpoint: str) -> testing.Relation:
    (relation,) = [r for r in state.relations if r.endpoint == endpoint]
    return relation


def _replace_relation(state: testing.State, relation: testing.Relation) -> testing.State:
    others = {r for r in state.relations if r.endpoint != relation.endpoint}
    return dataclasses.replace(state, relations=others | {relation})


def _service(out: testing.State) -> ops.pebble.ServiceDict:
    return out.get_container(CONTAINER).plan.to_dict()["services"][oauth2_proxy.SERVICE]


# --- the Dex case --------------------------------------------------------------------------------


def test_dex_proxy_configuration_field_by_field(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))

    assert toml_config(tmp_path) == {
        "proxy_prefix": "/oauth2",
        "ping_path": "/oauth2/ping",
        "ready_path": "/oauth2/ready",
        "redirect_url": CALLBACK,
        "reverse_proxy": True,
        "skip_provider_button": True,
        "email_domains": ["*"],
        "cookie_secret_file": "/etc/oauth2-proxy/secrets/cookie-secret",
        "cookie_secure": True,
        "cookie_httponly": True,
        "cookie_samesite": "lax",
        "silence_ping_logging": True,
        # ID tokens as bearer tokens, as Kubeflow's manifests allow them (kubeflow/manifests
        # v1.10.0 common/oauth2-proxy/base/kustomization.yaml:45 ENABLE_M2M_TOKENS=true,
        # deployment.yaml:63 as OAUTH2_PROXY_SKIP_JWT_BEARER_TOKENS).
        "skip_jwt_bearer_tokens": True,
    }
    alpha = alpha_config(tmp_path)
    assert alpha["server"] == {"bindAddress": "0.0.0.0:4180"}
    assert alpha["upstreamConfig"] == {
        "upstreams": [{"id": "static", "path": "/", "static": True, "staticCode": 200}]
    }
    assert alpha["injectResponseHeaders"] == [
        {"name": "kubeflow-userid", "values": [{"claimSource": {"claim": "email"}}]},
        {"name": "kubeflow-groups", "values": [{"claimSource": {"claim": "groups"}}]},
    ]
    assert alpha["providers"] == [
        {
            "id": "dex",
            "provider": "oidc",
            "name": DEX_APP,
            "clientID": DEX_CLIENT_ID,
            "clientSecretFile": "/etc/oauth2-proxy/secrets/client-secret",
            "scope": "openid profile email groups",
            "code_challenge_method": "S256",
            # Dex's endpoints from the relation: no discovery request at start.
            "loginURL": DEX_ENDPOINTS["authorization_endpoint"],
            "redeemURL": DEX_ENDPOINTS["token_endpoint"],
            "profileURL": DEX_ENDPOINTS["userinfo_endpoint"],
            "oidcConfig": {
                "issuerURL": DEX_ISSUER,
                "userIDClaim": "email",
                "emailClaim": "email",
                "groupsClaim": "groups",
                "audienceClaims": ["aud"],
                "skipDiscovery": True,
                "jwksURL": DEX_ENDPOINTS["jwks_endpoint"],
            },
        }
    ]
    # The secrets are in files of their own, for the proxy's user alone.
    assert written(tmp_path, "secrets/cookie-secret") == COOKIE_SECRET
    assert written(tmp_path, "secrets/client-secret") == DEX_CLIENT_SECRET
    assert mode(tmp_path, "secrets") == 0o700
    assert mode(tmp_path, "secrets/cookie-secret") == 0o600
    assert mode(tmp_path, "secrets/client-secret") == 0o600
    assert mode(tmp_path, "oauth2-proxy.cfg") == 0o644
    assert not (tmp_path / "etc-oauth2-proxy" / "provider-ca.crt").exists()

    service = _service(out)
    assert service["command"] == (
        "/bin/oauth2-proxy --config=/etc/oauth2-proxy/oauth2-proxy.cfg"
        " --alpha-config=/etc/oauth2-proxy/alpha-config.yaml"
    )
    assert service["user-id"] == 65532 and service["group-id"] == 65532
    assert "environment" not in service
    assert service["on-check-failure"] == {"oauth2-proxy-alive": "restart"}
    checks = out.get_container(CONTAINER).plan.to_dict()["checks"]
    assert checks["oauth2-proxy-alive"]["http"] == {"url": "http://localhost:4180/oauth2/ping"}
    assert checks["oauth2-proxy-alive"]["level"] == "alive"
    assert checks["oauth2-proxy-ready"]["http"] == {"url": "http://localhost:4180/oauth2/ready"}
    assert checks["oauth2-proxy-ready"]["level"] == "ready"
    statuses = out.get_container(CONTAINER).service_statuses
    assert statuses[oauth2_proxy.SERVICE] == ops.pebble.ServiceStatus.ACTIVE
    assert out.opened_ports == {testing.TCPPort(4180)}
    assert out.unit_status == testing.ActiveStatus(f"login via {DEX_APP} at {ORIGIN}")
    assert out.app_status == testing.ActiveStatus(f"login via {DEX_APP} at {ORIGIN}")


def test_dex_registration_derived_from_the_route_url(ctx, tmp_path):
    state = dex_state(tmp_path, registered=False)
    oauth, _ = dex_relation(client=False, registered=False)
    state = _replace_relation(state, oauth)
    out = ctx.run(ctx.on.relation_created(oauth), state)

    published = out.get_relation(oauth.id).local_app_data
    assert published == registration()
    # Dex's side of the library reads it as the client we mean.
    config = provider_reads(dict(published))
    assert config is not None
    assert config.redirect_uris == [CALLBACK]
    assert config.scope == "openid profile email groups"
    assert config.grant_types == ["authorization_code", "refresh_token"]
    assert config.token_endpoint_auth_method == "client_secret_basic"
    # No client issued yet: the proxy waits, untouched.
    assert out.unit_status == testing.WaitingStatus(
        f"waiting for {DEX_APP} to issue the OAuth client"
    )
    assert out.get_container(CONTAINER).plan.services == {}


def test_dex_registration_follows_the_route_url(ctx, tmp_path):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    moved = dataclasses.replace(
        _relation(first, "istio-ingress-route"),
        remote_app_data={"external_host": "10.64.140.43", "tls_enabled": "False"},
    )
    out = ctx.run(ctx.on.relation_changed(moved), _replace_relation(first, moved))

    callback = "http://10.64.140.43/oauth2/callback"
    assert _relation(out, "oauth").local_app_data["redirect_uri"] == callback
    assert toml_config(tmp_path)["redirect_url"] == callback
    # Over plain HTTP the browser would drop a Secure cookie.
    assert toml_config(tmp_path)["cookie_secure"] is False


def test_dex_registration_refused_by_the_library_blocks(ctx, tmp_path):
    # The library takes an https redirect URI only on a dotted host name or an IP address.
    state = dex_state(tmp_path, registered=False)
    oauth, _ = dex_relation(client=False, registered=False)
    local = route_relation("localhost", id=_relation(state, "istio-ingress-route").id)
    state = _replace_relation(_replace_relation(state, oauth), local)
    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        "oauth: registration refused: Invalid URL https://localhost/oauth2/callback"
    )
    assert _relation(out, "oauth").local_app_data == {}


def test_dex_ca_chain_is_trusted(ctx, tmp_path):
    oauth, secret = dex_relation(ca_chain=[CA_PEM])
    state = dex_state(tmp_path)
    state = dataclasses.replace(_replace_relation(state, oauth), secrets={secret, cookie_secret()})
    ctx.run(ctx.on.config_changed(), state)

    assert written(tmp_path, "provider-ca.crt") == CA_PEM + "\n"
    (provider,) = alpha_config(tmp_path)["providers"]
    assert provider["caFiles"] == ["/etc/oauth2-proxy/provider-ca.crt"]
    assert provider["useSystemTrustStore"] is True


def test_dex_new_client_secret_revision_restarts_the_proxy(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    (issued,) = [s for s in first.secrets if s.label != "cookie-secret"]
    rotated = dataclasses.replace(issued, latest_content={"secret": "dex-second-secret-5c2f"})
    state = dataclasses.replace(first, secrets={rotated, cookie_secret()})
    calls.clear()
    out = ctx.run(ctx.on.secret_changed(rotated), state)

    assert written(tmp_path, "secrets/client-secret") == "dex-second-secret-5c2f"
    assert calls.count("Container.restart") == 1
    assert out.unit_status.name == "active"


def test_dex_without_access_to_the_client_secret_waits(ctx, tmp_path):
    state = dex_state(tmp_path, secrets={cookie_secret()})  # Dex's secret not granted yet
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        f"waiting for access to {DEX_APP}'s client secret"
    )
    assert out.get_container(CONTAINER).plan.services == {}


def test_dex_data_outside_the_interface_blocks_and_leaves_the_proxy(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    published, _ = dex_published()
    del published["issuer_url"]  # required by the interface
    broken = dataclasses.replace(_relation(first, "oauth"), remote_app_data=published)
    calls.clear()
    out = ctx.run(ctx.on.relation_changed(broken), _replace_relation(first, broken))

    assert out.unit_status == testing.BlockedStatus(
        f"oauth: {DEX_APP} sent oauth data that does not follow the interface"
    )
    assert not [c for c in calls.log if c in WORKLOAD_WRITES]


def test_dex_relation_removed_blocks_and_leaves_the_proxy(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    calls.clear()
    out = ctx.run(ctx.on.relation_broken(_relation(first, "oauth")), first)

    assert out.unit_status == testing.BlockedStatus(
        "no identity provider: relate oauth (dex) or set issuer-url, client-id and "
        "client-secret-id"
    )
    assert not [c for c in calls.log if c in WORKLOAD_WRITES]


# --- the external provider case ------------------------------------------------------------------


def test_external_provider_configuration_field_by_field(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), external_state(tmp_path))

    assert toml_config(tmp_path)["redirect_url"] == CALLBACK
    assert toml_config(tmp_path)["cookie_secret_file"] == "/etc/oauth2-proxy/secrets/cookie-secret"
    assert alpha_config(tmp_path)["providers"] == [
        {
            "id": "oidc",
            "provider": "oidc",
            "name": "login.microsoftonline.com",
            "clientID": EXTERNAL_CLIENT_ID,
            "clientSecretFile": "/etc/oauth2-proxy/secrets/client-secret",
            "scope": "openid profile email groups",
            "code_challenge_method": "S256",
            # Discovery from the issuer: no endpoints, no skipDiscovery.
            "oidcConfig": {
                "issuerURL": EXTERNAL_ISSUER,
                "userIDClaim": "email",
                "emailClaim": "email",
                "groupsClaim": "groups",
                "audienceClaims": ["aud"],
            },
        }
    ]
    assert written(tmp_path, "secrets/client-secret") == EXTERNAL_CLIENT_SECRET
    assert mode(tmp_path, "secrets/client-secret") == 0o600
    assert _service(out)["command"].startswith("/bin/oauth2-proxy --config=")
    assert out.unit_status == testing.ActiveStatus(
        f"login via login.microsoftonline.com at {ORIGIN}"
    )


def test_external_client_secret_is_trimmed(ctx, tmp_path):
    secret = external_secret({"client-secret": f"  {EXTERNAL_CLIENT_SECRET}\n"})
    state = external_state(
        tmp_path, config=external_config(secret), secrets={secret, cookie_secret()}
    )
    ctx.run(ctx.on.config_changed(), state)
    assert written(tmp_path, "secrets/client-secret") == EXTERNAL_CLIENT_SECRET


def test_external_secret_update_restarts_the_proxy(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), external_state(tmp_path))
    (user,) = [s for s in first.secrets if s.label != "cookie-secret"]
    updated = dataclasses.replace(user, latest_content={"client-secret": "entra-second-value"})
    calls.clear()
    out = ctx.run(
        ctx.on.secret_changed(updated),
        dataclasses.replace(first, secrets={updated, cookie_secret()}),
    )
    assert written(tmp_path, "secrets/client-secret") == "entra-second-value"
    assert calls.count("Container.restart") == 1
    assert out.unit_status.name == "active"


@pytest.mark.parametrize(
    ("secrets", "content", "message"),
    [
        (
            "missing",
            None,
            "client-secret-id: cannot read the secret; grant it to this application",
        ),
        ("granted", {"other": "x"}, "client-secret-id: the secret needs the key client-secret"),
        ("granted", {"client-secret": "   "}, "client-secret-id: the secret needs the key"),
    ],
)
def test_external_secret_unusable_blocks(ctx, tmp_path, secrets, content, message):
    secret = external_secret(content)
    granted = {secret, cookie_secret()} if secrets == "granted" else {cookie_secret()}
    state = external_state(tmp_path, config=external_config(secret), secrets=granted)
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(message)
    assert out.get_container(CONTAINER).plan.services == {}


# --- one identity provider, exactly --------------------------------------------------------------


def test_both_identity_providers_block_naming_both(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    secret = external_secret()
    state = dataclasses.replace(
        first, config=external_config(secret), secrets={*first.secrets, secret}
    )
    calls.clear()
    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.BlockedStatus(
        f"two identity providers, {DEX_APP} (oauth relation) and issuer-url: remove the "
        "relation, or unset issuer-url, client-id and client-secret-id"
    )
    assert out.app_status == out.unit_status
    assert not [c for c in calls.log if c in WORKLOAD_WRITES]
    assert not [c for c in calls.log if c in DATABAG_WRITES]


def test_no_identity_provider_blocks(ctx, tmp_path):
    state = external_state(tmp_path, config={}, secrets={cookie_secret()})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(
        "no identity provider: relate oauth (dex) or set issuer-url, client-id and "
        "client-secret-id"
    )
    assert out.get_container(CONTAINER).plan.services == {}


# --- config options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "check"),
    [
        (
            {"userid-header": "X-Kubeflow-User"},
            lambda alpha, cfg, auth: (
                alpha["injectResponseHeaders"][0]["name"] == "X-Kubeflow-User"
                and json.loads(auth["headers"])[0] == "x-kubeflow-user"
                and json.loads(auth["kubeflow_user_header"]) == "x-kubeflow-user"
            ),
        ),
        (
            {"userid-prefix": "oidc:"},
            lambda alpha, cfg, auth: (
                alpha["injectResponseHeaders"][0]["values"]
                == [{"claimSource": {"claim": "email", "prefix": "oidc:"}}]
                and json.loads(auth["kubeflow_user_prefix"]) == "oidc:"
            ),
        ),
        (
            {"userid-claim": "preferred_username"},
            lambda alpha, cfg, auth: (
                alpha["providers"][0]["oidcConfig"]["userIDClaim"] == "preferred_username"
            ),
        ),
        (
            {"groups-header": "x-groups"},
            lambda alpha, cfg, auth: (
                alpha["injectResponseHeaders"][1]["name"] == "x-groups"
                and json.loads(auth["headers"]) == ["kubeflow-userid", "x-groups"]
            ),
        ),
        (
            {"groups-header": ""},
            lambda alpha, cfg, auth: (
                len(alpha["injectResponseHeaders"]) == 1
                and json.loads(auth["headers"]) == ["kubeflow-userid"]
            ),
        ),
        (
            {"email-domains": "example.com, example.org"},
            lambda alpha, cfg, auth: cfg["email_domains"] == ["example.com", "example.org"],
        ),
        (
            {"email-domains": " .example.com ,Example-1.org"},
            lambda alpha, cfg, auth: cfg["email_domains"] == [".example.com", "Example-1.org"],
        ),
        (
            {"email-domains": " * "},
            lambda alpha, cfg, auth: cfg["email_domains"] == ["*"],
        ),
        (
            {"scopes": "openid  email"},
            lambda alpha, cfg, auth: alpha["providers"][0]["scope"] == "openid email",
        ),
    ],
    ids=[
        "userid-header",
        "userid-prefix",
        "userid-claim",
        "groups-header",
        "no-groups",
        "email-domains",
        "email-subdomains",
        "email-anyone",
        "scopes",
    ],
)
def test_valid_option_reaches_the_proxy(ctx, tmp_path, config, check):
    out = ctx.run(ctx.on.config_changed(), dex_state(tmp_path, config=config))
    auth = _relation(out, "forward-auth").local_app_data
    assert check(alpha_config(tmp_path), toml_config(tmp_path), auth)
    assert out.unit_status.name == "active"


def test_valid_scopes_reach_the_dex_registration(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), dex_state(tmp_path, config={"scopes": "openid email"}))
    assert _relation(out, "oauth").local_app_data["scope"] == "openid email"


def test_valid_external_options(ctx, tmp_path):
    secret = external_secret()
    config = external_config(
        secret, **{"issuer-url": "https://dev-123.okta.com", "client-id": "0oa1b2c3"}
    )
    state = external_state(tmp_path, config=config, secrets={secret, cookie_secret()})
    out = ctx.run(ctx.on.config_changed(), state)
    (provider,) = alpha_config(tmp_path)["providers"]
    assert provider["oidcConfig"]["issuerURL"] == "https://dev-123.okta.com"
    assert provider["clientID"] == "0oa1b2c3"
    assert out.unit_status == testing.ActiveStatus(f"login via dev-123.okta.com at {ORIGIN}")


# --- bearer tokens (scripts and SDK clients) ----------------------------------------------


def test_bearer_tokens_can_be_turned_off(ctx, tmp_path):
    out = ctx.run(
        ctx.on.config_changed(), dex_state(tmp_path, config={"accept-bearer-tokens": False})
    )
    config = toml_config(tmp_path)
    assert config["skip_jwt_bearer_tokens"] is False
    assert "extra_jwt_issuers" not in config
    assert out.unit_status.name == "active"


def test_extra_jwt_issuers_reach_the_proxy_as_issuer_audience_pairs(ctx, tmp_path):
    # oauth2-proxy v7.15.3 pkg/validation/options.go parseJwtIssuers: `issuer=audience`,
    # split at the first `=`; options.go:61 names the TOML key extra_jwt_issuers.
    issuers = (
        f" {EXTERNAL_ISSUER}=sdk-app, https://kubernetes.default.svc=https://kubernetes.default.svc"
        f"\n{EXTERNAL_ISSUER}=sdk-app"
    )
    out = ctx.run(
        ctx.on.config_changed(), dex_state(tmp_path, config={"extra-jwt-issuers": issuers})
    )
    config = toml_config(tmp_path)
    assert config["skip_jwt_bearer_tokens"] is True
    assert config["extra_jwt_issuers"] == [
        f"{EXTERNAL_ISSUER}=sdk-app",
        "https://kubernetes.default.svc=https://kubernetes.default.svc",
    ]
    assert out.unit_status.name == "active"


def test_a_bearer_tokens_user_comes_from_the_claim_a_login_uses(ctx, tmp_path):
    """The header reads the session's e-mail, which the provider fills from userid-claim.

    oauth2-proxy v7.15.3 providers/oidc.go CreateSessionFromToken builds a bearer token's
    session with buildSessionFromClaims (providers/provider_data.go:262), as a login does,
    and providers/providers.go:166 makes the e-mail claim userIDClaim.
    """
    config = {"userid-claim": "preferred_username"}
    ctx.run(ctx.on.config_changed(), dex_state(tmp_path, config=config))
    alpha = alpha_config(tmp_path)
    (provider,) = alpha["providers"]
    assert provider["oidcConfig"]["userIDClaim"] == "preferred_username"
    assert provider["oidcConfig"]["emailClaim"] == "email"
    user_header = alpha["injectResponseHeaders"][0]
    assert user_header["values"] == [{"claimSource": {"claim": "email"}}]
    assert toml_config(tmp_path)["skip_jwt_bearer_tokens"] is True


INVALID = [
    ({"userid-header": "kubeflow userid"}, "userid-header: 'kubeflow userid' is not a header"),
    ({"userid-header": ""}, "userid-header: '' is not a header name"),
    ({"userid-header": "x" * 65}, "userid-header:"),
    ({"userid-header": "Cookie"}, "userid-header: 'Cookie' is a header the gateway needs"),
    ({"userid-prefix": "a\nb"}, "userid-prefix: must be at most 64 printable ASCII"),
    ({"userid-prefix": "p" * 65}, "userid-prefix: must be at most 64 printable ASCII"),
    ({"userid-prefix": "a b"}, "userid-prefix: must be at most 64 printable ASCII characters wi"),
    ({"userid-prefix": "*"}, "userid-prefix: must not contain *, which Istio reads"),
    ({"userid-prefix": "oidc:*"}, "userid-prefix: must not contain *"),
    ({"userid-claim": "1email"}, "userid-claim: '1email' is not a claim name"),
    ({"userid-claim": "e mail"}, "userid-claim:"),
    ({"groups-header": "bad header"}, "groups-header: 'bad header' is not a header name"),
    ({"groups-header": "Kubeflow-Userid"}, "groups-header: must differ from userid-header"),
    ({"groups-header": "set-cookie"}, "groups-header: 'set-cookie' is a header the gateway"),
    ({"email-domains": ""}, "email-domains: must be * or domains separated by commas"),
    ({"email-domains": "*,example.com"}, "email-domains: must be * or domains"),
    ({"email-domains": "exa_mple.com"}, "email-domains: must be * or domains"),
    (
        {"email-domains": "exa mple.com"},
        "email-domains: must be * or domains separated by commas ('exa mple.com' is not a domain)",
    ),
    ({"email-domains": "example.com, exa mple.org"}, "email-domains: must be * or domains se"),
    ({"email-domains": "example.com example.org"}, "email-domains: must be * or domains sep"),
    ({"email-domains": "example.com,,example.org"}, "email-domains: must be * or domains s"),
    ({"email-domains": "example.com,"}, "email-domains: must be * or domains separated by c"),
    ({"email-domains": "* *"}, "email-domains: must be * or domains separated by"),
    ({"email-domains": "a" * 64 + ".example.com"}, "email-domains: must be * or domains separ"),
    ({"email-domains": ("a" * 63 + ".") * 4 + "com"}, "email-domains: must be * or domains"),
    ({"email-domains": "example.com\nexample.org"}, "email-domains: must be * or domains"),
    ({"email-domains": "user@example.com"}, "email-domains: must be * or domains"),
    ({"scopes": "profile email"}, "scopes: must include openid"),
    ({"scopes": 'openid "email"'}, "scopes: must be scope names separated by spaces"),
    ({"issuer-url": "ftp://idp.example.com"}, "issuer-url: must be an http:// or https:// URL"),
    ({"issuer-url": "https://"}, "issuer-url: must be an http:// or https:// URL with a host"),
    ({"issuer-url": "https://u:p@idp.example.com"}, "issuer-url: must not hold credentials"),
    ({"issuer-url": "https://idp.example.com/?a=1"}, "issuer-url: must not hold credentials"),
    ({"issuer-url": "https://idp.example.com:99999"}, "issuer-url: has an invalid port"),
    ({"client-id": "has space"}, "client-id: must be printable text without spaces"),
    (
        {"extra-jwt-issuers": "https://idp.example.com"},
        "extra-jwt-issuers: 'https://idp.example.com' is not issuer=audience",
    ),
    ({"extra-jwt-issuers": "https://idp.example.com="}, "extra-jwt-issuers: 'https://idp.exa"),
    ({"extra-jwt-issuers": "=aud"}, "extra-jwt-issuers: '=aud' is not issuer=audience"),
    (
        {"extra-jwt-issuers": "idp.example.com=aud"},
        "extra-jwt-issuers: must be an http:// or https:// URL with a host",
    ),
    (
        {"extra-jwt-issuers": "https://idp.example.com/?x=1=aud"},
        "extra-jwt-issuers: must not hold credentials, a query or a fragment",
    ),
    (
        {"extra-jwt-issuers": "https://u:p@idp.example.com=aud"},
        "extra-jwt-issuers: must not hold credentials",
    ),
    (
        {"extra-jwt-issuers": "https://idp.example.com=a\x7fb"},
        "extra-jwt-issuers: the audience of 'https://idp.example.com' is not text",
    ),
    (
        {"accept-bearer-tokens": False, "extra-jwt-issuers": "https://idp.example.com=aud"},
        "extra-jwt-issuers: set only with accept-bearer-tokens=true",
    ),
]


@pytest.mark.parametrize(("config", "message"), INVALID)
def test_invalid_option_blocks_naming_it_and_touches_nothing(
    ctx, tmp_path, calls, config, message
):
    first = ctx.run(ctx.on.config_changed(), external_state(tmp_path))
    before = stamps(tmp_path)
    secret = next(s for s in first.secrets if s.label != "cookie-secret")
    calls.clear()
    out = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(first, config={**external_config(secret), **config}),
    )

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {message}")
    assert out.app_status == out.unit_status
    assert calls.log == []  # no file, no plan, no restart, no databag, no secret
    assert stamps(tmp_path) == before
    assert (
        out.get_container(CONTAINER).plan.to_dict()
        == first.get_container(CONTAINER).plan.to_dict()
    )


@pytest.mark.parametrize(
    ("config", "missing"),
    [
        ({"issuer-url": EXTERNAL_ISSUER}, "client-id"),
        ({"client-id": EXTERNAL_CLIENT_ID}, "issuer-url"),
        ({"issuer-url": EXTERNAL_ISSUER, "client-id": EXTERNAL_CLIENT_ID}, "client-secret-id"),
    ],
)
def test_partial_external_provider_blocks(ctx, tmp_path, config, missing):
    out = ctx.run(ctx.on.config_changed(), dex_state(tmp_path, config=config))
    assert out.unit_status == testing.BlockedStatus(
        f"invalid config: {missing}: set issuer-url, client-id and client-secret-id together"
    )
    assert out.get_container(CONTAINER).plan.services == {}


def test_client_secret_id_alone_blocks(ctx, tmp_path):
    secret = external_secret()
    state = external_state(tmp_path, config={"client-secret-id": secret.id})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(
        "invalid config: issuer-url: set issuer-url, client-id and client-secret-id together"
    )


# --- the route and forward-auth ------------------------------------------------------------------


def test_route_request_is_the_oauth2_prefix_kept_as_it_is(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    # What Canonical's charms write for the same route, with the ecosystem's models;
    # the gateway says TLS is enabled, so the listener is 443.
    assert _relation(out, "istio-ingress-route").local_app_data == {
        "config": istio_ingress_route.config_json(
            app=APP, model=MODEL, prefix="/oauth2", port=4180, listener_port=443
        )
    }


def test_forward_auth_data_published(ctx, tmp_path):
    state = dex_state(tmp_path)
    auth = _relation(state, "forward-auth")
    out = ctx.run(ctx.on.relation_created(auth), state)
    data = out.get_relation(auth.id).local_app_data
    # The keys of the forward_auth interface (charmlibs-interfaces-forward-auth
    # 1.0.0, ForwardAuthConfig); the address as Canonical's oauth2-proxy-k8s
    # charm writes it (canonical/oauth2-proxy-k8s-operator src/charm.py,
    # _forward_auth_config, at bda7196): the Service and port, no path.
    assert data == {
        "decisions_address": f"http://{APP}.{MODEL}.svc.cluster.local:4180",
        "app_names": json.dumps(["kubeflow-dashboard", "kubeflow-notebooks"]),
        "headers": json.dumps(["kubeflow-userid", "kubeflow-groups"]),
        "kubeflow_user_header": json.dumps("kubeflow-userid"),
        "kubeflow_user_prefix": json.dumps(""),
    }


def test_forward_auth_follows_the_apps_the_mesh_lists(ctx, tmp_path):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    listed = dataclasses.replace(
        _relation(first, "forward-auth"),
        remote_app_data={"ingress_app_names": json.dumps(["kubeflow-dashboard", "mlflow"])},
    )
    out = ctx.run(ctx.on.relation_changed(listed), _replace_relation(first, listed))
    data = out.get_relation(listed.id).local_app_data
    assert json.loads(data["app_names"]) == ["kubeflow-dashboard", "mlflow"]


def test_forward_auth_before_the_mesh_lists_apps(ctx, tmp_path):
    state = _replace_relation(dex_state(tmp_path), forward_auth_relation(apps=[]))
    out = ctx.run(ctx.on.config_changed(), state)
    assert json.loads(_relation(out, "forward-auth").local_app_data["app_names"]) == []


@pytest.mark.parametrize("sent", ["not json", '{"a": 1}', '["ok", 3]', '[""]'])
def test_forward_auth_invalid_app_list_blocks_and_writes_nothing_there(ctx, tmp_path, sent):
    bad = forward_auth_relation()
    bad = dataclasses.replace(bad, remote_app_data={"ingress_app_names": sent})
    state = _replace_relation(dex_state(tmp_path), bad)
    out = ctx.run(ctx.on.relation_changed(bad), state)
    assert out.get_relation(bad.id).local_app_data == {}
    assert out.unit_status == testing.BlockedStatus(
        "forward-auth: invalid data from istio: ingress_app_names is not a JSON list of names"
    )
    # The login itself still works for the routes already served.
    assert out.get_container(CONTAINER).plan.services


def test_forward_auth_published_before_an_identity_provider_exists(ctx, tmp_path):
    # The data depends on config alone; the mesh fails closed until the proxy answers.
    state = external_state(tmp_path, config={}, secrets=set())
    out = ctx.run(ctx.on.relation_created(_relation(state, "forward-auth")), state)
    data = _relation(out, "forward-auth").local_app_data
    assert data["decisions_address"] == f"http://{APP}.{MODEL}.svc.cluster.local:4180"


def test_a_header_change_reaches_the_mesh_and_the_proxy(ctx, tmp_path):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    config = {"userid-header": "x-user", "userid-prefix": "oidc:"}
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(first, config=config))
    data = _relation(out, "forward-auth").local_app_data
    assert json.loads(data["kubeflow_user_header"]) == "x-user"
    assert json.loads(data["kubeflow_user_prefix"]) == "oidc:"
    assert json.loads(data["headers"]) == ["x-user", "kubeflow-groups"]
    assert alpha_config(tmp_path)["injectResponseHeaders"][0]["name"] == "x-user"


def test_missing_route_relation_blocks(ctx, tmp_path):
    state = dex_state(tmp_path)
    state = dataclasses.replace(
        state, relations={r for r in state.relations if r.endpoint != "istio-ingress-route"}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus(
        "missing relation: istio-ingress-route (the login callback needs a public URL)"
    )
    assert out.get_container(CONTAINER).plan.services == {}


def test_route_url_not_served_yet_waits(ctx, tmp_path):
    state = _replace_relation(dex_state(tmp_path, registered=False), route_relation(None))
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for the route's URL from istio")
    # Nothing to register without the callback URL.
    assert _relation(out, "oauth").local_app_data == {}
    assert out.get_container(CONTAINER).plan.services == {}


def test_invalid_route_host_blocks_and_changes_nothing(ctx, tmp_path, calls):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    before = stamps(tmp_path)
    bad = dataclasses.replace(
        _relation(first, "istio-ingress-route"),
        remote_app_data={"external_host": "bad host", "tls_enabled": "True"},
    )
    calls.clear()
    out = ctx.run(ctx.on.relation_changed(bad), _replace_relation(first, bad))
    assert out.unit_status == testing.BlockedStatus(
        "istio-ingress-route: external_host 'bad host' is not a host name or address"
    )
    assert [c for c in calls.log if c in WORKLOAD_WRITES] == []
    assert stamps(tmp_path) == before
    assert _relation(out, "oauth").local_app_data == _relation(first, "oauth").local_app_data


# --- leader and non-leader -----------------------------------------------------------------------


def test_leader_creates_the_cookie_secret(ctx, tmp_path):
    state = dex_state(tmp_path)
    state = dataclasses.replace(
        state, secrets={s for s in state.secrets if s.label != "cookie-secret"}
    )
    out = ctx.run(ctx.on.config_changed(), state)

    (secret,) = [s for s in out.secrets if s.label == "cookie-secret"]
    assert secret.owner == "app"
    key = secret.tracked_content["cookie-secret"]
    assert len(key) == 44 and oauth2_proxy.is_valid_cookie_secret(key)
    assert written(tmp_path, "secrets/cookie-secret") == key
    assert out.unit_status.name == "active"


def test_leader_replaces_an_unusable_cookie_secret(ctx, tmp_path):
    state = dex_state(tmp_path)
    others = {s for s in state.secrets if s.label != "cookie-secret"}
    state = dataclasses.replace(state, secrets={*others, cookie_secret("too-short")})
    out = ctx.run(ctx.on.config_changed(), state)
    (secret,) = [s for s in out.secrets if s.label == "cookie-secret"]
    assert oauth2_proxy.is_valid_cookie_secret(secret.latest_content["cookie-secret"])


def test_non_leader_waits_for_the_cookie_secret(ctx, tmp_path, calls):
    state = dex_state(tmp_path, leader=False)
    state = dataclasses.replace(
        state, secrets={s for s in state.secrets if s.label != "cookie-secret"}
    )
    calls.clear()
    out = ctx.run(ctx.on.config_changed(), state)

    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to create the cookie secret"
    )
    assert not [s for s in out.secrets if s.label == "cookie-secret"]
    assert not [c for c in calls.log if c in WORKLOAD_WRITES + DATABAG_WRITES]


def test_non_leader_serves_with_the_shared_cookie_secret_and_writes_no_databag(
    ctx, tmp_path, calls
):
    state = dex_state(tmp_path, leader=False)
    state = dataclasses.replace(
        state,
        relations={
            dataclasses.replace(r, local_app_data={}) if r.endpoint == "oauth" else r
            for r in state.relations
        },
    )
    calls.clear()
    out = ctx.run(ctx.on.config_changed(), state)

    assert written(tmp_path, "secrets/cookie-secret") == COOKIE_SECRET
    assert written(tmp_path, "secrets/client-secret") == DEX_CLIENT_SECRET
    assert not [c for c in calls.log if c in DATABAG_WRITES]
    assert out.unit_status.name == "active"


def test_update_status_on_a_non_leader_picks_up_a_new_cookie_secret(ctx, tmp_path):
    # Juju sends no event when the leader creates a secret: update-status catches up.
    state = dex_state(tmp_path, leader=False)
    waiting = ctx.run(
        ctx.on.config_changed(),
        dataclasses.replace(
            state, secrets={s for s in state.secrets if s.label != "cookie-secret"}
        ),
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(waiting, secrets=state.secrets))
    assert written(tmp_path, "secrets/cookie-secret") == COOKIE_SECRET
    assert out.unit_status.name == "active"


# --- the container -------------------------------------------------------------------------------


def _unreachable(state: testing.State) -> testing.State:
    (container,) = state.containers
    return dataclasses.replace(
        state, containers={dataclasses.replace(container, can_connect=False)}
    )


def test_container_not_ready_waits_and_pushes_nothing(ctx, tmp_path, calls):
    state = _unreachable(dex_state(tmp_path))
    calls.clear()
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for Pebble in the oauth2-proxy container"
    )
    assert not [c for c in calls.log if c in WORKLOAD_WRITES]
    assert stamps(tmp_path) == {}


def test_container_not_ready_does_not_hold_up_the_registration(ctx, tmp_path):
    oauth, _ = dex_relation(client=False, registered=False)
    state = _unreachable(_replace_relation(dex_state(tmp_path), oauth))
    out = ctx.run(ctx.on.config_changed(), state)
    assert _relation(out, "oauth").local_app_data == registration()
    assert out.unit_status == testing.WaitingStatus(
        f"waiting for {DEX_APP} to issue the OAuth client"
    )


def test_pebble_ready_starts_the_proxy(ctx, tmp_path):
    state = dex_state(tmp_path)
    (container,) = state.containers
    out = ctx.run(ctx.on.pebble_ready(container), state)
    statuses = out.get_container(CONTAINER).service_statuses
    assert statuses[oauth2_proxy.SERVICE] == ops.pebble.ServiceStatus.ACTIVE


def test_proxy_not_ready_waits(ctx, tmp_path):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    container = first.get_container(CONTAINER)
    failing = {
        dataclasses.replace(c, status=ops.pebble.CheckStatus.DOWN)
        if c.name == oauth2_proxy.READY_CHECK
        else c
        for c in container.check_infos
    }
    state = dataclasses.replace(
        first, containers={dataclasses.replace(container, check_infos=failing)}
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.WaitingStatus("oauth2-proxy is not ready yet")


# --- nothing to change, nothing written ----------------------------------------------------------


@pytest.mark.parametrize("source", ["dex", "external"])
@pytest.mark.parametrize("event", ["config_changed", "update_status", "upgrade_charm"])
def test_reconcile_with_nothing_to_change_writes_nothing(ctx, tmp_path, calls, source, event):
    state = dex_state(tmp_path) if source == "dex" else external_state(tmp_path)
    first = ctx.run(ctx.on.config_changed(), state)
    before = stamps(tmp_path)
    assert len(before) == 4
    calls.clear()

    again = ctx.run(getattr(ctx.on, event)(), first)

    assert calls.log == []
    assert stamps(tmp_path) == before
    assert (
        again.get_container(CONTAINER).plan.to_dict()
        == first.get_container(CONTAINER).plan.to_dict()
    )
    for relation in first.relations:
        assert again.get_relation(relation.id).local_app_data == relation.local_app_data
    assert {s.id: s.latest_content for s in again.secrets} == {
        s.id: s.latest_content for s in first.secrets
    }
    assert again.opened_ports == first.opened_ports
    assert again.unit_status == first.unit_status


def test_reconcile_restores_a_stopped_proxy(ctx, tmp_path):
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    container = first.get_container(CONTAINER)
    stopped = dataclasses.replace(
        container, service_statuses={oauth2_proxy.SERVICE: ops.pebble.ServiceStatus.INACTIVE}
    )
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(first, containers={stopped}))
    statuses = out.get_container(CONTAINER).service_statuses
    assert statuses[oauth2_proxy.SERVICE] == ops.pebble.ServiceStatus.ACTIVE


def test_reconcile_replans_a_changed_layer(ctx, tmp_path, calls):
    # E.g. after an upgrade of the charm: the plan differs, the files do not.
    first = ctx.run(ctx.on.config_changed(), dex_state(tmp_path))
    container = first.get_container(CONTAINER)
    older = oauth2_proxy.pebble_layer().to_dict()
    older["services"][oauth2_proxy.SERVICE]["command"] = "/bin/oauth2-proxy --config=/old.cfg"
    stale = dataclasses.replace(container, layers={oauth2_proxy.SERVICE: ops.pebble.Layer(older)})
    calls.clear()
    out = ctx.run(ctx.on.upgrade_charm(), dataclasses.replace(first, containers={stale}))

    assert _service(out)["command"] == oauth2_proxy.COMMAND
    assert calls.count("Container.replan") == 1
    assert calls.count("Container.push") == 0


# --- secrets stay secret -------------------------------------------------------------------------


def test_no_secret_in_databags_logs_statuses_or_plan(ctx, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    outputs = [
        ctx.run(ctx.on.config_changed(), dex_state(tmp_path / "dex")),
        ctx.run(ctx.on.config_changed(), external_state(tmp_path / "ext")),
    ]
    fresh = dex_state(tmp_path / "new")
    fresh = dataclasses.replace(
        fresh, secrets={s for s in fresh.secrets if s.label != "cookie-secret"}
    )
    outputs.append(ctx.run(ctx.on.config_changed(), fresh))
    generated = next(s for s in outputs[-1].secrets if s.label == "cookie-secret")
    rotated = ctx.run(ctx.on.action("rotate-secrets"), outputs[0])
    outputs.append(rotated)
    new_cookie = next(s for s in rotated.secrets if s.label == "cookie-secret")

    secrets = {
        COOKIE_SECRET,
        DEX_CLIENT_SECRET,
        EXTERNAL_CLIENT_SECRET,
        generated.tracked_content["cookie-secret"],
        new_cookie.latest_content["cookie-secret"],
    }
    seen: list[str] = [caplog.text, json.dumps(ctx.action_results)]
    seen += [line.message for line in ctx.juju_log]
    for out in outputs:
        seen += [out.unit_status.message, out.app_status.message]
        seen += [json.dumps(out.get_container(CONTAINER).plan.to_dict())]
        for relation in out.relations:
            seen += list(relation.local_app_data.values()) + list(
                relation.local_unit_data.values()
            )
    text = "\n".join(seen)
    assert all(secret not in text for secret in secrets)


def test_settings_repr_hides_secrets():
    provider = oauth2_proxy.Provider(
        id="dex",
        display_name="dex",
        issuer_url=DEX_ISSUER,
        client_id=DEX_CLIENT_ID,
        client_secret=DEX_CLIENT_SECRET,
        scopes="openid",
    )
    settings = oauth2_proxy.ProxySettings(
        provider=provider, cookie_secret=COOKIE_SECRET, redirect_url=CALLBACK, cookie_secure=True
    )
    assert DEX_CLIENT_SECRET not in repr(settings)
    assert COOKIE_SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (oauth2_proxy.generate_cookie_secret(), True),
        (COOKIE_SECRET.rstrip("="), True),  # oauth2-proxy takes it unpadded too
        ("A" * 22, True),  # 16 bytes
        ("A" * 32, True),  # 24 bytes
        ("A" * 30, False),  # 22 bytes: no AES key size
        ("not+url/safe" * 4, False),
        ("", False),
    ],
)
def test_cookie_secret_size_rules(value, valid):
    assert oauth2_proxy.is_valid_cookie_secret(value) is valid
