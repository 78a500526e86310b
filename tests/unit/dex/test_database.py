"""Dex's state in MySQL: the relational-db relation, the storage config, no Kubernetes API."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ops
import pytest
from ops import testing
from unit.dex.helpers import (
    CHARM,
    DB_HOST,
    DB_PASSWORD,
    DB_USER,
    ISSUER,
    admin_secret,
    config_text,
    database_relation,
    dex_config,
    dex_container,
    everything_shown,
    has_config,
    make_state,
    our_request,
    peers,
    route_relation,
)

from kubeflow_interfaces.mysql_client import MySQLProvider


def _with_database(
    state: testing.State, relation: testing.Relation, secret: testing.Secret | None = None
) -> testing.State:
    """The state with its relational-db relation (and that relation's secret) replaced."""
    old = [r for r in state.relations if r.endpoint == "relational-db"]
    old_ids = {s.id for s in state.secrets if s.owner is None and "username" in s.tracked_content}
    secrets = {s for s in state.secrets if s.id not in old_ids} | ({secret} if secret else set())
    return dataclasses.replace(
        state, relations=(state.relations - set(old)) | {relation}, secrets=secrets
    )


def _settled(ctx: testing.Context, tmp_path: Path) -> testing.State:
    state = make_state(secrets=(admin_secret(),), container=dex_container(tmp_path))
    return ctx.run(ctx.on.config_changed(), state)


# --- without a database --------------------------------------------------------------


def test_without_the_relation_dex_is_blocked_and_not_started(ctx: testing.Context):
    state_in = make_state(secrets=(admin_secret(),), database=False)

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert state_out.unit_status == testing.BlockedStatus("missing relation relational-db")
    assert state_out.app_status == testing.BlockedStatus("missing relation relational-db")
    assert state_out.get_container("dex").plan.services == {}
    assert not has_config(ctx, state_out)


def test_until_mysql_answers_dex_waits_and_is_not_started(ctx: testing.Context):
    relation, _ = database_relation(answered=False)
    state_in = make_state(
        relations=(route_relation(), peers(), relation), secrets=(admin_secret(),)
    )

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state_in)

    assert state_out.unit_status == testing.WaitingStatus(
        "waiting for mysql to create the database"
    )
    assert state_out.get_container("dex").plan.services == {}
    assert not has_config(ctx, state_out)


def test_the_relation_gone_blocks_and_leaves_dex_as_it_was(ctx: testing.Context, tmp_path: Path):
    before = _settled(ctx, tmp_path)
    relation = next(r for r in before.relations if r.endpoint == "relational-db")
    text_before = config_text(ctx, before)

    gone = dataclasses.replace(before, relations=before.relations - {relation})
    state_out = ctx.run(ctx.on.update_status(), gone)

    assert state_out.unit_status == testing.BlockedStatus("missing relation relational-db")
    assert config_text(ctx, state_out) == text_before
    assert state_out.get_container("dex").plan == before.get_container("dex").plan


# --- the request, through the mysql_client library --------------------------------------


def test_the_leader_asks_for_a_database_named_after_the_application():
    ctx = testing.Context(CHARM.DexCharm, app_name="login")
    relation = testing.Relation("relational-db", interface="mysql_client", remote_app_name="db")
    state_in = make_state(relations=(route_relation(), peers(), relation))

    state_out = ctx.run(ctx.on.relation_created(relation), state_in)

    ours = state_out.get_relation(relation.id).local_app_data
    (request,) = json.loads(ours["requests"])
    assert request["resource"] == "login"
    assert state_out.unit_status == testing.WaitingStatus("waiting for db to create the database")


def test_a_non_leader_asks_for_nothing(ctx: testing.Context):
    relation = testing.Relation("relational-db", interface="mysql_client", remote_app_name="db")
    state_in = make_state(leader=False, relations=(route_relation(), peers(), relation))

    state_out = ctx.run(ctx.on.relation_created(relation), state_in)

    assert state_out.get_relation(relation.id).local_app_data == {}


