"""Fixtures of real servers on localhost: MariaDB and an S3 API.

Shared by the workload tests (`tests/workload/conftest.py`) and the serving
test (`tests/serving/conftest.py`), which import them into their conftest.

MariaDB 10.11 stands in for the charm's MySQL 8.4: the charm's own modules
(`charms/mysql/src`) run unchanged through a local executor, with the
`mariadb` and `mariadb-dump` clients in place of `mysql` and `mysqldump`.
One server and one S3 API serve the whole session; every test starts from
a server with no user databases and no accounts but root and the charm's.
"""

from __future__ import annotations

import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "charms" / "mysql" / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from mysql_server import ADMIN_USER, MySQLServer, initialise_sql  # noqa: E402
from workload.helpers import CLIENT, DUMP, reset  # noqa: E402
from workload.local_executor import LocalExecutor  # noqa: E402
from workload.servers import MariaDB, mariadb_server, s3_server  # noqa: E402

from kubeflow_interfaces.s3 import S3ConnectionInfo  # noqa: E402

S3_ACCESS_KEY = "workload-tests"
S3_SECRET_KEY = "workload-tests-secret"


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    with mariadb_server(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@pytest.fixture(scope="session")
def admin_password(mariadb: MariaDB) -> str:
    """Set the server up as the charm does on first start (root's password, charm-admin)."""
    password = secrets.token_urlsafe(24)
    mariadb.sql(initialise_sql(mariadb.root_password, password))
    return password


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(tmp_path)


@pytest.fixture
def admin(mariadb: MariaDB, admin_password: str, executor: LocalExecutor) -> MySQLServer:
    """Connect as the charm's own account over the socket, to a server with no user data."""
    reset(mariadb)
    server = MySQLServer(
        executor,
        user=ADMIN_USER,
        password=admin_password,
        socket=mariadb.socket,
        options_file=str(executor.root / "charm-client.cnf"),
        client=CLIENT,
        dump=DUMP,
    )
    server.write_client_options()
    return server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def s3_info(s3_endpoint: str) -> S3ConnectionInfo:
    """Make a fresh bucket, reached as the charm reaches one (with a path inside it)."""
    info = S3ConnectionInfo(
        endpoint=s3_endpoint,
        bucket=f"backups-{uuid.uuid4().hex[:12]}",
        path="kubeflow/db",
        region="us-east-1",
        uri_style="path",
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
    )
    info.client().create_bucket(Bucket=info.bucket)
    return info
