"""The users the mysql charm makes for `database` relations: one per relation, none left behind.

The requests are written by `dpcharmlibs-interfaces` itself (the library the
data platform's client charms use), or in its v0 format by our test helper.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, ClassVar

import ops
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)
from ops import testing
from unit.mysql.helpers import commands_run, credentials_secret, mysql_container, sql_sent, storage

from kubeflow_interfaces import mysql_client

CHECKED = "relation-users-checked"


def _peers(**app_data: str) -> testing.PeerRelation:
    return testing.PeerRelation("mysql-peers", local_app_data={"data-unit": "mysql/0", **app_data})


def _state(tmp_path, *relations: testing.RelationBase, **kwargs: Any) -> testing.State:
    container = kwargs.pop("container", None) or mysql_container(tmp_path)
    return testing.State(
        leader=True,
        containers={container},
        storages={storage()},
        secrets=kwargs.pop("secrets", {credentials_secret()}),
        relations=set(relations),
        **kwargs,
    )


def _peer_data(out: testing.State) -> dict[str, str]:
    (peers,) = [r for r in out.relations if r.endpoint == "mysql-peers"]
    return dict(peers.local_app_data)


def _replace_relation(state: testing.State, relation: testing.RelationBase) -> testing.State:
    others = {r for r in state.relations if r.id != relation.id}
    return dataclasses.replace(state, relations={*others, relation})


def _passwords(sql: str) -> set[str]:
    return set(re.findall(r"IDENTIFIED BY '([^']*)'", sql))


# --- users of removed relations ------------------------------------------------------------


def test_user_of_a_relation_broken_while_mysqld_was_down_is_dropped_later(ctx, tmp_path):
    kfp = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    peers = _peers(**{CHECKED: json.dumps([kfp.id])})
    served = ctx.run(ctx.on.relation_changed(kfp), _state(tmp_path, kfp, peers))
    answer = json.loads(served.get_relation(kfp.id).local_app_data["requests"])[0]

    # relation-broken comes while mysqld is down: no SQL can run.
    down = dataclasses.replace(served, containers={mysql_container(tmp_path, ready=False)})
    ctx.exec_history.clear()
    broken = ctx.run(ctx.on.relation_broken(served.get_relation(kfp.id)), down)
    assert [c for c in commands_run(ctx) if c[0] == "mysql"] == []
    # The credentials secret goes at once all the same; the record keeps the id.
    assert answer["secret-user"] not in {s.id for s in broken.secrets}
    assert json.loads(_peer_data(broken)[CHECKED]) == [kfp.id]

    # mysqld is back: the next update-status drops the user, and says so in the record.
    gone = dataclasses.replace(
        broken,
        relations={r for r in broken.relations if r.id != kfp.id},
        containers={mysql_container(tmp_path, mysql_stdout=f"relation-{kfp.id}\n")},
    )
    ctx.exec_history.clear()
    later = ctx.run(ctx.on.update_status(), gone)
    sql = sql_sent(ctx)
    assert f"DROP USER IF EXISTS 'relation-{kfp.id}'@'%'" in sql
    assert "DROP DATABASE" not in sql
    assert json.loads(_peer_data(later)[CHECKED]) == []

    # Settled: the next update-status asks the server nothing.
    ctx.exec_history.clear()
    again = ctx.run(ctx.on.update_status(), later)
    assert commands_run(ctx) == []
    assert _peer_data(again) == _peer_data(later)


def test_settled_update_status_asks_the_server_nothing(ctx, tmp_path):
    kfp = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    served = ctx.run(ctx.on.relation_changed(kfp), _state(tmp_path, kfp, _peers()))
    assert json.loads(_peer_data(served)[CHECKED]) == [kfp.id]
    ctx.exec_history.clear()
    out = ctx.run(ctx.on.update_status(), served)
    assert commands_run(ctx) == []
    assert _peer_data(out) == _peer_data(served)


def test_a_new_relation_only_adds_its_id(ctx, tmp_path):
    kfp = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    peers = _peers(**{CHECKED: "[]"})
    out = ctx.run(ctx.on.relation_changed(kfp), _state(tmp_path, kfp, peers))
    assert "FROM mysql.user" not in sql_sent(ctx)  # nothing can be stale
    assert "CREATE USER" in sql_sent(ctx)
    assert json.loads(_peer_data(out)[CHECKED]) == [kfp.id]


def test_without_a_record_the_server_is_asked_once(ctx, tmp_path):
    # Say the charm was upgraded from a version that kept no record.
    kfp = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    served = ctx.run(ctx.on.relation_changed(kfp), _state(tmp_path, kfp))
    stale = mysql_container(tmp_path, mysql_stdout=f"relation-{kfp.id}\nrelation-40\n")
    state = dataclasses.replace(
        served, relations={*served.relations, _peers()}, containers={stale}
    )
    ctx.exec_history.clear()
    out = ctx.run(ctx.on.update_status(), state)
    sql = sql_sent(ctx)
    assert "DROP USER IF EXISTS 'relation-40'@'%'" in sql
    assert f"DROP USER IF EXISTS 'relation-{kfp.id}'" not in sql
    assert json.loads(_peer_data(out)[CHECKED]) == [kfp.id]


def test_only_the_charms_own_relation_users_are_dropped(ctx, tmp_path):
    kfp = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    listed = "\n".join(
        [f"relation-{kfp.id}", "relation-12", "relation-x", "relation-007", "relation-", "root"]
    )
    container = mysql_container(tmp_path, mysql_stdout=listed + "\n")
    peers = _peers(**{CHECKED: json.dumps([kfp.id, 12])})
    out = ctx.run(ctx.on.update_status(), _state(tmp_path, kfp, peers, container=container))
    drops = re.findall(r"DROP USER IF EXISTS '([^']*)'@'([^']*)'", sql_sent(ctx))
    assert drops == [("relation-12", "%")]
    assert json.loads(_peer_data(out)[CHECKED]) == [kfp.id]


def test_an_unreadable_record_is_treated_as_none(ctx, tmp_path):
    container = mysql_container(tmp_path, mysql_stdout="relation-3\n")
    peers = _peers(**{CHECKED: "{not json"})
    out = ctx.run(ctx.on.update_status(), _state(tmp_path, peers, container=container))
    assert "DROP USER IF EXISTS 'relation-3'@'%'" in sql_sent(ctx)
    assert json.loads(_peer_data(out)[CHECKED]) == []


# --- one user and one password per relation ----------------------------------------------

REQUIRER_META = {
    "name": "kfp-db",
    "requires": {"relational-db": {"interface": "mysql_client", "limit": 1}},
}


class DatabaseClient(ops.CharmBase):
    """A client charm asking for `RESOURCES` through dpcharmlibs-interfaces."""

    RESOURCES: ClassVar[list[str]] = ["kfp"]

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.db = ResourceRequirerEventHandler(
            self,
            "relational-db",
            [RequirerCommonModel(resource=r) for r in self.RESOURCES],
            ResourceProviderModel,
        )


def _library_request(*resources: str) -> dict[str, str]:
    """The requirer databag the library writes on relation-created for these resources."""
    DatabaseClient.RESOURCES = list(resources)
    client = testing.Context(DatabaseClient, meta=REQUIRER_META)
    theirs = testing.Relation("relational-db", remote_app_name="mysql")
    out = client.run(
        client.on.relation_created(theirs), testing.State(leader=True, relations={theirs})
    )
    return dict(out.get_relation(theirs.id).local_app_data)


def _user_secrets(out: testing.State, relation_id: int) -> list[dict[str, str]]:
    return [dict(s.latest_content or {}) for s in out.secrets if s.remote_grants.get(relation_id)]


def test_a_second_database_on_a_relation_keeps_its_user_and_password(ctx, tmp_path):
    one = _library_request("kfp")
    two = _library_request("kfp", "mlmd")
    assert [r["resource"] for r in json.loads(two["requests"])] == ["kfp", "mlmd"]

    relation = testing.Relation(
        "database", interface="mysql_client", remote_app_name="kfp-db", remote_app_data=one
    )
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relation, _peers()))
    (before,) = _user_secrets(first, relation.id)
    user = f"relation-{relation.id}"
    assert before["username"] == user

    asked = dataclasses.replace(first.get_relation(relation.id), remote_app_data=two)
    state = _replace_relation(first, asked)
    ctx.exec_history.clear()
    second = ctx.run(ctx.on.relation_changed(asked), state)

    sql = sql_sent(ctx)
    assert f"GRANT ALL PRIVILEGES ON `mlmd`.* TO '{user}'@'%'" in sql
    assert _passwords(sql) == {before["password"]}  # the user's password is not changed
    contents = _user_secrets(second, relation.id)
    assert len(contents) == 2  # one answer per database, both the same account
    assert all(c == before for c in contents)
    answers = json.loads(second.get_relation(relation.id).local_app_data["requests"])
    assert sorted(a["resource"] for a in answers) == ["kfp", "mlmd"]


def test_a_v0_requirer_changing_its_database_keeps_its_password(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(
        database="first", remote_app_name="legacy", format_version="v0"
    )
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relation, _peers()))
    (before,) = _user_secrets(first, relation.id)

    # v0 requirers name the database in their `database` field (data_interfaces v0).
    changed = dataclasses.replace(
        first.get_relation(relation.id),
        remote_app_data={**relation.remote_app_data, "database": "second"},
    )
    ctx.exec_history.clear()
    out = ctx.run(
        ctx.on.relation_changed(changed),
        _replace_relation(first, changed),
    )
    sql = sql_sent(ctx)
    assert "CREATE DATABASE IF NOT EXISTS `second`" in sql
    assert _passwords(sql) == {before["password"]}
    # One secret, the one the answer names, with the same credentials.
    data = out.get_relation(relation.id).local_app_data
    assert [s.id for s in out.secrets if s.remote_grants.get(relation.id)] == [data["secret-user"]]
    assert _user_secrets(out, relation.id) == [before]
    assert out.get_relation(relation.id).local_app_data["database"] == "second"


def test_a_refused_second_database_changes_nothing(ctx, tmp_path):
    one = _library_request("kfp")
    bad = _library_request("kfp", "mysql")
    relation = testing.Relation(
        "database", interface="mysql_client", remote_app_name="kfp-db", remote_app_data=one
    )
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relation, _peers()))
    asked = dataclasses.replace(first.get_relation(relation.id), remote_app_data=bad)
    ctx.exec_history.clear()
    out = ctx.run(
        ctx.on.relation_changed(asked),
        _replace_relation(first, asked),
    )
    assert "IDENTIFIED BY" not in sql_sent(ctx)
    assert "GRANT" not in sql_sent(ctx)
    assert (
        out.get_relation(relation.id).local_app_data
        == first.get_relation(relation.id).local_app_data
    )
    assert out.unit_status == testing.BlockedStatus("kfp-db asked for a refused database: 'mysql'")


# --- grants on databases a relation no longer asks for ------------------------------------

GRANTS = "relation-grants-checked"


def _grants_listed(relation_id: int, *databases: str) -> str:
    """What the server answers about the relation user's database grants (mysql.db rows)."""
    return "".join(f"relation-{relation_id}\t{d}\n" for d in databases)


