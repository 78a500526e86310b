"""The account mysql gives kfp runs what KFP's API server and MLMD run at first start.

kfp asks `relational-db` for two databases in one request list
(`kfp_data.DATABASES`); the mysql charm serves each with its own code
(`ensure_database`, then `ensure_user` for the relation's one user and
password: mysql_charm.py `_serve_databases`). That account then runs, on a
real MariaDB, the statements of `kfp_schema` (upstream's first-start SQL,
see there for where each was read), and nothing outside its two databases.
"""

# ruff: noqa: S608 - SQL built from the tests' own constants

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from executor import WorkloadError
from mysql_server import MySQLServer, relation_user
from workload import kfp_schema as schema
from workload.helpers import connect_as
from workload.local_executor import LocalExecutor
from workload.servers import MariaDB

KFP_SRC = Path(__file__).resolve().parents[2] / "charms" / "kfp" / "src"
if str(KFP_SRC) not in sys.path:
    sys.path.insert(0, str(KFP_SRC))

import kfp_data  # noqa: E402

RELATION_ID = 11
OTHER = "someone-else"


@pytest.fixture
def kfp(admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor) -> MySQLServer:
    """The kfp account, made as the mysql charm makes it for each database kfp asks for."""
    password = secrets.token_urlsafe(18)
    user = relation_user(RELATION_ID)
    for database in kfp_data.DATABASES:
        admin.ensure_database(database)
        admin.ensure_user(user, password, database)
    # Another application's database, with data, next to kfp's.
    admin.ensure_database(OTHER)
    admin.ensure_user(relation_user(RELATION_ID + 1), secrets.token_urlsafe(18), OTHER)
    admin.execute(
        f"CREATE TABLE `{OTHER}`.secrets (v VARCHAR(255) PRIMARY KEY);"
        f"INSERT INTO `{OTHER}`.secrets VALUES ('theirs');"
    )
    return connect_as(mariadb, executor, user, password)


def _run(account: MySQLServer, database: str, statements: list[str]) -> None:
    for sql in statements:
        try:
            account.execute(f"USE `{database}`; {sql}")
        except WorkloadError as e:
            pytest.fail(f"{sql!r} failed: {e}")


def _rows(account: MySQLServer, database: str, sql: str) -> list[list[str]]:
    return account.query(f"USE `{database}`; {sql}")


def test_kfp_asks_for_the_databases_upstream_names():
    # pipelineDb and mlmdDb of kubeflow/manifests v1.10.0
    # apps/pipeline/upstream/base/installs/generic/pipeline-install-config.yaml.
    assert kfp_data.DATABASES == (schema.MLPIPELINE, schema.METADB)


def test_the_api_server_creates_and_migrates_its_schema(kfp: MySQLServer):
    # Its first statement, before it names a database: "exists" is the one error it ignores.
    with pytest.raises(WorkloadError) as error:
        kfp.execute(schema.API_FIRST_CONNECTION)
    assert schema.DATABASE_EXISTS in str(error.value), error.value
    db = schema.MLPIPELINE
    assert _rows(kfp, db, schema.API_SHOW_TABLES) == []

    _run(kfp, db, schema.API_CREATE_TABLES)
    assert _rows(kfp, db, schema.API_HAS_INDEX) == []
    _run(kfp, db, schema.API_MODEL_INDEXES)
    assert _rows(kfp, db, schema.API_HAS_INDEX)
    _run(kfp, db, schema.API_OLD_INDEXES)
    _run(kfp, db, schema.API_MIGRATION)
    try:  # the API server discards this one's errors; none may be about privileges
        kfp.execute(f"USE `{db}`; {schema.API_PIPELINE_VERSIONS_BACKFILL}")
    except WorkloadError as e:
        assert "denied" not in str(e), e
    _run(kfp, db, schema.API_MIGRATION_AFTER_BACKFILL)
    _run(kfp, db, schema.API_ROWS)
    _run(kfp, db, schema.API_RUN)

    tables = sorted(row[0] for row in _rows(kfp, db, schema.API_SHOW_TABLES))
    assert tables == sorted(
        [
            "db_statuses",
            "default_experiments",
            "experiments",
            "pipeline_versions",
            "pipelines",
            "resource_references",
            "run_details",
            "run_metrics",
            "tasks",
        ]
    )
    assert _rows(kfp, db, "SELECT HaveSamplesLoaded FROM db_statuses;") == [["1"]]
    assert _rows(kfp, db, "SELECT DefaultExperimentId FROM default_experiments;") == [["e-1"]]
    indexes = {row[2] for row in _rows(kfp, db, "SHOW INDEX FROM pipeline_versions;")}
    assert "idx_pipeline_version_uuid_name" not in indexes
    assert "idx_pipelineid_name" in indexes
    foreign_keys = _rows(
        kfp,
        db,
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS WHERE "
        f"CONSTRAINT_SCHEMA = '{db}' AND CONSTRAINT_TYPE = 'FOREIGN KEY' ORDER BY TABLE_NAME;",
    )
    assert foreign_keys == [["pipeline_versions"], ["run_metrics"], ["tasks"]]
    # The foreign keys cascade: deleting a run deletes its metrics and tasks.
    _run(kfp, db, ["DELETE FROM run_details WHERE UUID = 'r-1';"])
    assert _rows(kfp, db, "SELECT COUNT(*) FROM run_metrics;") == [["0"]]
    assert _rows(kfp, db, "SELECT COUNT(*) FROM tasks;") == [["0"]]


