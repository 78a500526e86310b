"""Helpers shared by the workload tests (the charm's modules are on sys.path via conftest)."""

# ruff: noqa: S608 - the tests build SQL from their own constants and catalogue names

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mysql_server import ADMIN_USER, SYSTEM_DATABASES, MySQLServer, quote_string
from workload.local_executor import LocalExecutor
from workload.servers import MariaDB

from kubeflow_interfaces.s3 import S3ConnectionInfo

CLIENT = "mariadb"  # the charm runs `mysql`; MariaDB's client is the same program
DUMP = "mariadb-dump"  # likewise for `mysqldump`


def reset(server: MariaDB) -> None:
    """Drop every user database and every account but root and the charm's."""
    databases = server.sql("SHOW DATABASES;").split()
    statements = [f"DROP DATABASE `{n}`;" for n in databases if n not in SYSTEM_DATABASES]
    keep = ", ".join(quote_string(u) for u in ("root", ADMIN_USER, "mariadb.sys"))
    columns = "CONCAT(QUOTE(User), '@', QUOTE(Host))"
    listing = f"SELECT {columns} FROM mysql.user WHERE User NOT IN ({keep});"
    accounts = server.sql(listing).split()
    statements += [f"DROP USER {account};" for account in accounts]
    if statements:
        server.sql("\n".join(statements))


def connect_as(mariadb: MariaDB, executor: LocalExecutor, user: str, password: str) -> MySQLServer:
    """Connect as a relation user, over TCP like an application in another pod."""
    server = MySQLServer(
        executor,
        user=user,
        password=password,
        socket=None,
        host=mariadb.host,
        port=mariadb.port,
        options_file=str(executor.root / f"{user}.cnf"),
        client=CLIENT,
        dump=DUMP,
    )
    server.write_client_options()
    return server


# --- data sets -----------------------------------------------------------------

# The views, triggers, routines and events belong to a relation user, as an
# application's own objects do: a restore accepts no other DEFINER.
SHOP_OWNER = "relation-1"
SHOP_SQL = """
SET SESSION max_recursive_iterations = 1000000;
CREATE USER IF NOT EXISTS 'relation-1'@'%' IDENTIFIED BY 'shop-owner-password';
GRANT ALL PRIVILEGES ON `shop`.* TO 'relation-1'@'%';
GRANT ALL PRIVILEGES ON `metrics-2`.* TO 'relation-1'@'%';
CREATE DATABASE shop;
CREATE TABLE shop.customers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  email VARCHAR(128),
  balance DECIMAL(12, 2),
  note TEXT,
  avatar VARBINARY(64),
  created DATETIME(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO shop.customers (name, email, balance, note, avatar, created)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {customers})
SELECT CONCAT('customer ', n), CONCAT('c', n, '@example.com'), ROUND(RAND(n) * 10000, 2),
  CASE n % 4
    WHEN 0 THEN NULL
    WHEN 1 THEN CONCAT('it''s "quoted" \\\\ and /* not a comment */ ', n)
    WHEN 2 THEN CONCAT('line\\nbreak\\ttab;\\r', n)
    ELSE CONCAT('ünïcødé ✓ 𝄞 ', n)
  END,
  RANDOM_BYTES(1 + n % 48), '2024-01-01' + INTERVAL n SECOND
FROM seq;
CREATE TABLE shop.orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(12, 2) NOT NULL,
  status ENUM('new', 'paid', 'shipped'),
  placed DATETIME(6),
  KEY (customer_id)
) ENGINE=InnoDB;
INSERT INTO shop.orders (customer_id, amount, status, placed)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {orders})
SELECT 1 + n % {customers}, n / 100, ELT(1 + n % 3, 'new', 'paid', 'shipped'),
  '2024-02-01' + INTERVAL n MINUTE
FROM seq;
CREATE DEFINER = 'relation-1'@'%' VIEW shop.big_spenders AS
  SELECT customer_id, SUM(amount) AS total FROM shop.orders GROUP BY customer_id;
CREATE DEFINER = 'relation-1'@'%' TRIGGER shop.orders_default_status BEFORE INSERT ON shop.orders
  FOR EACH ROW SET NEW.status = COALESCE(NEW.status, 'new');
CREATE DEFINER = 'relation-1'@'%' FUNCTION shop.with_vat(amount DECIMAL(12, 2))
  RETURNS DECIMAL(12, 2)
  DETERMINISTIC RETURN amount * 1.2;
CREATE DATABASE `metrics-2`;
CREATE TABLE `metrics-2`.events (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  order_ref BIGINT NULL,
  kind VARCHAR(32) NOT NULL,
  payload JSON,
  at TIMESTAMP(6) NULL
) ENGINE=InnoDB;
INSERT INTO `metrics-2`.events (order_ref, kind, payload, at)
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {events})
SELECT NULL, ELT(1 + n % 3, 'view', 'click', 'buy'), JSON_OBJECT('n', n, 's', REPEAT('x', n % 20)),
  '2024-03-01' + INTERVAL n SECOND
FROM seq;
CREATE DEFINER = 'relation-1'@'%' EVENT `metrics-2`.purge_old ON SCHEDULE EVERY 1 DAY DISABLE
  DO DELETE FROM `metrics-2`.events WHERE at < NOW() - INTERVAL 1 YEAR;
"""

