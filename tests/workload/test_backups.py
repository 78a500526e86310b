"""Backups streamed to a real S3 API and restored into a real MariaDB.

The dump comes from `mariadb-dump` (MySQL 8.4's `mysqldump` in the charm)
with the same options; both honour `--single-transaction` with one InnoDB
snapshot for every database in the dump.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from mysql_backups import (
    CHECKSUM_OBJECT,
    DUMP_OBJECT,
    METADATA_OBJECT,
    RESTORE_USER,
    BackupError,
    BackupRepository,
    UnknownKeyError,
    key_id,
    mac_message,
    parse_key,
)
from mysql_server import MySQLServer
from workload.helpers import CLIENT, PROBE_KEY, SHOP_OWNER, checksums, make_shop, max_ids
from workload.local_executor import LocalExecutor
from workload.servers import MariaDB, free_port

from kubeflow_interfaces.s3 import S3ConnectionInfo

T0 = datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
KEY = parse_key(PROBE_KEY)


@pytest.fixture
def repository(s3_info: S3ConnectionInfo, tmp_path: Path) -> BackupRepository:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return BackupRepository(s3_info, model="kubeflow", app="mysql", key=KEY, workdir=str(workdir))


def restore_commands(executor: LocalExecutor, server: MySQLServer) -> list[list[str]]:
    """The commands that fed a dump to the server (as the restore account)."""
    options = str(Path(server.options_file).parent / "charm-restore.cnf")
    return [
        argv
        for argv in executor.commands
        if argv[:2] == [server.restore_argv()[0], f"--defaults-extra-file={options}"]
    ]


def accounts(mariadb: MariaDB) -> set[str]:
    return set(mariadb.sql("SELECT CONCAT(User, '@', Host) FROM mysql.user;").split())


class WatchingExecutor(LocalExecutor):
    """Notes the restore account's grants at the moment the dump is fed."""

    def __init__(self, root: Path, mariadb: MariaDB):
        super().__init__(root)
        self._mariadb = mariadb
        self.grants: list[str] = []

    def feed_input(self, argv, source, *, env=None):
        rows = self._mariadb.sql(f"SHOW GRANTS FOR '{RESTORE_USER}'@'localhost';")
        self.grants = [line for line in rows.splitlines() if line]
        return super().feed_input(argv, source, env=env)