def test_a_v0_rename_revokes_the_old_database_and_keeps_it(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(
        database="first", remote_app_name="legacy", format_version="v0"
    )
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relation, _peers()))
    recorded = _peer_data(first)[GRANTS]
    changed = dataclasses.replace(
        first.get_relation(relation.id),
        remote_app_data={**relation.remote_app_data, "database": "second"},
    )
    # The grant table shows both databases (`first_db`-style names come back escaped).
    grants = mysql_container(
        tmp_path, mysql_stdout=_grants_listed(relation.id, "first", "second", "other")
    )
    state = dataclasses.replace(_replace_relation(first, changed), containers={grants})
    ctx.exec_history.clear()
    out = ctx.run(ctx.on.relation_changed(changed), state)
    sql = sql_sent(ctx)
    user = f"'relation-{relation.id}'@'%'"
    assert f"REVOKE ALL PRIVILEGES ON `first`.* FROM {user};" in sql
    assert f"REVOKE ALL PRIVILEGES ON `other`.* FROM {user};" in sql
    assert "ON `second`.* FROM" not in sql
    assert "DROP DATABASE" not in sql
    assert _peer_data(out)[GRANTS] != recorded

    # Settled: nothing asked of the server, nothing written.
    ctx.exec_history.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert commands_run(ctx) == []
    assert _peer_data(again) == _peer_data(out)


