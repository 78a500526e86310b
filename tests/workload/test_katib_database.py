"""The account mysql gives katib runs what Katib's DB manager runs, and nothing else.

katib asks `relational-db` for the database `katib` (`katib_workloads.DATABASE`);
the mysql charm serves it with its own code (`ensure_database`, then
`ensure_user` for the relation's one user and password). That account then
runs, on a real MariaDB, the DB manager's statements (`katib_schema`, see
there for where each was read), and nothing outside its database.
"""

# ruff: noqa: S608 - SQL built from the tests' own constants

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from executor import WorkloadError
from mysql_server import MySQLServer, relation_user
from workload import katib_schema as schema
from workload.helpers import connect_as
from workload.local_executor import LocalExecutor
from workload.servers import MariaDB

KATIB_SRC = Path(__file__).resolve().parents[2] / "charms" / "katib" / "src"
if str(KATIB_SRC) not in sys.path:
    sys.path.insert(0, str(KATIB_SRC))

import katib_workloads  # noqa: E402

RELATION_ID = 21
OTHER = "someone-else"


@pytest.fixture
def katib(admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor) -> MySQLServer:
    """The katib account, made as the mysql charm makes it for the database katib asks for."""
    password = secrets.token_urlsafe(18)
    user = relation_user(RELATION_ID)
    admin.ensure_database(katib_workloads.DATABASE)
    admin.ensure_user(user, password, katib_workloads.DATABASE)
    # Another application's database, with data, next to katib's.
    admin.ensure_database(OTHER)
    admin.ensure_user(relation_user(RELATION_ID + 1), secrets.token_urlsafe(18), OTHER)
    admin.execute(
        f"CREATE TABLE IF NOT EXISTS `{OTHER}`.secrets (v VARCHAR(255) PRIMARY KEY);"
        f"INSERT IGNORE INTO `{OTHER}`.secrets VALUES ('theirs');"
    )
    return connect_as(mariadb, executor, user, password)


def _rows(account: MySQLServer, sql: str) -> list[list[str]]:
    return account.query(f"USE `{schema.DATABASE}`; {sql}")


def _run(account: MySQLServer, sql: str) -> None:
    try:
        account.execute(f"USE `{schema.DATABASE}`; {sql}")
    except WorkloadError as e:
        pytest.fail(f"{sql!r} failed: {e}")


def test_katib_asks_for_the_database_upstream_names():
    assert katib_workloads.DATABASE == schema.DATABASE


def test_the_db_manager_makes_its_table_and_runs_its_queries(katib: MySQLServer):
    _run(katib, schema.CREATE_TABLE)
    _run(katib, schema.CREATE_TABLE)  # every start runs it again: IF NOT EXISTS
    assert _rows(katib, schema.HEALTH) == [["1"]]
    assert _rows(katib, schema.VALIDATE) == []
    _run(katib, schema.REPORT)
    assert _rows(katib, schema.GET) == [
        ["2026-01-02 03:04:05.123456", "accuracy", "0.91"],
        ["2026-01-02 03:05:05.000000", "accuracy", "0.93"],
    ]
    _run(katib, schema.DELETE)
    assert _rows(katib, "SELECT COUNT(*) FROM observation_logs;") == [["0"]]
    tables = [row[0] for row in _rows(katib, "SHOW TABLES;")]
    assert tables == ["observation_logs"]


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT * FROM `{OTHER}`.secrets;",
        f"INSERT INTO `{OTHER}`.secrets VALUES ('planted');",
        f"DELETE FROM `{OTHER}`.secrets;",
        f"CREATE TABLE `{OTHER}`.observation_logs (i INT);",
        f"DROP TABLE `{OTHER}`.secrets;",
        "CREATE DATABASE katib2;",
        f"GRANT SELECT ON `{OTHER}`.* TO CURRENT_USER();",
        "SELECT * FROM mysql.user;",
    ],
)
def test_the_katib_account_cannot_touch_another_database(
    katib: MySQLServer, admin: MySQLServer, sql: str
):
    with pytest.raises(WorkloadError) as error:
        katib.execute(sql)
    assert "denied" in str(error.value), error.value
    assert admin.query(f"SELECT v FROM `{OTHER}`.secrets;") == [["theirs"]]
    assert katib.user_databases() == [schema.DATABASE]
