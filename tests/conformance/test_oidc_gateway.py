"""The oidc-gateway charm against oauth2-proxy v7.15.3: image, command, both config files, health.

The charm runs under ops.testing (its unit tests' states) and writes its two
configuration files; the workload module renders them once more with every
optional part set. Both are compared with facts/oidc-gateway.yaml, and the
alpha file is read back the way oauth2-proxy reads it: environment
references expanded first.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from charm_loader import CHARMS
from conformance import facts
from ops import testing
from unit.oidc_gateway.helpers import (
    CHARM,
    alpha_config,
    external_state,
    oauth2_proxy,
    toml_config,
)

PROXY = facts.load("oidc-gateway")["oauth2-proxy"]
METADATA = yaml.safe_load((CHARMS / "oidc-gateway" / "charmcraft.yaml").read_text())
# A user-id prefix with every form of `$` oauth2-proxy's expansion treats specially.
TRICKY_PREFIX = "$HOME:${USER}:$1:${2}:$$x:$"


def _settings(**provider: Any) -> Any:
    """Settings with every optional part: explicit endpoints, a CA, groups, a tricky prefix."""
    fields: dict[str, Any] = {
        "id": "corp$idp",
        "display_name": "Corp $SSO",
        "issuer_url": "https://login.example.com/realm$1",
        "client_id": "client$ID",
        "client_secret": "never-rendered",
        "scopes": "openid email groups",
        "login_url": "https://login.example.com/auth",
        "redeem_url": "https://login.example.com/token",
        "profile_url": "https://login.example.com/userinfo",
        "jwks_url": "https://login.example.com/keys",
        "ca_chain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        **provider,
    }
    return oauth2_proxy.ProxySettings(
        provider=oauth2_proxy.Provider(**fields),
        cookie_secret=oauth2_proxy.generate_cookie_secret(),
        redirect_url="https://kubeflow.example.com/oauth2/callback",
        cookie_secure=True,
        userid_prefix=TRICKY_PREFIX,
        userid_claim="preferred_username",
        groups_header="kubeflow-groups",
        extra_jwt_issuers=("https://sso.example.com/realm=sdk=client",),
    )


@pytest.fixture(scope="module")
def charm_files(tmp_path_factory) -> tuple[testing.State, Path]:
    """The charm configured for an external provider, with a prefix and a groups header."""
    tmp_path = tmp_path_factory.mktemp("oauth2-proxy")
    ctx = testing.Context(CHARM.OidcGatewayCharm)
    base = external_state(tmp_path)
    config = {
        **base.config,
        "userid-prefix": TRICKY_PREFIX,
        "userid-claim": "preferred_username",
        "groups-header": "kubeflow-groups",
    }
    state = testing.State(
        leader=base.leader,
        model=base.model,
        config=config,
        containers=base.containers,
        relations=base.relations,
        secrets=base.secrets,
    )
    out = ctx.run(ctx.on.config_changed(), state)
    return out, tmp_path


def _expanded(text: str, environment: dict[str, str]) -> str:
    """The alpha file as oauth2-proxy hands it to its YAML parser (see alpha-env-expansion)."""
    expansion, escape = PROXY["alpha-env-expansion"], PROXY["envsubst-escape"]
    text = re.sub(expansion.value["digits"], r"$$\1", text)
    out, i = [], 0
    while i < len(text):
        if text.startswith(escape.value, i):
            out.append("$")
            i += len(escape.value)
        elif text.startswith("${", i):
            end = text.index("}", i)
            out.append(environment.get(text[i + 2 : end], ""))
            i = end + 1
        elif text[i] == "$" and i + 1 < len(text) and re.match(r"\w", text[i + 1]):
            name = re.match(r"\w+", text[i + 1 :])
            assert name is not None
            out.append(environment.get(name.group(0), ""))
            i += 1 + len(name.group(0))
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _read_back(text: str) -> dict[str, Any]:
    return yaml.safe_load(_expanded(text, {"HOME": "/root", "USER": "root", "1": "one"}))


# --- image and command ---------------------------------------------------------------------


def test_image_is_the_released_one():
    fact = PROXY["image"]
    upstream = METADATA["resources"]["oci-image"]["upstream-source"]
    assert upstream == fact.value, f"image: {fact.source}"


def test_command_and_user():
    service = oauth2_proxy.pebble_layer().services[oauth2_proxy.SERVICE]
    binary, flags = PROXY["binary"], PROXY["flags"]
    words = service.command.split()
    assert words[0] == binary.value, str(binary.source)
    names = {w[2:].partition("=")[0] for w in words[1:]}
    assert names == set(flags.value), str(flags.source)
    user = PROXY["user"]
    assert service.user_id == service.group_id == user.value, f"{user.source} ({user.note})"


# --- the TOML file ---------------------------------------------------------------------------


def test_toml_keys_are_core_options(charm_files):
    _, tmp_path = charm_files
    toml = toml_config(tmp_path)
    keys = ("core-option-keys", "cookie-option-keys", "logging-option-keys")
    known = {k for key in keys for k in PROXY[key].value}
    unknown = sorted(set(toml) - known)
    sources = ", ".join(str(PROXY[k].source) for k in keys)
    assert unknown == [], (
        f"{unknown}: no core option ({sources}); {PROXY['core-option-keys'].note}"
    )
    samesite = PROXY["cookie-samesite"]
    assert toml["cookie_samesite"] in samesite.value, str(samesite.source)
    assert toml["cookie_secret_file"] == oauth2_proxy.COOKIE_SECRET_FILE
    # The module's own rendering, every option set, stays within the same keys.
    assert set(tomllib.loads(oauth2_proxy.render_config(_settings()))) <= known


def test_cookie_secret_is_an_aes_key():
    fact = PROXY["cookie-secret-bytes"]
    secret = oauth2_proxy.generate_cookie_secret()
    decoded = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    assert len(decoded) in fact.value, str(fact.source)
    for size in fact.value:
        key = base64.urlsafe_b64encode(bytes(size)).decode()
        assert oauth2_proxy.is_valid_cookie_secret(key), str(fact.source)
        assert oauth2_proxy.is_valid_cookie_secret(key.rstrip("=")), str(fact.source)
    assert not oauth2_proxy.is_valid_cookie_secret(base64.urlsafe_b64encode(bytes(20)).decode())


# --- the alpha file --------------------------------------------------------------------------


def _alpha_documents(charm_files) -> list[tuple[str, dict[str, Any]]]:
    _, tmp_path = charm_files
    charm_text = (tmp_path / "etc-oauth2-proxy" / "alpha-config.yaml").read_text()
    module_text = oauth2_proxy.render_alpha_config(_settings())
    return [("charm", _read_back(charm_text)), ("module", _read_back(module_text))]


def _check_keys(key: str, part: dict[str, Any], where: str) -> None:
    fact = PROXY[key]
    unknown = sorted(set(part) - set(fact.value))
    assert unknown == [], (
        f"{where} {key}: {unknown} not in {fact.source}; {PROXY['alpha-keys'].note}"
    )


def test_alpha_keys_are_oauth2_proxys(charm_files):
    for where, alpha in _alpha_documents(charm_files):
        _check_keys("alpha-keys", alpha, where)
        _check_keys("server-keys", alpha["server"], where)
        _check_keys("upstream-config-keys", alpha["upstreamConfig"], where)
        for upstream in alpha["upstreamConfig"]["upstreams"]:
            _check_keys("upstream-keys", upstream, where)
        for header in alpha["injectResponseHeaders"]:
            _check_keys("header-keys", header, where)
            for value in header["values"]:
                _check_keys("header-value-keys", value, where)
                _check_keys("claim-source-keys", value["claimSource"], where)
        for provider in alpha["providers"]:
            _check_keys("provider-keys", provider, where)
            _check_keys("oidc-keys", provider["oidcConfig"], where)
            kind, methods = PROXY["provider-type"], PROXY["code-challenge-methods"]
            assert provider["provider"] == kind.value, str(kind.source)
            assert provider["code_challenge_method"] in methods.value, str(methods.source)


def test_alpha_values_survive_environment_expansion(charm_files):
    _, tmp_path = charm_files
    fact = PROXY["alpha-env-expansion"]
    for where, alpha in _alpha_documents(charm_files):
        (user_header, _) = alpha["injectResponseHeaders"]
        source = user_header["values"][0]["claimSource"]
        assert source["prefix"] == TRICKY_PREFIX, f"{where}: {fact.source} ({fact.note})"
    _, module = _alpha_documents(charm_files)[1]
    (provider,) = module["providers"]
    wanted = _settings().provider
    assert (provider["id"], provider["name"], provider["clientID"]) == (
        wanted.id,
        wanted.display_name,
        wanted.client_id,
    ), str(fact.source)
    assert provider["oidcConfig"]["issuerURL"] == wanted.issuer_url, str(fact.source)
    # What the unit tests read (plain YAML) is what oauth2-proxy reads, but for the `$`s.
    assert alpha_config(tmp_path)["server"] == _alpha_documents(charm_files)[0][1]["server"]


def test_user_header_is_the_sessions_email_holding_the_user_claim(charm_files):
    claims = PROXY["session-claims"]
    rule = PROXY["email-from-user-id-claim"]
    for where, alpha in _alpha_documents(charm_files):
        (provider,) = alpha["providers"]
        oidc = provider["oidcConfig"]
        assert oidc["emailClaim"] == rule.value["emailClaim"], f"{where}: {rule.source}"
        assert oidc["userIDClaim"] == "preferred_username", where
        (user_header, groups_header) = alpha["injectResponseHeaders"]
        claim = user_header["values"][0]["claimSource"]["claim"]
        # The session's email: with emailClaim "email", filled from userIDClaim.
        assert claim == "email" and claim in claims.value, (
            f"{where}: {claims.source}, {rule.source}"
        )
        assert groups_header["values"][0]["claimSource"]["claim"] in claims.value, str(
            claims.source
        )
    default = PROXY["default-user-id-claim"]
    assert oauth2_proxy.ProxySettings.__dataclass_fields__["userid_claim"].default == (
        default.value
    ), str(default.source)


# --- bearer tokens ---------------------------------------------------------------------------


def test_bearer_tokens_as_kubeflow_allows_them(charm_files):
    _, tmp_path = charm_files
    toml = toml_config(tmp_path)
    options = PROXY["bearer-options"]
    kubeflow = PROXY["kubeflow-bearer-settings"]
    assert toml["skip_jwt_bearer_tokens"] is True, str(kubeflow.source)
    assert kubeflow.value["OAUTH2_PROXY_SKIP_JWT_BEARER_TOKENS"] == "true"
    assert "skip_jwt_bearer_tokens" in PROXY["core-option-keys"].value, str(options.source)
    # No extra issuer unless configured, as Kubeflow's EXTRA_JWT_ISSUERS is empty.
    assert "extra_jwt_issuers" not in toml, str(kubeflow.source)
    assert "bearer_token_login_fallback" not in toml, f"its default: {options.note}"
    assert METADATA["config"]["options"]["accept-bearer-tokens"]["default"] == (
        kubeflow.value["OAUTH2_PROXY_SKIP_JWT_BEARER_TOKENS"] == "true"
    ), str(kubeflow.source)


def test_extra_jwt_issuers_are_issuer_audience_pairs():
    fact = PROXY["extra-jwt-issuer-format"]
    options = PROXY["bearer-options"]
    toml = tomllib.loads(oauth2_proxy.render_config(_settings()))
    assert isinstance(toml["extra_jwt_issuers"], list), str(options.source)
    assert options.value["extra_jwt_issuers"] == "list"
    for entry in toml["extra_jwt_issuers"]:
        issuer, sep, audience = entry.partition(fact.value["separator"])
        # oauth2-proxy takes the issuer up to the first `=` and the audience as the rest.
        assert sep and issuer.startswith("https://") and audience, str(fact.source)
    assert toml["extra_jwt_issuers"] == ["https://sso.example.com/realm=sdk=client"]
    # The charm's own check splits the same way, so an issuer holds no `=`.
    config = CHARM.GatewayConfig(extra_jwt_issuers="https://sso.example.com/realm=sdk=client")
    (entry,) = config.jwt_issuers
    assert entry.partition("=")[0] == "https://sso.example.com/realm", str(fact.source)


def test_a_bearer_tokens_user_header_reads_the_same_claim_as_a_login(charm_files):
    provider = PROXY["bearer-session-provider"]
    extra = PROXY["bearer-session-extra-issuers"]
    rule = PROXY["email-from-user-id-claim"]
    for where, alpha in _alpha_documents(charm_files):
        oidc = alpha["providers"][0]["oidcConfig"]
        user_header = alpha["injectResponseHeaders"][0]
        claim = user_header["values"][0]["claimSource"]["claim"]
        # The main issuer's tokens: the session's email is userIDClaim's value, as for a login.
        assert oidc["emailClaim"] == rule.value["emailClaim"], f"{where}: {provider.source}"
        # Extra issuers' tokens fill the same session field from `email` (or `sub`).
        assert claim == "email" == extra.value["email"][0], f"{where}: {extra.source}"


# --- ports and health ------------------------------------------------------------------------


def test_port_and_health_endpoints(charm_files):
    port, health = PROXY["default-port"], PROXY["health"]
    assert oauth2_proxy.PORT == port.value, str(port.source)
    _, tmp_path = charm_files
    toml = toml_config(tmp_path)
    prefix = health.value["proxy-prefix"]
    assert toml["proxy_prefix"] == prefix, str(health.source)
    assert toml["ping_path"] == prefix + health.value["ping"], f"{health.source}: {health.note}"
    assert toml["ready_path"] == prefix + health.value["ready"], f"{health.source}: {health.note}"
    for where, alpha in _alpha_documents(charm_files):
        assert alpha["server"]["bindAddress"].rpartition(":")[2] == str(port.value), where
    checks = oauth2_proxy.pebble_layer().checks
    urls = {
        (checks[name].http or {}).get("url")
        for name in (oauth2_proxy.ALIVE_CHECK, oauth2_proxy.READY_CHECK)
    }
    assert urls == {
        f"http://localhost:{port.value}{toml['ping_path']}",
        f"http://localhost:{port.value}{toml['ready_path']}",
    }, str(health.source)
    out, _ = charm_files
    assert {p.port for p in out.opened_ports} == {port.value}