SHOP_TABLES = (("shop", "customers"), ("shop", "orders"), ("metrics-2", "events"))


def make_shop(
    mariadb: MariaDB, *, customers: int = 40_000, orders: int = 40_000, events: int = 30_000
) -> int:
    """Create two databases (three tables, a view, a trigger, a function, an event).

    Return the number of rows.
    """
    mariadb.sql(SHOP_SQL.format(customers=customers, orders=orders, events=events))
    return customers + orders + events


def max_ids(mariadb: MariaDB, tables=SHOP_TABLES) -> dict[tuple[str, str], int]:
    """Return the highest id of each table (0 when empty)."""
    return {
        (db, table): int(mariadb.scalar(f"SELECT COALESCE(MAX(id), 0) FROM `{db}`.`{table}`;"))
        for db, table in tables
    }


def table_checksum(
    mariadb: MariaDB, database: str, table: str, *, up_to_id: int | None = None
) -> tuple[int, str]:
    """Return (row count, sum of per-row MD5s) over every column, rows with id <= up_to_id."""
    columns = mariadb.sql(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{database}' AND TABLE_NAME = '{table}' "
        "ORDER BY ORDINAL_POSITION;"
    ).split()
    row = "CONCAT_WS('|', " + ", ".join(f"QUOTE(`{c}`)" for c in columns) + ")"
    where = f"WHERE id <= {int(up_to_id)}" if up_to_id is not None else ""
    out = mariadb.sql(
        f"SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5({row}), 15), 16, 10) AS UNSIGNED)), 0) "
        f"FROM `{database}`.`{table}` {where};"
    )
    count, total = out.split()
    return int(count), total


def checksums(
    mariadb: MariaDB, limits: dict[tuple[str, str], int] | None = None, tables=SHOP_TABLES
) -> dict[tuple[str, str], tuple[int, str]]:
    """Return `table_checksum` of each table (bounded by `limits` when given)."""
    return {
        (db, t): table_checksum(mariadb, db, t, up_to_id=(limits or {}).get((db, t)))
        for db, t in tables
    }


def make_blobs(mariadb: MariaDB, *, mib: int) -> int:
    """Create `big.blobs` with `mib` MiB of incompressible-ish text; return its bytes."""
    rows = mib * 1024  # 1 KiB of hex per row
    mariadb.sql(
        "SET SESSION max_recursive_iterations = 10000000;\n"
        "CREATE DATABASE big;\n"
        "CREATE TABLE big.blobs (id BIGINT AUTO_INCREMENT PRIMARY KEY,"
        " payload VARCHAR(1024) NOT NULL) ENGINE=InnoDB;\n"
        "INSERT INTO big.blobs (payload) WITH RECURSIVE seq(n) AS"
        f" (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows})"
        " SELECT HEX(RANDOM_BYTES(512)) FROM seq;\n"
    )
    return int(mariadb.scalar("SELECT SUM(LENGTH(payload)) FROM big.blobs;"))


# --- a backup or restore in a process of its own -----------------------------------

PROBE = Path(__file__).resolve().parent / "backup_probe.py"
# The backup key of the probe runs (a test value: the charm makes a random one).
PROBE_KEY = "5a" * 32


def probe_job(
    action: str,
    server: MySQLServer,
    s3: S3ConnectionInfo,
    workdir: Path,
    *,
    backup_id: str | None = None,
    model: str = "kubeflow",
    app: str = "mysql",
    key: str = PROBE_KEY,
) -> dict[str, Any]:
    """Describe a backup or restore for `run_probe`, with `server`'s account and options file."""
    return {
        "action": action,
        "backup_id": backup_id,
        "workdir": str(workdir),
        "model": model,
        "app": app,
        "key": key,
        "server": {
            "user": server.user,
            "password": server._password,
            "socket": server.socket,
            "host": server.host,
            "port": server.port,
            "options_file": server.options_file,
            "client": CLIENT,
            "dump": DUMP,
        },
        "s3": s3.model_dump(),
    }


def run_probe(job: dict[str, Any], *, timeout: float = 600) -> dict[str, Any]:
    """Run `backup_probe.py` on `job` in a child process; return its report."""
    done = subprocess.run(
        [sys.executable, str(PROBE)],
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])
