"""Building blocks of the dex charm's unit-test states.

The oauth requirer's side is the ecosystem library's own `OAuthRequirer`,
run in a tiny charm: registrations are what a real requirer publishes, and
what the dex charm answers is read back the way a real requirer reads it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import bcrypt
import ops
import yaml
from charm_loader import load_charm
from charmlibs.interfaces.oauth import ClientConfig, OauthProviderConfig, OAuthRequirer
from ops import testing

from kubeflow_interfaces import istio_ingress_route, mysql_client

CHARM = load_charm("dex")
import dex_server  # noqa: E402 - the workload module, as the charm imported it

MODEL = "kubeflow"
GATEWAY_HOST = "10.64.140.43"
ISSUER = "http://10.64.140.43/dex"
ADMIN_PASSWORD = "Adm1nPassw0rdForTests123"
# Cost 10, the least Dex logs in with: quick to make and to check in tests.
ADMIN_HASH = bcrypt.hashpw(ADMIN_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
CALLBACK = "https://kubeflow.example.com/oauth2/callback"
DB_USER = "relation-7"
DB_PASSWORD = "Db-Passw0rd-For-Tests-9c1e"
DB_HOST = "mysql-0.mysql-endpoints.kubeflow.svc.cluster.local"


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


# --- the dex charm's state ------------------------------------------------------------


def dex_container(tmp_path: Path | None = None, **kwargs: Any) -> testing.Container:
    """The workload container; with tmp_path, /etc/dex is a directory the test can watch."""
    kwargs.setdefault("can_connect", True)
    if tmp_path is not None:
        etc = tmp_path / "etc-dex"
        etc.mkdir(exist_ok=True)
        kwargs.setdefault("mounts", {"etc": testing.Mount(location="/etc/dex", source=etc)})
    return testing.Container("dex", **kwargs)


def admin_secret(password: str = ADMIN_PASSWORD, password_hash: str = ADMIN_HASH):
    return testing.Secret(
        tracked_content={"password": password, "hash": password_hash},
        owner="app",
        label="admin-credentials",
    )


def user_secret(content: dict[str, str]) -> testing.Secret:
    """A user secret granted to the app (owner None: the charm only reads it)."""
    return testing.Secret(tracked_content=content)


def route_relation(
    external_host: str | None = GATEWAY_HOST, *, tls_enabled: bool = False, **kwargs: Any
) -> testing.Relation:
    """The route to Dex as istio answers it (None: not served yet)."""
    return istio_ingress_route.relation_for_requirer(
        external_host=external_host, tls_enabled=tls_enabled, **kwargs
    )


def our_request(database: str = "dex") -> dict[str, str]:
    """Our databag once the mysql_client library wrote the request (v1)."""
    request = {"resource": database, "request-id": f"req-{database}", "salt": "s" * 16}
    return {"version": "v1", "requests": json.dumps([request])}


def database_relation(
    *, answered: bool = True, password: str = DB_PASSWORD, **kwargs: Any
) -> tuple[testing.Relation, testing.Secret | None]:
    """The relational-db relation after our request; answered by mysql, or not yet."""
    kwargs.setdefault("local_app_data", our_request())
    if not answered:
        relation = testing.Relation(
            "relational-db", interface="mysql_client", remote_app_name="mysql", **kwargs
        )
        return relation, None
    return mysql_client.relation_for_requirer(
        database="dex",
        username=DB_USER,
        password=password,
        endpoints=f"{DB_HOST}:3306",
        **kwargs,
    )


def peers(**local_app_data: str) -> testing.PeerRelation:
    return testing.PeerRelation("dex-peers", local_app_data=local_app_data)


def make_state(
    *,
    leader: bool = True,
    config: dict[str, Any] | None = None,
    relations: tuple[testing.RelationBase, ...] | None = None,
    secrets: tuple[testing.Secret, ...] = (),
    container: testing.Container | None = None,
    database: bool = True,
    **kwargs: Any,
) -> testing.State:
    """A dex unit with its route answered and its peer relation, unless told otherwise.

    Its database relation, answered, is added unless `database` is False or
    the relations given hold one.
    """
    if relations is None:
        relations = (route_relation(), peers())
    if database and not any(r.endpoint == "relational-db" for r in relations):
        relation, secret = database_relation()
        relations = (*relations, relation)
        secrets = (*secrets, *([secret] if secret else []))
    return testing.State(
        leader=leader,
        config=config or {},
        relations=set(relations),
        secrets=set(secrets),
        containers={container or dex_container()},
        model=testing.Model(name=MODEL),
        **kwargs,
    )


def dex_config(ctx: testing.Context, state: testing.State) -> dict[str, Any]:
    """The config file the charm pushed, parsed."""
    return yaml.safe_load(config_text(ctx, state))


def config_text(ctx: testing.Context, state: testing.State) -> str:
    root = state.get_container("dex").get_filesystem(ctx)
    return (root / dex_server.CONFIG_FILE.lstrip("/")).read_text()


def has_config(ctx: testing.Context, state: testing.State) -> bool:
    root = state.get_container("dex").get_filesystem(ctx)
    return (root / dex_server.CONFIG_FILE.lstrip("/")).exists()


def replace_secret(state: testing.State, secret: testing.Secret, **changes: Any) -> testing.State:
    """The state with one secret changed (e.g. a new revision of a user secret)."""
    old = state.get_secret(id=secret.id)
    return dataclasses.replace(
        state, secrets=(state.secrets - {old}) | {dataclasses.replace(old, **changes)}
    )


def everything_shown(ctx: testing.Context, state: testing.State) -> str:
    """Logs, statuses and every relation databag: where no secret may appear."""
    parts = [entry.message for entry in ctx.juju_log]
    parts += [state.unit_status.message, state.app_status.message]
    for relation in state.relations:
        parts += [str(relation.local_app_data), str(relation.local_unit_data)]
    return "\n".join(parts)


# --- the oauth requirer, as the ecosystem library is ----------------------------------

REQUIRER_META = {
    "name": "oidc-gateway",
    "requires": {"oauth": {"interface": "oauth"}},
}


class RequirerCharm(ops.CharmBase):
    """A client of Dex, registering through the library's OAuthRequirer."""

    client_config: ClientConfig | None = None

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.oauth = OAuthRequirer(self, self.client_config, relation_name="oauth")


