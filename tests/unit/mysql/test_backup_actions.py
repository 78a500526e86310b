"""The backup actions of the mysql charm, against a real S3 server on localhost."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import uuid

import boto3
import pytest
from ops import testing
from unit.mysql.helpers import (
    commands_run,
    credentials_secret,
    mysql_container,
    sql_sent,
    storage,
)

from kubeflow_interfaces import s3

DUMP = (
    "-- MySQL dump 10.13\n"
    "CREATE DATABASE IF NOT EXISTS `kfp`;\n"
    "USE `kfp`;\n"
    "CREATE TABLE `runs` (`id` int PRIMARY KEY);\n"
    "INSERT INTO `runs` VALUES (1),(2),(3);\n"
    "-- Dump completed on 2026-11-28  1:02:03\n"
)


@pytest.fixture
def bucket(s3_endpoint) -> str:
    name = f"backups-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="access",
        aws_secret_access_key="secret-value",
    )
    client.create_bucket(Bucket=name)
    return name


def _state(tmp_path, s3_endpoint, bucket, **kwargs) -> testing.State:
    relation, secret = s3.relation_for_requirer(
        "s3-parameters", endpoint_url=s3_endpoint, bucket=bucket, path="team-a"
    )
    container = kwargs.pop("container", None) or mysql_container(
        tmp_path, mysql_stdout="kfp\n", dump_stdout=DUMP
    )
    defaults = {
        "leader": True,
        "containers": {container},
        "storages": {storage()},
        "secrets": {credentials_secret(), secret},
        "relations": {relation},
    }
    defaults.update(kwargs)
    return testing.State(**defaults)


def _objects(s3_endpoint: str, bucket: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="access",
        aws_secret_access_key="secret-value",
    )
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _key_secret(out: testing.State) -> testing.Secret:
    (secret,) = [s for s in out.secrets if s.label == "backup-key"]
    return secret


def _with_secrets(state: testing.State, out: testing.State) -> testing.State:
    """The input state with the secrets the last run left (the backup key among them)."""
    return dataclasses.replace(state, secrets=out.secrets)


def _client(s3_endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="access",
        aws_secret_access_key="secret-value",
    )


def test_backup_list_restore_round_trip(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    assert int(ctx.action_results["size"]) > 0
    state = _with_secrets(state, out)

    keys = _objects(s3_endpoint, bucket)
    prefix = f"team-a/mysql-backups/{state.model.name}/mysql/{backup_id}/"
    assert sorted(keys) == sorted(
        prefix + name for name in ("backup.json", "dump.sql.gz", "dump.sql.gz.sha256")
    )

    ctx.run(ctx.on.action("list-backups"), state)
    assert ctx.action_results["count"] == 1
    item = ctx.action_results["items"]["backup-0"]
    assert item["id"] == backup_id
    assert item["status"] == "completed"
    assert item["signed"] == "yes"
    assert backup_id in ctx.action_results["backups"]

    ctx.exec_history.clear()
    ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), state)
    assert ctx.action_results["backup-id"] == backup_id
    assert ctx.action_results["databases"] == "kfp"
    sql = sql_sent(ctx)
    assert "INSERT INTO `runs` VALUES (1),(2),(3);" in sql
    # The dump ran as a restore account with rights on its databases only,
    # made before and dropped after.
    restore = [
        c for c in commands_run(ctx) if "--defaults-extra-file=/etc/mysql/charm-restore.cnf" in c
    ]
    assert len(restore) == 1
    account = "'charm-restore'@'localhost'"
    assert f"CREATE USER {account} IDENTIFIED BY" in sql
    assert f"GRANT ALL PRIVILEGES ON `kfp`.* TO {account};" in sql
    assert f"GRANT SET_ANY_DEFINER, ALLOW_NONEXISTENT_DEFINER ON *.* TO {account};" in sql
    assert "GRANT OPTION" not in sql
    assert sql.rstrip().endswith(f"DROP USER IF EXISTS {account};")


def test_first_backup_makes_the_key_in_an_app_secret_once(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    secret = _key_secret(out)
    assert secret.owner == "app"
    key = secret.tracked_content["backup-key"]
    assert len(bytes.fromhex(key)) == 32
    for relation in out.relations:
        assert key not in str(relation.local_app_data) + str(relation.local_unit_data)

    again = ctx.run(ctx.on.action("create-backup"), _with_secrets(state, out))
    assert _key_secret(again).tracked_content == {"backup-key": key}
    assert len([s for s in again.secrets if s.label == "backup-key"]) == 1


def test_restore_without_a_key_fails_and_touches_nothing(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    ctx.exec_history.clear()
    # The key's secret is gone (say a new deployment reads an old bucket).
    with pytest.raises(testing.ActionFailed, match="holds no backup key yet and trusts none"):
        ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), state)
    assert sql_sent(ctx) == ""


def test_restore_with_another_key_is_refused(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    other = testing.Secret(
        tracked_content={"backup-key": "ab" * 32}, owner="app", label="backup-key"
    )
    ctx.exec_history.clear()
    with pytest.raises(testing.ActionFailed, match="signed with another key"):
        ctx.run(
            ctx.on.action("restore", params={"backup-id": backup_id}),
            dataclasses.replace(state, secrets={*state.secrets, other}),
        )
    assert sql_sent(ctx) == ""


def test_unusable_key_secret_fails_clearly(ctx, tmp_path, s3_endpoint, bucket):
    broken = testing.Secret(
        tracked_content={"backup-key": "not-hex"}, owner="app", label="backup-key"
    )
    state = _state(tmp_path, s3_endpoint, bucket)
    state = dataclasses.replace(state, secrets={*state.secrets, broken})
    with pytest.raises(testing.ActionFailed, match="the backup-key secret is unusable"):
        ctx.run(ctx.on.action("create-backup"), state)
    assert _objects(s3_endpoint, bucket) == []


def _forge(s3_endpoint: str, bucket: str, prefix: str, sql: bytes, *, keep_mac: bool) -> None:
    """Rewrite dump, checksum and metadata so that they agree with each other."""
    client = _client(s3_endpoint)
    dump = gzip.compress(sql)
    digest = hashlib.sha256(dump).hexdigest()
    client.put_object(Bucket=bucket, Key=prefix + "dump.sql.gz", Body=dump)
    client.put_object(
        Bucket=bucket, Key=prefix + "dump.sql.gz.sha256", Body=f"{digest}  dump.sql.gz\n".encode()
    )
    meta = json.loads(client.get_object(Bucket=bucket, Key=prefix + "backup.json")["Body"].read())
    meta.update(size=len(dump), sha256=digest)
    if not keep_mac:
        for field in ("mac", "authentication", "key_id"):
            meta.pop(field)
    client.put_object(Bucket=bucket, Key=prefix + "backup.json", Body=json.dumps(meta).encode())


FORGED = DUMP.replace("(1),(2),(3)", "(666)").encode()


@pytest.mark.parametrize(
    ("keep_mac", "message"),
    [(True, "does not verify"), (False, "is not authenticated")],
    ids=["forged", "mac-removed"],
)
def test_forged_backup_is_refused_before_the_server_sees_it(
    ctx, tmp_path, s3_endpoint, bucket, keep_mac, message
):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    state = _with_secrets(state, out)
    prefix = f"team-a/mysql-backups/{state.model.name}/mysql/{backup_id}/"
    _forge(s3_endpoint, bucket, prefix, FORGED, keep_mac=keep_mac)

    ctx.exec_history.clear()
    with pytest.raises(testing.ActionFailed, match=message) as failure:
        ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), state)
    assert backup_id in failure.value.message
    assert sql_sent(ctx) == ""
    ctx.run(ctx.on.action("list-backups"), state)
    expected = "yes" if keep_mac else "no"
    assert ctx.action_results["items"]["backup-0"]["signed"] == expected


def _flip_middle_bytes(dump: bytes) -> bytes:
    changed = bytearray(dump)
    middle = len(changed) // 2
    changed[middle : middle + 4] = bytes(b ^ 0xFF for b in changed[middle : middle + 4])
    return bytes(changed)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_flip_middle_bytes, "does not verify: its dump or its metadata changed"),
        (lambda dump: dump[: len(dump) // 2], "is damaged or forged: the dump is"),
    ],
    ids=["bytes-changed", "truncated"],
)
def test_a_dump_changed_in_the_bucket_is_refused_by_restore(
    ctx, tmp_path, s3_endpoint, bucket, damage, message
):
    # Only the dump's bytes change; its checksum file and metadata are as made.
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    state = _with_secrets(state, out)
    key = f"team-a/mysql-backups/{state.model.name}/mysql/{backup_id}/dump.sql.gz"
    client = _client(s3_endpoint)
    dump = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    changed = damage(dump)
    assert changed != dump
    client.put_object(Bucket=bucket, Key=key, Body=changed)

    ctx.exec_history.clear()
    with pytest.raises(testing.ActionFailed, match=message) as failure:
        ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), state)
    assert backup_id in failure.value.message
    assert sql_sent(ctx) == ""  # nothing reached the server, not even the restore account


def test_signed_dump_carrying_grant_is_refused(ctx, tmp_path, s3_endpoint, bucket):
    # A dump of our own server that holds a GRANT (the key signs what mysqldump
    # gave): the scan refuses it, before any account is made.
    dump = DUMP.replace(
        "-- Dump completed", "GRANT ALL PRIVILEGES ON *.* TO 'relation-9'@'%';\n-- Dump completed"
    )
    container = mysql_container(tmp_path, mysql_stdout="kfp\n", dump_stdout=dump)
    state = _state(tmp_path, s3_endpoint, bucket, container=container)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    ctx.exec_history.clear()
    with pytest.raises(testing.ActionFailed, match=r"is refused: the dump holds GRANT"):
        ctx.run(
            ctx.on.action("restore", params={"backup-id": backup_id}), _with_secrets(state, out)
        )
    assert sql_sent(ctx) == ""


def test_backups_newest_first(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    ids = []
    for _ in range(2):
        out = ctx.run(ctx.on.action("create-backup"), state)
        state = _with_secrets(state, out)
        ids.append(ctx.action_results["backup-id"])
    ctx.run(ctx.on.action("list-backups"), state)
    items = ctx.action_results["items"]
    assert [items["backup-0"]["id"], items["backup-1"]["id"]] == sorted(ids, reverse=True)


def test_failed_dump_is_recorded_and_reported(ctx, tmp_path, s3_endpoint, bucket):
    container = dataclasses.replace(
        mysql_container(tmp_path, mysql_stdout="kfp\n"),
        execs={
            testing.Exec(["mysql"], stdout=b"kfp\n", stderr=b""),  # type: ignore[arg-type]
            testing.Exec(
                ["mysqldump"],
                return_code=2,
                stdout=b"-- partial",  # type: ignore[arg-type]
                stderr=b"mysqldump: Got error: 2013: Lost connection",  # type: ignore[arg-type]
            ),
        },
    )
    state = _state(tmp_path, s3_endpoint, bucket, container=container)
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("create-backup"), state)
    assert "Lost connection" in failure.value.message
    ctx.run(ctx.on.action("list-backups"), state)
    assert ctx.action_results["items"]["backup-0"]["status"] == "failed"


def test_restore_of_unknown_backup_fails_and_touches_nothing(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    with pytest.raises(testing.ActionFailed, match="not found"):
        ctx.run(ctx.on.action("restore", params={"backup-id": "2020-01-01T00-00-00Z"}), state)
    assert sql_sent(ctx) == ""


@pytest.mark.parametrize("backup_id", ["../../etc", "latest", "2020-01-01"])
def test_restore_refuses_malformed_ids(ctx, tmp_path, s3_endpoint, bucket, backup_id):
    state = _state(tmp_path, s3_endpoint, bucket)
    with pytest.raises(testing.ActionFailed):
        ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), state)
    assert sql_sent(ctx) == ""


def test_restore_needs_an_id(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    with pytest.raises(testing.ActionFailed, match="backup-id"):
        ctx.run(ctx.on.action("restore", params={"backup-id": "  "}), state)


@pytest.mark.parametrize("action", ["create-backup", "list-backups"])
def test_backup_actions_need_s3(ctx, tmp_path, action):
    state = testing.State(
        leader=True,
        containers={mysql_container(tmp_path)},
        storages={storage()},
        secrets={credentials_secret()},
    )
    with pytest.raises(testing.ActionFailed, match="no S3 storage: integrate s3-parameters"):
        ctx.run(ctx.on.action(action), state)


def test_restore_needs_s3(ctx, tmp_path):
    state = testing.State(
        leader=True,
        containers={mysql_container(tmp_path)},
        storages={storage()},
        secrets={credentials_secret()},
    )
    with pytest.raises(testing.ActionFailed, match="no S3 storage"):
        ctx.run(ctx.on.action("restore", params={"backup-id": "2020-01-01T00-00-00Z"}), state)


@pytest.mark.parametrize("action", ["create-backup", "list-backups", "restore"])
def test_backup_actions_need_the_leader(ctx, tmp_path, s3_endpoint, bucket, action):
    state = _state(tmp_path, s3_endpoint, bucket, leader=False)
    params = {"backup-id": "2020-01-01T00-00-00Z"} if action == "restore" else {}
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action(action, params=params), state)


@pytest.mark.parametrize("action", ["create-backup", "restore"])
def test_backup_actions_need_mysqld_up(ctx, tmp_path, s3_endpoint, bucket, action):
    container = mysql_container(tmp_path, running=False)
    state = _state(tmp_path, s3_endpoint, bucket, container=container)
    params = {"backup-id": "2020-01-01T00-00-00Z"} if action == "restore" else {}
    with pytest.raises(testing.ActionFailed, match="mysqld is not up"):
        ctx.run(ctx.on.action(action, params=params), state)


def test_backup_fails_clearly_when_s3_is_unreachable(ctx, tmp_path, bucket):
    state = _state(tmp_path, "http://127.0.0.1:9", bucket)
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("create-backup"), state)
    assert "Traceback" not in failure.value.message
    assert failure.value.message


def test_backup_fails_clearly_on_unreadable_s3_data(ctx, tmp_path, s3_endpoint, bucket):
    broken = testing.Relation(
        "s3-parameters",
        remote_app_name="minio",
        remote_app_data={"bucket": bucket, "secret-extra": "secret:gone"},
    )
    state = _state(tmp_path, s3_endpoint, bucket, relations={broken})
    with pytest.raises(testing.ActionFailed, match="s3-parameters: "):
        ctx.run(ctx.on.action("create-backup"), state)


# --- trusted keys of earlier deployments -------------------------------------------------

OLD_KEY = "cd" * 32


def _trusted(content: dict[str, str], **kwargs) -> testing.Secret:
    """A user secret (model-owned) granted to the app, as `juju add-secret` makes it."""
    return testing.Secret(tracked_content=content, owner=None, **kwargs)


def _new_deployment(state: testing.State, out: testing.State, *extra: testing.Secret):
    """`state` with the backup key the last run made replaced by another (a new deployment)."""
    own = testing.Secret(
        tracked_content={"backup-key": "ab" * 32}, owner="app", label="backup-key"
    )
    kept = {s for s in out.secrets if s.label != "backup-key"}
    return dataclasses.replace(state, secrets={*kept, own, *extra})


def test_backup_of_another_deployment_restores_once_its_key_is_trusted(
    ctx, tmp_path, s3_endpoint, bucket
):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    old_key = _key_secret(out).tracked_content["backup-key"]

    # The new deployment, with its own key, refuses it and says how to trust the old key.
    new = _new_deployment(state, out)
    ctx.exec_history.clear()
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), new)
    message = failure.value.message
    assert "signed with another key" in message
    from mysql_backups import key_id  # the charm's module, on the path since it loaded

    assert key_id(bytes.fromhex(old_key)) in message
    assert "trusted-backup-keys" in message
    assert old_key not in message
    assert sql_sent(ctx) == ""

    # Trusting the old key (its `backup-key` field as `juju show-secret` shows it)
    # lets the restore verify and run; new backups still use the own key.
    trusted = _trusted({"backup-key": old_key})
    new = _new_deployment(state, out, trusted)
    new = dataclasses.replace(new, config={"trusted-backup-keys": trusted.id})
    ctx.run(ctx.on.action("list-backups"), new)
    assert ctx.action_results["items"]["backup-0"]["key"] == "trusted"
    ctx.exec_history.clear()
    ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), new)
    assert ctx.action_results["backup-id"] == backup_id
    assert "INSERT INTO `runs` VALUES (1),(2),(3);" in sql_sent(ctx)

    ctx.run(ctx.on.action("create-backup"), new)
    ctx.run(ctx.on.action("list-backups"), new)
    items = ctx.action_results["items"]
    assert [items["backup-0"]["key"], items["backup-1"]["key"]] == ["own", "trusted"]
    assert items["backup-0"]["key-id"] == key_id(bytes.fromhex("ab" * 32))


def test_list_backups_says_unknown_for_an_untrusted_key(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    ctx.run(ctx.on.action("list-backups"), _with_secrets(state, out))
    assert ctx.action_results["items"]["backup-0"]["key"] == "own"
    ctx.run(ctx.on.action("list-backups"), _new_deployment(state, out))
    assert ctx.action_results["items"]["backup-0"]["key"] == "unknown"
    assert "unknown" in ctx.action_results["backups"]


def test_several_trusted_keys_and_a_restore_without_an_own_key(ctx, tmp_path, s3_endpoint, bucket):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    old_key = _key_secret(out).tracked_content["backup-key"]
    # A deployment that never made a backup (no own key) and trusts two keys.
    trusted = _trusted({"key-one": OLD_KEY, "backup-key": old_key})
    fresh = dataclasses.replace(
        state,
        secrets={*state.secrets, trusted},
        config={"trusted-backup-keys": trusted.id},
    )
    ctx.exec_history.clear()
    ctx.run(ctx.on.action("restore", params={"backup-id": backup_id}), fresh)
    assert ctx.action_results["backup-id"] == backup_id
    assert "INSERT INTO `runs`" in sql_sent(ctx)


def _bad_trusted_configs():
    not_hex = _trusted({"backup-key": "not-hex"})
    short = _trusted({"backup-key": "ab" * 8})
    return [
        # A secret that does not exist and one not granted look the same to the charm.
        pytest.param(set(), "secret:" + "a" * 20, "not found, or not granted", id="unknown"),
        pytest.param(
            {not_hex}, not_hex.id, "field 'backup-key': the backup key is not hex", id="hex"
        ),
        pytest.param({short}, short.id, "shorter than 32 bytes", id="short"),
    ]


@pytest.mark.parametrize(("secrets", "value", "reason"), _bad_trusted_configs())
def test_bad_trusted_keys_block_and_fail_restore(
    ctx, tmp_path, s3_endpoint, bucket, secrets, value, reason
):
    state = _state(tmp_path, s3_endpoint, bucket)
    out = ctx.run(ctx.on.action("create-backup"), state)
    backup_id = ctx.action_results["backup-id"]
    bad = dataclasses.replace(
        _with_secrets(state, out),
        secrets={*out.secrets, *secrets},
        config={"trusted-backup-keys": value},
    )
    status = ctx.run(ctx.on.update_status(), bad).unit_status
    assert status.name == "blocked"
    assert status.message.startswith("invalid config: trusted-backup-keys: ")
    assert reason in status.message
    assert OLD_KEY not in status.message
    ctx.exec_history.clear()
    for action, params in (("restore", {"backup-id": backup_id}), ("list-backups", {})):
        with pytest.raises(testing.ActionFailed, match="invalid config: trusted-backup-keys: "):
            ctx.run(ctx.on.action(action, params=params), bad)
    assert "DROP" not in sql_sent(ctx)