def test_a_dropped_v1_request_is_revoked_when_mysqld_is_back(ctx, tmp_path):
    two = _library_request("kfp", "mlmd")
    one = _library_request("kfp")
    relation = testing.Relation(
        "database", interface="mysql_client", remote_app_name="kfp-db", remote_app_data=two
    )
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relation, _peers()))
    recorded = _peer_data(first)[GRANTS]

    # The requirer drops `mlmd` while mysqld is down: no SQL, the record stays.
    asked = dataclasses.replace(first.get_relation(relation.id), remote_app_data=one)
    down = dataclasses.replace(
        _replace_relation(first, asked), containers={mysql_container(tmp_path, ready=False)}
    )
    ctx.exec_history.clear()
    waiting = ctx.run(ctx.on.relation_changed(asked), down)
    assert [c for c in commands_run(ctx) if c[0] == "mysql"] == []
    assert _peer_data(waiting)[GRANTS] == recorded

    # mysqld is back: the next update-status revokes `mlmd` (with an escaped `_`
    # name left alone when asked for) and records the new digest.
    up = mysql_container(tmp_path, mysql_stdout=_grants_listed(relation.id, "kfp", "mlmd"))
    ctx.exec_history.clear()
    later = ctx.run(ctx.on.update_status(), dataclasses.replace(waiting, containers={up}))
    sql = sql_sent(ctx)
    assert f"REVOKE ALL PRIVILEGES ON `mlmd`.* FROM 'relation-{relation.id}'@'%';" in sql
    assert "ON `kfp`.* FROM" not in sql
    assert "DROP" not in sql
    assert _peer_data(later)[GRANTS] != recorded


def test_grants_of_other_accounts_and_unreadable_requests_are_left_alone(ctx, tmp_path):
    kfp = mysql_client.relation_for_provider(database="kfp_db", remote_app_name="kfp")
    broken = testing.Relation(
        "database",
        interface="mysql_client",
        remote_app_name="odd",
        remote_app_data={"version": "v1", "requests": "{not json"},
    )
    listed = (
        _grants_listed(kfp.id, "kfp\\\\_db")  # as mysql --batch prints `kfp\_db`
        + _grants_listed(broken.id, "odd")
        + "relation-77\tgone\nrelation-x\tkfp\napp\tkfp\n"
    )
    container = mysql_container(tmp_path, mysql_stdout=listed)
    ctx.run(ctx.on.update_status(), _state(tmp_path, kfp, broken, _peers(), container=container))
    assert "REVOKE" not in sql_sent(ctx)