class Inserter(threading.Thread):
    """Keeps committing an order and its event, in one transaction, over one connection.

    One connection runs them one after the other, so once MAX(id) is read no
    row with a smaller id can still be on its way.
    """

    def __init__(self, mariadb: MariaDB):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.sent = 0
        self._process = subprocess.Popen(
            [CLIENT, f"--defaults-file={mariadb.root_options_file}", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def run(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        while not self.stop.is_set():
            n = self.sent
            stdin.write(
                (
                    "START TRANSACTION;\n"
                    "INSERT INTO shop.orders (customer_id, amount, placed)"
                    f" VALUES ({1 + n % 1000}, {n % 997}.25, NOW(6));\n"
                    "INSERT INTO `metrics-2`.events (order_ref, kind, payload, at)"
                    f" VALUES (LAST_INSERT_ID(), 'live', JSON_OBJECT('n', {n}), NOW(6));\n"
                    "COMMIT;\n"
                ).encode()
            )
            stdin.flush()
            self.sent += 1
        stdin.close()

    def finish(self) -> None:
        self.stop.set()
        self.join()
        assert self._process.stderr is not None
        errors = self._process.stderr.read()
        assert self._process.wait(timeout=120) == 0, errors.decode()


def test_backup_while_writing_then_restore(
    admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, executor: LocalExecutor
):
    rows = make_shop(mariadb)
    assert rows >= 100_000

    inserter = Inserter(mariadb)
    inserter.start()
    try:
        # Let the writes get going, then note what is committed before the backup starts.
        while (
            int(mariadb.scalar("SELECT COUNT(*) FROM `metrics-2`.events WHERE kind = 'live';"))
            < 50
        ):
            pass
        before = max_ids(mariadb)
        backup = repository.create(admin)
        after = max_ids(mariadb)
    finally:
        inserter.finish()
    assert after[("shop", "orders")] > before[("shop", "orders")], "no write during the backup"

    assert backup.status == "completed"
    assert backup.databases == ("metrics-2", "shop")
    expected = checksums(mariadb, before)

    for name in admin.user_databases():
        admin.execute(f"DROP DATABASE `{name}`;")
    assert admin.user_databases() == []

    restored = repository.restore(admin, backup.id)
    assert restored == backup
    assert restored.signed
    assert checksums(mariadb, before) == expected

    # One snapshot across both databases: every restored live order has its event.
    assert (
        mariadb.scalar(
            "SELECT COUNT(*) FROM shop.orders o LEFT JOIN `metrics-2`.events e"
            " ON e.order_ref = o.id WHERE o.placed > '2025-01-01' AND e.id IS NULL;"
        )
        == "0"
    )
    assert (
        mariadb.scalar(
            "SELECT COUNT(*) FROM `metrics-2`.events e LEFT JOIN shop.orders o"
            " ON o.id = e.order_ref WHERE e.order_ref IS NOT NULL AND o.id IS NULL;"
        )
        == "0"
    )
    # Rows committed after the backup began may or may not be in it, but nothing
    # committed after it finished can be.
    for table, highest in max_ids(mariadb).items():
        assert before[table] <= highest <= after[table]

    # Routines, triggers, views and events come back too.
    assert mariadb.scalar("SELECT shop.with_vat(10);") == "12.00"
    assert mariadb.scalar("SELECT COUNT(*) FROM shop.big_spenders;") != "0"
    assert (
        mariadb.scalar(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop';"
        )
        == "1"
    )
    assert (
        mariadb.scalar(
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'metrics-2';"
        )
        == "1"
    )
    assert len(restore_commands(executor, admin)) == 1
    # Their owner is still the relation user, and the restore account is gone.
    assert (
        mariadb.scalar("SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop';")
        == f"{SHOP_OWNER}@%"
    )
    assert not any(a.startswith(f"{RESTORE_USER}@") for a in accounts(mariadb))


def test_restore_runs_as_a_restore_account_with_the_databases_rights_only(
    admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, tmp_path: Path
):
    make_shop(mariadb, customers=200, orders=200, events=200)
    backup = repository.create(admin, now=T0)
    (tmp_path / "watch").mkdir()
    watching = WatchingExecutor(tmp_path / "watch", mariadb)
    server = MySQLServer(
        watching,
        user=admin.user,
        password=admin._password,
        socket=admin.socket,
        options_file=admin.options_file,
        client=CLIENT,
    )
    before = accounts(mariadb)
    live = checksums(mariadb)

    repository.restore(server, backup.id)

    assert checksums(mariadb) == live
    grants = "\n".join(watching.grants)
    assert "GRANT ALL PRIVILEGES ON `shop`.*" in grants
    assert "GRANT ALL PRIVILEGES ON `metrics-2`.*" in grants
    assert "GRANT SET USER ON *.*" in grants  # MariaDB's name for "may name a DEFINER"
    assert "GRANT OPTION" not in grants
    assert len(watching.grants) == 3  # nothing on any other database, nothing else global
    assert len(restore_commands(watching, server)) == 1
    assert accounts(mariadb) == before
    assert not (Path(admin.options_file).parent / "charm-restore.cnf").exists()


def test_backup_layout_and_checksum(
    admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, s3_info
):
    make_shop(mariadb, customers=2000, orders=2000, events=2000)
    backup = repository.create(admin, now=T0)
    assert backup.id == "2025-03-01T10-00-00Z"
    assert backup.started_at == "2025-03-01T10:00:00Z"
    assert repository.prefix == "kubeflow/db/mysql-backups/kubeflow/mysql"
    client = repository.client
    keys = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=s3_info.bucket, Prefix="kubeflow/")["Contents"]
    )
    base = f"{repository.prefix}/{backup.id}"
    assert keys == [
        f"{base}/{METADATA_OBJECT}",
        f"{base}/{DUMP_OBJECT}",
        f"{base}/{CHECKSUM_OBJECT}",
    ]
    dump = client.get_object(Bucket=s3_info.bucket, Key=f"{base}/{DUMP_OBJECT}")["Body"].read()
    assert len(dump) == backup.size
    line = client.get_object(Bucket=s3_info.bucket, Key=f"{base}/{CHECKSUM_OBJECT}")["Body"].read()
    assert line.decode() == f"{hashlib.sha256(dump).hexdigest()}  {DUMP_OBJECT}\n"
    sql = zlib.decompress(dump, wbits=31)
    assert b"CREATE DATABASE" in sql and sql.rstrip().splitlines()[-1].startswith(
        b"-- Dump completed"
    )
    meta = json.loads(
        client.get_object(Bucket=s3_info.bucket, Key=f"{base}/{METADATA_OBJECT}")["Body"].read()
    )
    assert meta["status"] == "completed" and meta["databases"] == ["metrics-2", "shop"]
    assert meta["sha256"] == hashlib.sha256(dump).hexdigest()
    assert "MariaDB" in meta["server_version"]
    # The MAC covers the dump and every other field, as mac_message lays them out.
    assert meta["format"] == 2 and meta["authentication"] == "hmac-sha256/v1"
    assert meta["key_id"] == key_id(KEY)
    expected = hmac.new(KEY, mac_message(dump, meta), hashlib.sha256).hexdigest()
    assert meta["mac"] == expected
    assert backup.to_dict()["started-at"] == "2025-03-01T10:00:00Z"


# --- damaged backups ---------------------------------------------------------------


def _get(repo: BackupRepository, backup_id: str, name: str) -> bytes:
    return repo.client.get_object(Bucket=repo.bucket, Key=repo.key(backup_id, name))["Body"].read()


def _put(repo: BackupRepository, backup_id: str, name: str, body: bytes) -> None:
    repo.client.put_object(Bucket=repo.bucket, Key=repo.key(backup_id, name), Body=body)


def _forge_checksums(repo: BackupRepository, backup_id: str, dump: bytes) -> None:
    """Make the checksum file and the metadata agree with a replaced dump."""
    digest = hashlib.sha256(dump).hexdigest()
    _put(repo, backup_id, CHECKSUM_OBJECT, f"{digest}  {DUMP_OBJECT}\n".encode())
    meta = json.loads(_get(repo, backup_id, METADATA_OBJECT))
    meta.update(sha256=digest, size=len(dump))
    _put(repo, backup_id, METADATA_OBJECT, json.dumps(meta).encode())


def truncate(repo, backup_id):
    dump = _get(repo, backup_id, DUMP_OBJECT)
    _put(repo, backup_id, DUMP_OBJECT, dump[: len(dump) // 2])


def flip_bytes(repo, backup_id):
    dump = bytearray(_get(repo, backup_id, DUMP_OBJECT))
    middle = len(dump) // 2
    dump[middle : middle + 4] = bytes(b ^ 0xFF for b in dump[middle : middle + 4])
    _put(repo, backup_id, DUMP_OBJECT, bytes(dump))


def flip_bytes_and_forge_checksums(repo, backup_id):
    flip_bytes(repo, backup_id)
    _forge_checksums(repo, backup_id, _get(repo, backup_id, DUMP_OBJECT))


def truncate_and_forge_checksums(repo, backup_id):
    truncate(repo, backup_id)
    _forge_checksums(repo, backup_id, _get(repo, backup_id, DUMP_OBJECT))


def replace_with_an_unfinished_dump(repo, backup_id):
    """Put a whole, valid gzip whose SQL stops half way (no end marker)."""
    sql = zlib.decompress(_get(repo, backup_id, DUMP_OBJECT), wbits=31)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    dump = compressor.compress(sql[: len(sql) // 2]) + compressor.flush()
    _put(repo, backup_id, DUMP_OBJECT, dump)
    _forge_checksums(repo, backup_id, dump)


def remove_dump(repo, backup_id):
    repo.client.delete_object(Bucket=repo.bucket, Key=repo.key(backup_id, DUMP_OBJECT))


def _sign(repo: BackupRepository, backup_id: str, dump: bytes, key: bytes, **changes) -> None:
    """Upload `dump` with metadata made to match it and a MAC computed with `key`."""
    meta = json.loads(_get(repo, backup_id, METADATA_OBJECT))
    meta.update(size=len(dump), sha256=hashlib.sha256(dump).hexdigest(), **changes)
    meta["mac"] = hmac.new(key, mac_message(dump, meta), hashlib.sha256).hexdigest()
    _put(repo, backup_id, DUMP_OBJECT, dump)
    digest = hashlib.sha256(dump).hexdigest()
    _put(repo, backup_id, CHECKSUM_OBJECT, f"{digest}  {DUMP_OBJECT}\n".encode())
    _put(repo, backup_id, METADATA_OBJECT, json.dumps(meta).encode())


def _rewritten_sql(repo: BackupRepository, backup_id: str) -> bytes:
    """The backup's own SQL with different data: what someone holding the bucket keys would put."""
    sql = zlib.decompress(_get(repo, backup_id, DUMP_OBJECT), wbits=31)
    forged = sql.replace(b"'customer 1'", b"'forged customer'", 1)
    assert forged != sql
    return forged


def _gzip(sql: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return compressor.compress(sql) + compressor.flush()


def forge_everything(repo, backup_id):
    """New dump, its checksum file and metadata all rewritten to agree; the old MAC kept."""
    dump = _gzip(_rewritten_sql(repo, backup_id))
    _put(repo, backup_id, DUMP_OBJECT, dump)
    _forge_checksums(repo, backup_id, dump)


def forge_and_sign_with_another_key(repo, backup_id):
    """The forger signs with a key of their own, keeping the key id of the real one."""
    _sign(repo, backup_id, _gzip(_rewritten_sql(repo, backup_id)), b"forger's key".ljust(32, b"!"))


def strip_the_mac(repo, backup_id):
    """Forge everything and drop the MAC: the backup then looks like an old one."""
    forge_everything(repo, backup_id)
    meta = json.loads(_get(repo, backup_id, METADATA_OBJECT))
    for field in ("mac", "authentication", "key_id"):
        meta.pop(field)
    _put(repo, backup_id, METADATA_OBJECT, json.dumps(meta).encode())


def change_the_metadata_only(repo, backup_id):
    meta = json.loads(_get(repo, backup_id, METADATA_OBJECT))
    meta["databases"] = ["shop"]
    _put(repo, backup_id, METADATA_OBJECT, json.dumps(meta).encode())


DAMAGE = {
    truncate: "is damaged or forged",
    flip_bytes: "does not verify",
    flip_bytes_and_forge_checksums: "does not verify",
    truncate_and_forge_checksums: "does not verify",
    replace_with_an_unfinished_dump: "does not verify",
    remove_dump: "missing",
    forge_everything: "does not verify",
    forge_and_sign_with_another_key: "does not verify",
    strip_the_mac: "is not authenticated",
    change_the_metadata_only: "does not verify",
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=lambda f: f.__name__)
def test_damaged_backup_is_refused_and_data_untouched(
    damage, admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, executor
):
    make_shop(mariadb, customers=3000, orders=3000, events=3000)
    backup = repository.create(admin, now=T0)
    # Change the live data, so a restore that went ahead would show.
    mariadb.sql(
        "DELETE FROM shop.orders WHERE id % 2 = 0;"
        "INSERT INTO shop.customers (name) VALUES ('new');"
    )
    live = checksums(mariadb)

    damage(repository, backup.id)
    with pytest.raises(BackupError, match=DAMAGE[damage]):
        repository.restore(admin, backup.id)

    assert checksums(mariadb) == live
    assert restore_commands(executor, admin) == []
    assert list(Path(repository._workdir).iterdir()) == []  # no temp files left


def test_checksum_file_is_not_what_a_restore_trusts(
    admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository
):
    # Anyone who can write the bucket can write it; the MAC decides.
    make_shop(mariadb, customers=100, orders=100, events=100)
    backup = repository.create(admin, now=T0)
    _put(repository, backup.id, CHECKSUM_OBJECT, f"{'0' * 64}  {DUMP_OBJECT}\n".encode())
    assert repository.restore(admin, backup.id) == backup


@pytest.mark.parametrize(
    "statement",
    [
        b"GRANT ALL PRIVILEGES ON *.* TO 'relation-1'@'%' WITH GRANT OPTION;",
        b"CREATE USER 'intruder'@'%' IDENTIFIED BY 'intruder-password';",
        b"INSERT INTO `mysql`.`global_priv` VALUES ('%', 'intruder', '{}');",
        b"CREATE DEFINER=`charm-admin`@`localhost` PROCEDURE shop.p() SELECT 1;",
    ],
    ids=["grant", "create-user", "mysql-schema", "admin-definer"],
)
def test_authenticated_dump_with_forbidden_sql_is_refused(
    statement, admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, executor
):
    # Signed with the real key (as if the key had leaked, or a database's
    # content had been crafted): the scan is the second line.
    make_shop(mariadb, customers=300, orders=300, events=300)
    backup = repository.create(admin, now=T0)
    mariadb.sql("DELETE FROM shop.orders WHERE id % 2 = 0;")
    live = checksums(mariadb)
    before = accounts(mariadb)
    sql = zlib.decompress(_get(repository, backup.id, DUMP_OBJECT), wbits=31)
    sql = sql.replace(b"\n-- Dump completed", b"\n" + statement + b"\n-- Dump completed")
    _sign(repository, backup.id, _gzip(sql), KEY)

    with pytest.raises(BackupError, match="is refused: the dump holds"):
        repository.restore(admin, backup.id)

    assert checksums(mariadb) == live
    assert accounts(mariadb) == before
    assert restore_commands(executor, admin) == []


def test_restore_of_unknown_or_invalid_id(
    admin: MySQLServer, repository: BackupRepository, executor
):
    with pytest.raises(BackupError, match=r"backup 2020-01-01T00-00-00Z not found"):
        repository.restore(admin, "2020-01-01T00-00-00Z")
    for bad in ("latest", "../../etc", "2020-01-01T00:00:00Z", "2020-01-01T00-00-00Z/x", ""):
        with pytest.raises(BackupError, match="invalid backup id"):
            repository.restore(admin, bad)
    assert executor.commands == []


def test_backup_of_deployment_a_restores_in_deployment_b_once_b_trusts_key_a(
    admin: MySQLServer,
    mariadb: MariaDB,
    s3_info: S3ConnectionInfo,
    repository: BackupRepository,
    executor: LocalExecutor,
    tmp_path: Path,
):
    # Deployment A (key A) backs up, then is gone; deployment B (same model and
    # application name, so the same prefix, but its own key B) takes over.
    make_shop(mariadb, customers=500, orders=500, events=500)
    made = checksums(mariadb)
    backup = repository.create(admin, now=T0)
    mariadb.sql("DROP DATABASE shop; DROP DATABASE `metrics-2`;")
    key_b = parse_key("b7" * 32)

    def deployment_b(*trusted: bytes) -> BackupRepository:
        workdir = tmp_path / f"b-{len(list((tmp_path).glob('b-*')))}"
        workdir.mkdir()
        return BackupRepository(
            s3_info,
            model="kubeflow",
            app="mysql",
            key=key_b,
            trusted_keys=trusted,
            workdir=str(workdir),
        )

    before = deployment_b()
    (listed,) = before.list()
    assert before.key_origin(listed) == "unknown"
    with pytest.raises(BackupError, match=f"another key .*{key_id(KEY)}") as refused:
        before.restore(admin, backup.id)
    assert isinstance(refused.value, UnknownKeyError)
    assert refused.value.key_id == key_id(KEY)
    assert restore_commands(executor, admin) == []
    assert "shop" not in admin.user_databases()

    after = deployment_b(KEY)
    (listed,) = after.list()
    assert after.key_origin(listed) == "trusted"
    assert after.restore(admin, backup.id).id == backup.id
    assert checksums(mariadb) == made

    # New backups of B are signed with B's own key, never a trusted one.
    again = after.create(admin, now=T0.replace(hour=11))
    meta = json.loads(_get(after, again.id, METADATA_OBJECT))
    assert meta["key_id"] == key_id(key_b)
    assert [after.key_origin(b) for b in after.list()] == ["own", "trusted"]
    # A trusted key that is not the signer's does not make a forged id pass.
    other = deployment_b(parse_key("c3" * 32))
    with pytest.raises(UnknownKeyError):
        other.restore(admin, backup.id)


# --- listing -----------------------------------------------------------------------


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_list_newest_first_with_failed_backups(
    admin: MySQLServer, mariadb: MariaDB, repository: BackupRepository, tmp_path: Path, executor
):
    make_shop(mariadb, customers=1000, orders=1000, events=1000)
    assert repository.list() == []

    first = repository.create(admin, now=T0)
    same_second = repository.create(admin, now=T0)
    assert same_second.id == "2025-03-01T10-00-00Z-2"

    def failing(name: str, body: str) -> MySQLServer:
        server = MySQLServer(
            executor,
            user=admin.user,
            password="unused",
            socket=admin.socket,
            options_file=admin.options_file,
            client=CLIENT,
            dump=_script(tmp_path / name, body),
        )
        return server

    crashing = failing(
        "crashing-dump",
        "printf -- '-- partial\\nCREATE TABLE x (\\n'\n"
        "echo 'mysqldump: Error 2013: Lost connection to server during query' >&2\nexit 2\n",
    )
    with pytest.raises(BackupError, match="Lost connection") as error:
        repository.create(crashing, now=datetime(2025, 3, 2, tzinfo=timezone.utc))
    assert "2025-03-02T00-00-00Z failed" in str(error.value)

    stopping = failing("stopping-dump", "printf -- '-- partial\\nCREATE TABLE x (\\n'\nexit 0\n")
    with pytest.raises(BackupError, match="ended early"):
        repository.create(stopping, now=datetime(2025, 3, 3, tzinfo=timezone.utc))

    latest = repository.create(admin, now=datetime(2025, 3, 4, 8, 30, tzinfo=timezone.utc))
    # A dump whose metadata never got written (say the unit died) counts as failed.
    _put(repository, "2025-03-05T00-00-00Z", DUMP_OBJECT, b"\x1f\x8b partial")

    backups = repository.list()
    assert [(b.id, b.status) for b in backups] == [
        ("2025-03-05T00-00-00Z", "failed"),
        (latest.id, "completed"),
        ("2025-03-03T00-00-00Z", "failed"),
        ("2025-03-02T00-00-00Z", "failed"),
        (same_second.id, "completed"),
        (first.id, "completed"),
    ]
    assert backups[1] == latest
    assert backups[0].error and "no metadata" in backups[0].error
    assert backups[3].error and "Lost connection" in backups[3].error
    assert backups[3].databases == ("metrics-2", "shop")
    assert backups[2].error and "ended early" in backups[2].error
    assert all(b.size > 0 for b in backups if b.status == "completed")
    # Failed uploads were aborted: no parts left behind, no dump object.
    client = repository.client
    assert client.list_multipart_uploads(Bucket=repository.bucket).get("Uploads", []) == []
    for failed_id in ("2025-03-02T00-00-00Z", "2025-03-03T00-00-00Z"):
        names = {
            o["Key"].rsplit("/", 1)[1]
            for o in client.list_objects_v2(
                Bucket=repository.bucket, Prefix=f"{repository.prefix}/{failed_id}/"
            )["Contents"]
        }
        assert names == {METADATA_OBJECT}
        with pytest.raises(BackupError, match="failed"):
            repository.restore(admin, failed_id)
    with pytest.raises(BackupError, match="never finished"):
        repository.restore(admin, "2025-03-05T00-00-00Z")
    result = backups[1].to_dict()
    assert result["status"] == "completed" and result["databases"] == "metrics-2,shop"
    assert set(result) <= {
        "id",
        "status",
        "size",
        "started-at",
        "finished-at",
        "databases",
        "error",
        "signed",
        "key-id",
    }
    assert result["signed"] == "yes"
    assert result["key-id"] == key_id(KEY)


def test_nothing_to_back_up(admin: MySQLServer, repository: BackupRepository):
    with pytest.raises(BackupError, match="no database"):
        repository.create(admin)


def test_unreachable_s3_is_a_clear_error(admin: MySQLServer, mariadb: MariaDB, tmp_path: Path):
    make_shop(mariadb, customers=10, orders=10, events=10)
    info = S3ConnectionInfo(
        endpoint=f"http://127.0.0.1:{free_port()}",
        bucket="nowhere",
        access_key="a",
        secret_key="b",
    )
    repo = BackupRepository(info, model="m", app="a", key=KEY, workdir=str(tmp_path))
    with pytest.raises(BackupError, match="S3 error while"):
        repo.create(admin)


def test_tls_ca_chain_written_for_the_client(s3_info: S3ConnectionInfo, tmp_path: Path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    info = s3_info.model_copy(update={"tls_ca_chain": (pem,)})
    with BackupRepository(info, model="m", app="a", workdir=str(tmp_path)) as repo:
        path = repo._write_ca_bundle()
        assert path and Path(path).read_text() == pem + "\n"
        assert Path(path).parent == tmp_path
    assert not Path(path).exists()


class FailingChecksumWrites:
    """A boto3 client whose writes of checksum files are refused."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_object(self, **kwargs):
        if kwargs["Key"].endswith(CHECKSUM_OBJECT):
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not today"}}, "PutObject"
            )
        return self._client.put_object(**kwargs)


def test_failure_after_the_upload_removes_the_dump(
    admin: MySQLServer, mariadb: MariaDB, s3_info: S3ConnectionInfo, tmp_path: Path
):
    make_shop(mariadb, customers=100, orders=100, events=100)
    client = FailingChecksumWrites(s3_info.client())
    repo = BackupRepository(
        s3_info, model="m", app="a", key=KEY, client=client, workdir=str(tmp_path)
    )
    with pytest.raises(BackupError, match="S3 error while writing the checksum: AccessDenied"):
        repo.create(admin, now=T0)
    [backup] = repo.list()
    assert backup.status == "failed" and "AccessDenied" in (backup.error or "")
    listing = client.list_objects_v2(Bucket=repo.bucket, Prefix=f"{repo.prefix}/")
    assert [o["Key"].rsplit("/", 1)[1] for o in listing["Contents"]] == [METADATA_OBJECT]


class RecordingClient:
    """A boto3 client that notes which S3 operations are called, and on which bucket."""

    def __init__(self, client):
        self._client = client
        self.calls: set[tuple[str, str]] = set()

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute) or name == "get_paginator":
            return attribute

        def call(*args, **kwargs):
            self.calls.add((name, kwargs.get("Bucket", "")))
            return attribute(*args, **kwargs)

        return call

    def get_paginator(self, name):
        paginator = self._client.get_paginator(name)
        outer = self

        class Recording:
            def paginate(self, **kwargs):
                outer.calls.add((name, kwargs.get("Bucket", "")))
                return paginator.paginate(**kwargs)

        return Recording()


def test_backups_use_object_operations_on_their_own_bucket_only(
    admin: MySQLServer, mariadb: MariaDB, s3_info: S3ConnectionInfo, tmp_path: Path
):
    # What a key scoped to the bucket (and prefix) must allow; no bucket-level
    # operation such as CreateBucket or ListBuckets is ever needed.
    make_shop(mariadb, customers=50, orders=50, events=50)
    client = RecordingClient(s3_info.client())
    repo = BackupRepository(
        s3_info, model="m", app="a", key=KEY, client=client, workdir=str(tmp_path)
    )
    backup = repo.create(admin, now=T0)
    repo.list()
    repo.restore(admin, backup.id)
    operations = {name for name, _ in client.calls}
    assert {bucket for _, bucket in client.calls} == {s3_info.bucket}
    assert operations <= {
        "list_objects_v2",
        "get_object",
        "put_object",
        "create_multipart_upload",
        "upload_part",
        "complete_multipart_upload",
        "abort_multipart_upload",
        "delete_object",
    }
