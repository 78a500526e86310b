"""The dex charm against Dex v2.45.1: the image, the command, the config file, ports and checks.

The charm runs under ops.testing with a connector, a static user, the admin
user, an oauth client and its MySQL database, so its config file holds every
kind of entry it writes; that file and the Pebble plan are compared with
facts/dex.yaml.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from ops import testing
from unit.dex.helpers import (
    CHARM,
    admin_secret,
    bcrypt_hash,
    dex_config,
    dex_server,
    make_state,
    oauth_relation,
    peers,
    route_relation,
    user_secret,
)

DEX = facts.load("dex")["dex"]
METADATA = yaml.safe_load((CHARMS / "dex" / "charmcraft.yaml").read_text())
import identities  # noqa: E402 - the charm's module, on the path the charm loader set

CONNECTORS = """
- type: oidc
  id: keycloak
  name: Keycloak
  config:
    issuer: https://keycloak.example.com/realms/kubeflow
    clientID: kubeflow
    clientSecret: ${keycloak-secret}
"""
USERS = '- email: alice@example.com\n  username: alice\n  hash: "{hash}"\n  groups: [admins]\n'


@pytest.fixture(scope="module")
def settled() -> tuple[testing.State, dict[str, Any]]:
    """The charm configured with every kind of login and one client; its state and config."""
    ctx = testing.Context(CHARM.DexCharm)
    connectors = user_secret({"keycloak-secret": "s3cret"})
    users = user_secret({"users": USERS.format(hash=bcrypt_hash("alice-password"))})
    state = make_state(
        config={
            "connectors": CONNECTORS,
            "connectors-secret-id": connectors.id,
            "static-users-secret-id": users.id,
        },
        secrets=(admin_secret(), connectors, users),
        relations=(route_relation(), peers(), oauth_relation()),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    return out, dex_config(ctx, out)


def _service(out: testing.State) -> Any:
    return out.get_container("dex").plan.services[dex_server.SERVICE]


def test_image_is_the_released_one():
    fact = DEX["image"]
    upstream = METADATA["resources"]["oci-image"]["upstream-source"]
    assert upstream == fact.value, f"image: {fact.source}"


def test_command_serves_the_charms_config_file(settled):
    out, _ = settled
    service = _service(out)
    binary, command = DEX["binary"], DEX["command"]
    words = service.command.split()
    assert words[0] == binary.value, str(binary.source)
    assert words[1:] == [command.value[0], dex_server.CONFIG_FILE], str(command.source)
    user = DEX["user"]
    assert (service.user_id, service.group_id) == (user.value["uid"], user.value["gid"]), str(
        user.source
    )


def test_env_expansion_is_off(settled):
    out, _ = settled
    fact = DEX["expand-env"]
    assert _service(out).environment == {fact.value: "false"}, str(fact.source)


def test_config_uses_dex_keys(settled):
    _, config = settled
    for key, part in (
        ("config-keys", config),
        ("web-keys", config["web"]),
        ("telemetry-keys", config["telemetry"]),
        ("oauth2-keys", config["oauth2"]),
        ("logger-keys", config["logger"]),
        ("mysql-storage-keys", config["storage"]["config"]),
        ("mysql-ssl-keys", config["storage"]["config"]["ssl"]),
    ):
        fact = DEX[key]
        unknown = sorted(set(part) - set(fact.value))
        assert unknown == [], f"{key}: {unknown} not in {fact.source}"
    formats = DEX["log-formats"]
    assert config["logger"]["format"] in formats.value, str(formats.source)
    storage = DEX["storage-types"]
    assert config["storage"]["type"] in storage.value, str(storage.source)
    assert config["storage"]["type"] == "mysql", storage.note


def _keys(value: Any) -> set[str]:
    """Every mapping key anywhere in a parsed YAML document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_mysql_storage_is_what_dex_and_its_driver_read(settled):
    _, config = settled
    storage = config["storage"]["config"]
    engine = DEX["sql-engine"]
    assert engine.value["flag"] not in _service(settled[0]).environment, str(engine.source)
    port = storage["port"]
    assert isinstance(port, int) and 0 < port < 2**16, str(DEX["mysql-storage-keys"].note)
    modes, default = DEX["mysql-tls-modes"], DEX["mysql-ssl-default"]
    mode = storage["ssl"]["mode"]
    assert mode in modes.value, str(modes.source)
    # Dex's default verifies a certificate the mysql charm does not have: we set the mode.
    assert mode and mode != default.value, str(default.source)
    user = DEX["mysql-dsn-user"]
    assert user.value["separator"] not in storage["user"], str(user.source)
    assert all(isinstance(storage[k], str) and storage[k] for k in ("host", "database", "user"))