def test_a_leader_elected_after_the_relation_was_made_asks_then():
    # The relation was created while another unit led (or none did): this
    # unit's databag has no request, and relation-created will not come again.
    ctx = testing.Context(CHARM.DexCharm, app_name="login")
    relation = testing.Relation("relational-db", interface="mysql_client", remote_app_name="db")
    state_in = make_state(relations=(route_relation(), peers(), relation))

    state_out = ctx.run(ctx.on.leader_elected(), state_in)

    (request,) = json.loads(state_out.get_relation(relation.id).local_app_data["requests"])
    assert request["resource"] == "login"
    # Asked once: the next hook leaves the request as it is.
    again = ctx.run(ctx.on.update_status(), state_out)
    assert again.get_relation(relation.id).local_app_data == (
        state_out.get_relation(relation.id).local_app_data
    )


class _MySQL(ops.CharmBase):
    """A database charm answering with our mysql_client provider API, as the mysql charm does."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = MySQLProvider(self, "database")
        framework.observe(self.on["database"].relation_changed, self._serve)

    def _serve(self, event: ops.RelationChangedEvent) -> None:
        for request in self.provider.requests(event.relation):
            self.provider.publish(
                request,
                username="relation-3",
                password="From-The-Provider-77",
                endpoints=["mysql-0.mysql-endpoints.kubeflow.svc.cluster.local:3306"],
                version="8.4.3",
            )


def test_the_providers_answer_to_our_request_runs_dex(ctx: testing.Context):
    # Our request as the library writes it, answered by the provider library,
    # read back by the charm's own reader: the two ends of the real wire.
    ask = testing.Relation("relational-db", interface="mysql_client", remote_app_name="mysql")
    asked = ctx.run(ctx.on.relation_created(ask), make_state(relations=(route_relation(), ask)))
    request = dict(asked.get_relation(ask.id).local_app_data)

    mysql = testing.Context(
        _MySQL, meta={"name": "mysql", "provides": {"database": {"interface": "mysql_client"}}}
    )
    theirs = testing.Relation("database", remote_app_name="dex", remote_app_data=request)
    served = mysql.run(
        mysql.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}),
    )
    answer = dict(served.get_relation(theirs.id).local_app_data)
    (published,) = served.secrets
    shared = testing.Secret(tracked_content=dict(published.latest_content), id=published.id)

    answered = dataclasses.replace(asked.get_relation(ask.id), remote_app_data=answer)
    state_in = _with_database(asked, answered, shared)
    state_out = ctx.run(ctx.on.relation_changed(answered, remote_unit=0), state_in)

    storage = dex_config(ctx, state_out)["storage"]
    assert storage["config"]["user"] == "relation-3"
    assert storage["config"]["password"] == "From-The-Provider-77"
    assert storage["config"]["host"] == "mysql-0.mysql-endpoints.kubeflow.svc.cluster.local"
    assert storage["config"]["database"] == "dex"
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)


# --- the config file -------------------------------------------------------------------


def test_storage_is_mysql_with_the_password_in_the_config_file_only(
    ctx: testing.Context, tmp_path: Path
):
    state_out = _settled(ctx, tmp_path)

    assert dex_config(ctx, state_out)["storage"] == {
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
    config_file = tmp_path / "etc-dex" / "config.yaml"
    assert config_file.stat().st_mode & 0o777 == 0o600
    plan = state_out.get_container("dex").plan.to_dict()
    assert DB_PASSWORD not in json.dumps(plan)
    assert DB_PASSWORD not in everything_shown(ctx, state_out)
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)


def test_nothing_in_the_config_asks_for_the_kubernetes_api(ctx: testing.Context, tmp_path):
    text = config_text(ctx, _settled(ctx, tmp_path))

    assert "kubernetes" not in text
    assert "inCluster" not in text
    assert "kubeConfigFile" not in text


def test_a_new_password_restarts_dex_with_it(ctx: testing.Context, tmp_path: Path):
    before = _settled(ctx, tmp_path)
    (secret,) = [s for s in before.secrets if s.owner is None]
    rotated = dataclasses.replace(
        secret, latest_content={"username": DB_USER, "password": "Rotated-Passw0rd-42"}
    )
    state_in = dataclasses.replace(before, secrets=(before.secrets - {secret}) | {rotated})

    state_out = ctx.run(ctx.on.secret_changed(rotated), state_in)

    assert dex_config(ctx, state_out)["storage"]["config"]["password"] == "Rotated-Passw0rd-42"
    assert "Rotated-Passw0rd-42" not in everything_shown(ctx, state_out)


def test_a_non_leader_reads_the_same_database(ctx: testing.Context):
    state_in = make_state(leader=False, secrets=(admin_secret(),))

    state_out = ctx.run(ctx.on.config_changed(), state_in)

    assert dex_config(ctx, state_out)["storage"]["config"]["password"] == DB_PASSWORD
    assert state_out.unit_status == testing.ActiveStatus(ISSUER)


# --- bad answers -----------------------------------------------------------------------


def _answer(**response: object) -> dict[str, str]:
    base = {"resource": "dex", "request-id": "req-dex", "salt": "s" * 16}
    return {"version": "v1", "requests": json.dumps([{**base, **response}])}


@pytest.mark.parametrize(
    ("remote_app_data", "why"),
    [
        ({"version": "v1", "requests": "not json"}, "its answer does not parse"),
        ({"version": "v1", "requests": '{"resource": "dex"}'}, "is not a list"),
        (
            _answer(endpoints="mysql-0:99999", **{"secret-user": "secret:abc"}),
            "has an invalid port",
        ),
        (_answer(endpoints="user@evil/:3306", **{"secret-user": "secret:abc"}), "not host:port"),
        (
            _answer(endpoints="mysql-0:3306", **{"secret-user": "secret:d0ub00gone0secret00"}),
            "credentials secret cannot be read",
        ),
        (_answer(endpoints=["mysql-0:3306"], **{"secret-user": "secret:x"}), "not a string"),
    ],
)
def test_a_bad_answer_blocks_and_changes_nothing(
    ctx: testing.Context, tmp_path: Path, remote_app_data: dict[str, str], why: str
):
    before = _settled(ctx, tmp_path)
    text_before = config_text(ctx, before)
    relation = testing.Relation(
        "relational-db",
        interface="mysql_client",
        remote_app_name="mysql",
        local_app_data=our_request(),
        remote_app_data=remote_app_data,
    )
    state_in = _with_database(before, relation)

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state_in)

    assert isinstance(state_out.unit_status, testing.BlockedStatus)
    assert state_out.unit_status.message.startswith("relational-db: mysql: ")
    assert why in state_out.unit_status.message
    assert config_text(ctx, state_out) == text_before
    assert state_out.get_container("dex").plan == before.get_container("dex").plan


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"username": DB_USER}, "lacks a username or password"),
        ({"username": "rel:ation", "password": "pw"}, "holds a username with a colon"),
    ],
)
def test_unusable_credentials_block_and_change_nothing(
    ctx: testing.Context, tmp_path: Path, content: dict[str, str], why: str
):
    before = _settled(ctx, tmp_path)
    text_before = config_text(ctx, before)
    relation, secret = database_relation()
    assert secret is not None
    unusable = dataclasses.replace(secret, tracked_content=content, latest_content=content)
    state_in = _with_database(before, relation, unusable)

    state_out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state_in)

    assert state_out.unit_status == testing.BlockedStatus(
        f"relational-db: mysql: its credentials secret {why}"
    )
    assert config_text(ctx, state_out) == text_before