def registration(
    redirect_uri: str | list[str] = CALLBACK,
    scope: str = "openid profile email groups offline_access",
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
) -> dict[str, str]:
    """The requirer's databag after the library registered this client."""
    RequirerCharm.client_config = ClientConfig(redirect_uri, scope, list(grant_types))
    try:
        ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
        relation = testing.Relation("oauth", remote_app_name="dex")
        out = ctx.run(
            ctx.on.relation_created(relation), testing.State(leader=True, relations={relation})
        )
    finally:
        RequirerCharm.client_config = None
    return dict(out.get_relation(relation.id).local_app_data)


def oauth_relation(
    app: str = "oidc-gateway", data: dict[str, str] | None = None, **kwargs: Any
) -> testing.Relation:
    """An oauth relation as dex sees it, the requirer's registration in it."""
    return testing.Relation(
        "oauth",
        interface="oauth",
        remote_app_name=app,
        remote_app_data=registration() if data is None else data,
        **kwargs,
    )


def provider_info_seen_by_requirer(
    dex_state: testing.State, relation: testing.Relation
) -> OauthProviderConfig | None:
    """What the requirer's library reads from dex's answer, client secret included."""
    ours = dex_state.get_relation(relation.id).local_app_data
    secrets = set()
    if "client_secret_id" in ours:
        shared = dex_state.get_secret(id=ours["client_secret_id"])
        assert relation.remote_app_name in shared.remote_grants.get(relation.id, set())
        # The requirer sees the same secret, owned by dex and granted to it.
        secrets.add(testing.Secret(tracked_content=dict(shared.latest_content), id=shared.id))
    theirs = testing.Relation("oauth", remote_app_name="dex", remote_app_data=dict(ours))
    state = testing.State(leader=True, relations={theirs}, secrets=secrets)
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    with ctx(ctx.on.update_status(), state) as manager:
        charm = manager.charm
        assert isinstance(charm, RequirerCharm)
        return charm.oauth.get_provider_info(theirs.id)