def test_mlmd_creates_versions_and_migrates_its_schema(kfp: MySQLServer):
    assert kfp.query(schema.MLMD_TRANSACTIONAL) == [["InnoDB", "YES"]]
    kfp.execute(schema.MLMD_CONNECT)  # the database exists: IF NOT EXISTS passes
    db = schema.METADB
    for probe in schema.MLMD_SCHEMA_PROBES:  # an empty database, not a refusal
        with pytest.raises(WorkloadError) as error:
            kfp.execute(f"USE `{db}`; {probe}")
        assert "doesn't exist" in str(error.value), error.value

    _run(kfp, db, schema.MLMD_CREATE_TABLES)
    _run(kfp, db, schema.MLMD_SECONDARY_INDEXES)
    _run(kfp, db, schema.MLMD_VERSION)
    _run(kfp, db, schema.MLMD_WRITES)
    _run(kfp, db, schema.MLMD_REBUILD_EVENT)

    assert _rows(kfp, db, "SELECT `schema_version` FROM `MLMDEnv`;") == [
        [str(schema.MLMD_SCHEMA_VERSION)]
    ]
    tables = {row[0] for row in _rows(kfp, db, "SHOW TABLES;")}
    assert "Event" in tables and "EventTemp" not in tables
    assert _rows(kfp, db, "SELECT artifact_id, execution_id, type FROM `Event`;") == [
        ["1", "1", "4"]
    ]
    event_indexes = {row[2] for row in _rows(kfp, db, "SHOW INDEX FROM `Event`;")}
    assert "idx_event_execution_id" in event_indexes
    assert _rows(kfp, db, "SELECT step_key FROM `EventPath`;") == [["dataset"]]


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM `{OTHER}`.secrets;",
        f"INSERT INTO `{OTHER}`.secrets VALUES ('planted');",
        f"CREATE TABLE `{OTHER}`.t (i INT);",
        f"ALTER TABLE `{OTHER}`.secrets ADD COLUMN i INT;",
        f"CREATE INDEX i ON `{OTHER}`.secrets (v);",
        f"DROP TABLE `{OTHER}`.secrets;",
        f"DROP DATABASE `{OTHER}`;",
        "CREATE DATABASE cachedb;",  # the v1 cache server's database: kfp does not ask for it
        "CREATE DATABASE IF NOT EXISTS mlpipeline2;",
        # A foreign key into another database needs REFERENCES there.
        "CREATE TABLE mlpipeline.stolen (v VARCHAR(255), "
        f"FOREIGN KEY (v) REFERENCES `{OTHER}`.secrets(v));",
        f"GRANT SELECT ON `{OTHER}`.* TO CURRENT_USER();",
        "SELECT * FROM mysql.user;",
    ],
)
def test_the_kfp_account_cannot_touch_another_database(
    kfp: MySQLServer, admin: MySQLServer, sql: str
):
    with pytest.raises(WorkloadError) as error:
        kfp.execute(sql)
    assert "denied" in str(error.value), error.value
    assert admin.query(f"SELECT v FROM `{OTHER}`.secrets;") == [["theirs"]]
    assert kfp.user_databases() == sorted([schema.METADB, schema.MLPIPELINE])
