"""The mysql charm: reconcile, status, relations, scale, and the password actions."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.mysql.helpers import (
    CREDENTIALS,
    commands_run,
    credentials_secret,
    mysql_container,
    sql_sent,
    storage,
)

from kubeflow_interfaces import mysql_client, s3


def _state(tmp_path, **kwargs) -> testing.State:
    container = kwargs.pop("container", None) or mysql_container(tmp_path)
    defaults = {
        "leader": True,
        "containers": {container},
        "storages": {storage()},
        "secrets": {credentials_secret()},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def _file(ctx, out, path: str) -> str:
    root = out.get_container("mysql").get_filesystem(ctx)
    return (root / path.lstrip("/")).read_text()


# --- first start, config ---------------------------------------------------------


def test_first_start_initialises_and_starts_mysqld(ctx, tmp_path):
    container = mysql_container(tmp_path, initialised=False, running=False)
    peers = testing.PeerRelation("mysql-peers")
    state = testing.State(
        leader=True, containers={container}, storages={storage()}, relations={peers}
    )
    out = ctx.run(ctx.on.pebble_ready(container), state)
    assert out.get_relation(peers.id).local_app_data["data-unit"] == "mysql/0"

    (secret,) = [s for s in out.secrets if s.label == "admin-credentials"]
    assert set(secret.tracked_content) == {"root-password", "admin-password"}
    assert all(len(v) >= 32 for v in secret.tracked_content.values())
    init = [c for c in commands_run(ctx) if c[0] == "mysqld"]
    assert init and "--initialize-insecure" in init[0]
    # The init file (it holds the passwords) is gone afterwards.
    root = out.get_container("mysql").get_filesystem(ctx)
    assert not (root / "var/run/mysqld/charm-init.sql").exists()

    plan = out.get_container("mysql").plan
    assert plan.services["mysqld"].command.startswith("mysqld --defaults-file=")
    assert out.get_container("mysql").service_statuses["mysqld"] == ops.pebble.ServiceStatus.ACTIVE
    config = _file(ctx, out, "/etc/mysql/conf.d/zz-charm.cnf")
    assert f"innodb_buffer_pool_size = {256 << 20}" in config
    assert "max_connections = 151" in config
    options = _file(ctx, out, "/etc/mysql/charm-client.cnf")
    assert secret.tracked_content["admin-password"] in options
    assert (root / "etc/mysql/charm-client.cnf").stat().st_mode & 0o777 == 0o600
    assert testing.TCPPort(3306) in out.opened_ports


def test_existing_data_is_not_initialised_again(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), _state(tmp_path))
    assert not [c for c in commands_run(ctx) if c[0] == "mysqld"]
    assert out.unit_status == testing.ActiveStatus("primary")
    assert out.app_status == testing.ActiveStatus()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"buffer-pool-size": "lots"}, "buffer-pool-size"),
        ({"buffer-pool-size": "1M"}, "buffer-pool-size: must be at least 5M"),
        ({"buffer-pool-size": "-5G"}, "buffer-pool-size"),
        # MySQL 8.4 takes at most 2^64-1 bytes on 64-bit systems (the reference
        # manual's innodb_buffer_pool_size entry); these are beyond it.
        ({"buffer-pool-size": "99999999999G"}, "buffer-pool-size: '99999999999G' is more than"),
        ({"buffer-pool-size": "17179869184G"}, "buffer-pool-size: '17179869184G' is more than"),
        ({"buffer-pool-size": "18446744073709551616"}, "(18446744073709551615 bytes, 2^64-1)"),
        ({"buffer-pool-size": "1" + "0" * 5000}, f"buffer-pool-size: '1{'0' * 31}...' is not"),
        ({"buffer-pool-size": "\u0665G"}, "is not a size like 512M or 2G"),
        ({"buffer-pool-size": "2G 2G"}, "is not a size like 512M or 2G"),
        ({"max-connections": 5}, "max-connections: must be between 10 and 100000"),
        ({"max-connections": 1_000_000}, "max-connections"),
    ],
)
def test_invalid_config_blocks_and_leaves_mysqld_alone(ctx, tmp_path, config, message):
    container = mysql_container(tmp_path, initialised=False, running=False)
    state = _state(tmp_path, container=container, config=config)
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    assert message in out.unit_status.message
    assert out.unit_status.message.startswith("invalid config: ")
    assert out.get_container("mysql").plan.services == {}
    assert commands_run(ctx) == []


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("8388608", 8 << 20),
        ("64GiB", 64 << 30),
        ("17179869183G", 17179869183 << 30),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_valid_config_reaches_mysqld(ctx, tmp_path, size, expected):
    out = ctx.run(
        ctx.on.config_changed(),
        _state(tmp_path, config={"buffer-pool-size": size, "max-connections": 500}),
    )
    config = _file(ctx, out, "/etc/mysql/conf.d/zz-charm.cnf")
    assert f"innodb_buffer_pool_size = {expected}" in config
    assert "max_connections = 500" in config
    assert out.unit_status == testing.ActiveStatus("primary")


def test_reconcile_with_nothing_to_change_writes_nothing(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    first = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert len(stamps) >= 2  # the config and client option files
    ctx.exec_history.clear()

    again = ctx.run(ctx.on.update_status(), first)
    assert commands_run(ctx) == []  # no SQL, no dump, nothing
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps
    assert (
        again.get_relation(relation.id).local_app_data
        == first.get_relation(relation.id).local_app_data
    )
    assert (
        again.get_container("mysql").plan.to_dict() == first.get_container("mysql").plan.to_dict()
    )
    assert {s.id: s.latest_content for s in again.secrets} == {
        s.id: s.latest_content for s in first.secrets
    }


# --- waiting states ----------------------------------------------------------------


def test_container_not_reachable_waits(ctx, tmp_path):
    container = mysql_container(tmp_path, can_connect=False)
    out = ctx.run(ctx.on.update_status(), _state(tmp_path, container=container))
    assert out.unit_status == testing.WaitingStatus("waiting for the mysql container")


def test_storage_missing_waits(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), _state(tmp_path, storages=set()))
    assert out.unit_status == testing.WaitingStatus("waiting for the database storage")


def test_mysqld_not_ready_waits_and_serves_no_relation(ctx, tmp_path):
    container = mysql_container(tmp_path, ready=False)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    state = _state(tmp_path, container=container, relations={relation})
    out = ctx.run(ctx.on.relation_changed(relation), state)
    assert out.unit_status == testing.WaitingStatus("mysqld is not ready yet")
    assert out.get_relation(relation.id).local_app_data == {}
    assert "CREATE DATABASE" not in sql_sent(ctx)


def test_relation_unanswered_while_starting_is_served_on_update_status(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    starting = _state(tmp_path, container=mysql_container(tmp_path, ready=False))
    out = ctx.run(
        ctx.on.relation_changed(relation), dataclasses.replace(starting, relations={relation})
    )
    assert out.get_relation(relation.id).local_app_data == {}
    ready = dataclasses.replace(out, containers={mysql_container(tmp_path)})
    out = ctx.run(ctx.on.update_status(), ready)
    assert "secret-user" in json.loads(out.get_relation(relation.id).local_app_data["requests"])[0]


# --- scale -------------------------------------------------------------------------------


def test_second_unit_keeps_mysqld_stopped(ctx, tmp_path):
    state = _state(tmp_path, leader=False, planned_units=2)
    out = ctx.run(ctx.on.update_status(), state)
    statuses = out.get_container("mysql").service_statuses
    assert statuses["mysqld"] == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status == testing.BlockedStatus(
        "replication is not supported yet: this unit keeps mysqld stopped"
    )
    assert commands_run(ctx) == []


def test_leader_reports_scale_limit_on_the_app(ctx, tmp_path):
    out = ctx.run(ctx.on.update_status(), _state(tmp_path, planned_units=2))
    assert out.app_status == testing.ActiveStatus(
        "one unit serves; replication is not supported yet"
    )


# --- the database relation ---------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v0"])
def test_related_app_gets_its_own_database_and_user(ctx, tmp_path, version):
    relation = mysql_client.relation_for_provider(
        database="kfp", remote_app_name="kfp", format_version=version
    )
    out = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))

    user = f"'relation-{relation.id}'@'%'"
    sql = sql_sent(ctx)
    assert "CREATE DATABASE IF NOT EXISTS `kfp`" in sql
    assert f"CREATE USER IF NOT EXISTS {user}" in sql
    assert f"GRANT ALL PRIVILEGES ON `kfp`.* TO {user}" in sql

    data = out.get_relation(relation.id).local_app_data
    answer = data if version == "v0" else json.loads(data["requests"])[0]
    assert answer["endpoints"] == (
        f"mysql-0.mysql-endpoints.{out.model.name}.svc.cluster.local:3306"
    )
    assert answer["version"] == "8.4.3"
    (secret,) = [s for s in out.secrets if s.id == answer["secret-user"]]
    content = secret.latest_content
    assert content["username"] == f"relation-{relation.id}"
    assert content["password"] not in json.dumps(dict(data))
    assert content["password"] in sql  # the user was made with that password
    assert out.unit_status == testing.ActiveStatus("primary")


@pytest.mark.parametrize("name", ["mysql", "sys", "information_schema", "bad name!", "x" * 65])
def test_refused_database_names_block_and_create_nothing(ctx, tmp_path, name):
    relation = mysql_client.relation_for_provider(database=name, remote_app_name="kfp")
    out = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("kfp asked for a refused database:")
    assert "CREATE" not in sql_sent(ctx)
    assert out.get_relation(relation.id).local_app_data == {}


def test_malformed_request_blocks(ctx, tmp_path):
    relation = testing.Relation(
        "database",
        remote_app_name="kfp",
        remote_app_data={"version": "v1", "requests": "{not json"},
    )
    out = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))
    assert out.unit_status == testing.BlockedStatus("unreadable database request from kfp")
    assert "CREATE" not in sql_sent(ctx)


def test_relation_broken_drops_the_user_and_keeps_the_data(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    # The server lists the relation's user among the relation users.
    container = mysql_container(tmp_path, mysql_stdout=f"relation-{relation.id}\n")
    state = _state(tmp_path, container=container, relations={relation})
    out = ctx.run(ctx.on.relation_broken(relation), state)
    sql = sql_sent(ctx)
    assert f"DROP USER IF EXISTS 'relation-{relation.id}'@'%'" in sql
    assert "DROP DATABASE" not in sql
    assert out.unit_status == testing.ActiveStatus("primary")


def test_relation_broken_removes_the_credentials_secret(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    served = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))
    answer = json.loads(served.get_relation(relation.id).local_app_data["requests"])[0]
    assert answer["secret-user"] in {s.id for s in served.secrets}
    out = ctx.run(ctx.on.relation_broken(served.get_relation(relation.id)), served)
    assert answer["secret-user"] not in {s.id for s in out.secrets}
    assert any(s.label == "admin-credentials" for s in out.secrets)


def test_stale_relation_users_are_dropped(ctx, tmp_path):
    # Say mysqld was down when a relation went away: the next relation event drops its user.
    container = mysql_container(tmp_path, mysql_stdout="relation-97\n")
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    ctx.run(
        ctx.on.relation_changed(relation),
        _state(tmp_path, container=container, relations={relation}),
    )
    assert "DROP USER IF EXISTS 'relation-97'@'%'" in sql_sent(ctx)


def test_non_leader_serves_no_relation(ctx, tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    out = ctx.run(
        ctx.on.relation_changed(relation), _state(tmp_path, leader=False, relations={relation})
    )
    assert out.get_relation(relation.id).local_app_data == {}
    assert commands_run(ctx) == []


# --- the s3-parameters relation ------------------------------------------------------


def test_s3_relation_gets_a_bucket_request(ctx, tmp_path):
    relation = testing.Relation("s3-parameters", remote_app_name="minio")
    out = ctx.run(ctx.on.relation_created(relation), _state(tmp_path, relations={relation}))
    data = out.get_relation(relation.id).local_app_data
    assert data["bucket"] == "mysql-backups"
    assert json.loads(data["requested-secrets"]) == ["access-key", "secret-key"]


def test_malformed_s3_data_blocks(ctx, tmp_path):
    relation = testing.Relation(
        "s3-parameters",
        remote_app_name="minio",
        remote_app_data={"bucket": "b", "secret-extra": "secret:missing"},
    )
    out = ctx.run(ctx.on.relation_changed(relation), _state(tmp_path, relations={relation}))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("s3-parameters: ")


# --- passwords -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "key"), [("root", "root-password"), ("charm-admin", "admin-password")]
)
def test_get_password(ctx, tmp_path, username, key):
    ctx.run(ctx.on.action("get-password", params={"username": username}), _state(tmp_path))
    assert ctx.action_results == {"username": username, "password": CREDENTIALS[key]}


def test_get_password_defaults_to_root(ctx, tmp_path):
    ctx.run(ctx.on.action("get-password"), _state(tmp_path))
    assert ctx.action_results["password"] == CREDENTIALS["root-password"]


def test_get_password_fails_on_non_leader(ctx, tmp_path):
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(
            ctx.on.action("get-password", params={"username": "root"}),
            _state(tmp_path, leader=False),
        )


def test_set_password_changes_server_and_secret_together(ctx, tmp_path):
    container = mysql_container(tmp_path, mysql_stdout="localhost\n")
    state = _state(tmp_path, container=container)
    params = {"username": "root", "password": "new-root-password"}
    out = ctx.run(ctx.on.action("set-password", params=params), state)
    assert "ALTER USER 'root'@'localhost' IDENTIFIED BY 'new-root-password'" in sql_sent(ctx)
    (secret,) = [s for s in out.secrets if s.label == "admin-credentials"]
    assert secret.latest_content["root-password"] == "new-root-password"
    assert secret.latest_content["admin-password"] == CREDENTIALS["admin-password"]
    assert "new-root-password" not in json.dumps(ctx.action_results)


def test_set_password_random_for_admin_rewrites_client_options(ctx, tmp_path):
    container = mysql_container(tmp_path, mysql_stdout="localhost\n")
    out = ctx.run(
        ctx.on.action("set-password", params={"username": "charm-admin"}),
        _state(tmp_path, container=container),
    )
    (secret,) = [s for s in out.secrets if s.label == "admin-credentials"]
    new = secret.latest_content["admin-password"]
    assert new != CREDENTIALS["admin-password"] and len(new) == 32
    assert new in _file(ctx, out, "/etc/mysql/charm-client.cnf")


@pytest.mark.parametrize(
    ("params", "state_kwargs", "message"),
    [
        ({"username": "root", "password": "short"}, {}, "8 to 64 characters"),
        ({"username": "nobody"}, {}, "username must be one of"),
        ({"username": "root"}, {"leader": False}, "leader"),
        ({"username": "root"}, {"secrets": set()}, "not been set up"),
    ],
)
def test_set_password_failures_change_nothing(ctx, tmp_path, params, state_kwargs, message):
    state = _state(tmp_path, **state_kwargs)
    with pytest.raises(testing.ActionFailed, match=message):
        ctx.run(ctx.on.action("set-password", params=params), state)
    assert "ALTER USER" not in sql_sent(ctx)


def test_set_password_fails_when_mysqld_is_down(ctx, tmp_path):
    state = _state(tmp_path, container=mysql_container(tmp_path, running=False))
    with pytest.raises(testing.ActionFailed, match="mysqld is not up"):
        ctx.run(ctx.on.action("set-password", params={"username": "root"}), state)


def test_set_password_reports_a_failing_server(ctx, tmp_path):
    container = dataclasses.replace(
        mysql_container(tmp_path),
        execs={
            testing.Exec(["mysql"], return_code=1, stdout=b"", stderr=b"ERROR 1045: Access denied")
        },
    )
    with pytest.raises(testing.ActionFailed, match="Access denied"):
        ctx.run(
            ctx.on.action("set-password", params={"username": "root", "password": "abcdefgh12"}),
            _state(tmp_path, container=container),
        )


def test_leader_removes_a_revision_no_unit_reads_any_more(ctx, tmp_path):
    container = mysql_container(tmp_path, mysql_stdout="localhost\n")
    params = {"username": "root", "password": "new-root-password"}
    rotated = ctx.run(
        ctx.on.action("set-password", params=params), _state(tmp_path, container=container)
    )
    settled = ctx.run(ctx.on.update_status(), rotated)  # the leader reads the latest
    (secret,) = [s for s in settled.secrets if s.label == "admin-credentials"]

    out = ctx.run(ctx.on.secret_remove(secret, revision=1), settled)

    assert ctx.removed_secret_revisions == [1]
    assert out.unit_status == settled.unit_status == testing.ActiveStatus("primary")


def test_rotated_s3_credentials_are_picked_up(ctx, tmp_path):
    relation, secret = s3.relation_for_requirer("s3-parameters", access_key="old-access-key")
    rotated = dataclasses.replace(
        secret,
        latest_content={"access-key": "new-access-key", "secret-key": "new-secret-value"},
    )
    state = _state(tmp_path, relations={relation}, secrets={credentials_secret(), rotated})
    out = ctx.run(ctx.on.secret_changed(rotated), state)
    (seen,) = [s for s in out.secrets if s.id == rotated.id]
    assert seen.tracked_content["access-key"] == "new-access-key"  # read with refresh
    assert out.unit_status == testing.ActiveStatus("primary")