def test_nothing_asks_dex_for_the_kubernetes_api(settled):
    _, config = settled
    api, keys = DEX["kubernetes-api"], DEX["kubernetes-storage-keys"]
    assert config["storage"]["type"] != "kubernetes", str(api.source)
    assert not _keys(config) & set(keys.value), str(keys.source)


def test_entries_use_dex_keys(settled):
    _, config = settled
    for key, entries in (
        ("connector-keys", config["connectors"]),
        ("static-password-keys", config["staticPasswords"]),
        ("static-client-keys", config["staticClients"]),
    ):
        fact = DEX[key]
        assert entries, f"the test renders some {key}"
        for entry in entries:
            unknown = sorted(set(entry) - set(fact.value))
            assert unknown == [], f"{key}: {unknown} not in {fact.source}"
    assert config["enablePasswordDB"] is True


def test_connectors_offered_are_dex():
    fact = DEX["connector-types"]
    assert set(identities.CONNECTOR_TYPES) <= set(fact.value), str(fact.source)
    left_out = set(fact.value) - set(identities.CONNECTOR_TYPES)
    assert left_out == {"mockCallback", "mockPassword", "samlExperimental"}, fact.note
    local = DEX["password-connector-id"]
    assert local.value in identities.RESERVED_CONNECTOR_IDS, str(local.source)


def test_ports_and_checks(settled):
    out, config = settled
    ports = DEX["ports"]
    assert dex_server.HTTP_PORT == ports.value["web"], str(ports.source)
    assert dex_server.TELEMETRY_PORT == ports.value["telemetry"], str(ports.source)
    assert config["web"]["http"].rpartition(":")[2] == str(ports.value["web"])
    assert config["telemetry"]["http"].rpartition(":")[2] == str(ports.value["telemetry"])
    assert {p.port for p in out.opened_ports} == {ports.value["web"]}, str(ports.source)

    health = DEX["health"]
    checks = out.get_container("dex").plan.checks
    telemetry = f"http://localhost:{ports.value['telemetry']}"
    alive = checks[dex_server.ALIVE_CHECK].http
    ready = checks[dex_server.READY_CHECK].http
    assert alive == {"url": telemetry + health.value["live"]}, str(health.source)
    assert ready is not None
    assert ready["url"] in {
        telemetry + health.value["ready"],
        telemetry + health.value["checks"],
    }, str(health.source)


def test_scopes_and_grants_are_dex():
    scopes, extra = DEX["scopes"], DEX["extra-scopes"]
    assert list(dex_server.SCOPES) == scopes.value, str(scopes.source)
    assert dex_server.EXTRA_SCOPES == (extra.value["federated-id"],), str(extra.source)
    assert dex_server.CROSS_CLIENT_SCOPE_PREFIX == extra.value["cross-client-prefix"]
    grants = DEX["grant-types"]
    assert set(dex_server.GRANT_TYPES) <= set(grants.value), str(grants.source)


def test_endpoints_are_under_the_issuer(settled):
    _, config = settled
    fact = DEX["endpoints"]
    (connector,) = config["connectors"]
    callback = connector["config"]["redirectURI"]
    assert callback == config["issuer"] + "/callback", f"callback: {fact.source}"
    issuer = "https://kubeflow.example.com/dex"
    internal = dex_server.service_url("dex", "kubeflow")
    for url in dex_server.endpoints(issuer, internal).values():
        base = issuer if url.startswith(issuer) else internal
        assert url[len(base) :] in fact.value, f"{url}: {fact.source}"


def test_password_hash_costs_are_dex():
    low, high, rec = DEX["bcrypt-min-cost"], DEX["bcrypt-max-cost"], DEX["bcrypt-recommended-cost"]
    assert identities.MIN_COST == low.value, str(low.source)
    assert identities.MAX_COST == high.value, str(high.source)
    assert identities.ADMIN_HASH_COST == rec.value, str(rec.source)
