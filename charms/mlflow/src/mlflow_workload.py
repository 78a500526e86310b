"""The MLflow tracking server's Pebble layer, its secrets file and its migration command.

Pure functions of `ServerSettings`: no ops model access, so the workload
tests run the real server from PyPI with exactly what the charm gives Pebble.
Facts are from the `mlflow` 2.22.0 wheel (PyPI, `mlflow-2.22.0-py3-none-any.whl`):

- `mlflow server` takes `--host`, `--port`, `--workers`, `--serve-artifacts`,
  `--artifacts-destination` and `--gunicorn-opts` (mlflow/cli.py,
  mlflow/utils/cli_args.py); the backend store URI is also read from the
  environment, `MLFLOW_BACKEND_STORE_URI` (cli.py), which is how it reaches
  the server here: from the secrets file, never from the plan. `--host`,
  `--port` and `--workers` are read from `MLFLOW_HOST`, `MLFLOW_PORT` and
  `MLFLOW_WORKERS` when not given (cli_args.py), and the pod of an app named
  `mlflow` has `MLFLOW_PORT=tcp://...` from its own Service: all three are
  always given.
- With artifact serving on and no `--default-artifact-root`, new experiments
  get `mlflow-artifacts:/` (mlflow/utils/server_cli_utils.py), so clients log
  through the server and the server writes under `--artifacts-destination`.
- `/health` answers `OK` (mlflow/server/__init__.py), outside any
  `--static-prefix`; the REST API stays at `/api/2.0` whatever the prefix
  (mlflow/server/handlers.py), so the route at `/mlflow/` rewrites to `/`
  and the server runs without a prefix.
- `mlflow db upgrade URL` migrates a schema (mlflow/db.py) but fails on an
  empty database, whose first migration alters a table that does not exist
  yet (mlflow/store/db_migrations/versions/451aebb31d03_add_metric_step.py);
  the server itself creates an empty database's tables
  (`_initialize_tables`, mlflow/store/db/utils.py, called from
  mlflow/store/tracking/sqlalchemy_store.py). The migration command does
  that first when the tables are missing, then runs `mlflow db upgrade`.

The secrets (the database URI with its password, the S3 keys) go into a
0600 file that `/bin/sh` exports before it execs the server; the layer
carries only the file's digest, so new secrets restart the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
from typing import Any
from urllib.parse import quote

MLFLOW_VERSION = "2.22.0"
CONTAINER = "mlflow-server"
SERVICE = "mlflow-server"
CHECK = "mlflow-ready"
PORT = 5000
HEALTH_PATH = "/health"
DATABASE = "mlflow"
SECRETS_FILE = "/etc/mlflow/server.env"
SECRETS_DIGEST = "SECRETS_DIGEST"
CA_FILE = "/etc/mlflow/s3-ca.pem"  # the object store's CA chain, when it gives one
# The user the rock runs its workload as (canonical/mlflow-operator track/2.22,
# metadata.yaml: containers.mlflow-server uid/gid).
USER_ID = 584792
GROUP_ID = 584792
DEFAULT_WORKERS = 4  # gunicorn's worker count when --workers is not given
DEFAULT_REQUEST_TIMEOUT = 60
MIGRATION_TIMEOUT = 600.0  # seconds the leader waits for a migration
# Where the migration runs: Pebble would otherwise use the workload user's home
# directory and refuse to start when the image has none (canonical/pebble v1.32.1
# internals/overlord/cmdstate/request.go, getWorkingDir).
MIGRATION_WORKING_DIR = "/"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Everything the server is started with: where its stores are, and how it serves."""

    db_host: str
    db_port: int
    db_user: str
    db_password: str = dataclasses.field(repr=False)
    db_name: str = DATABASE
    s3_endpoint: str | None = None  # None: AWS itself
    s3_bucket: str
    s3_path: str = ""
    s3_region: str | None = None
    s3_access_key: str = dataclasses.field(repr=False)
    s3_secret_key: str = dataclasses.field(repr=False)
    s3_ca_file: str | None = None  # a PEM file in the container the S3 client trusts
    workers: int = DEFAULT_WORKERS
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    port: int = PORT


def backend_store_uri(settings: ServerSettings) -> str:
    """The SQLAlchemy URI of the MySQL database (PyMySQL driver), account URL-quoted."""
    user = quote(settings.db_user, safe="")
    password = quote(settings.db_password, safe="")
    host = f"[{settings.db_host}]" if ":" in settings.db_host else settings.db_host
    return f"mysql+pymysql://{user}:{password}@{host}:{settings.db_port}/{settings.db_name}"


def artifacts_destination(settings: ServerSettings) -> str:
    """Where the server writes artifacts: `s3://<bucket>/<path>` (no trailing slash)."""
    path = settings.s3_path.strip("/")
    return f"s3://{settings.s3_bucket}/{path}" if path else f"s3://{settings.s3_bucket}"


def server_args(settings: ServerSettings) -> list[str]:
    """The `mlflow server` command line; the backend store comes from the environment."""
    return [
        "mlflow",
        "server",
        "--host",
        "0.0.0.0",  # noqa: S104 - the Service and the gateway reach it on the pod's address
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--gunicorn-opts",
        f"--timeout {settings.request_timeout}",
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts_destination(settings),
    ]


def secrets_env(settings: ServerSettings) -> str:
    """The secrets file: shell assignments `/bin/sh` exports before the server starts."""
    values = {
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri(settings),
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key,
    }
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def server_environment(settings: ServerSettings) -> dict[str, str]:
    """What the layer puts in the server's environment in clear (no secret)."""
    env = {SECRETS_DIGEST: digest(secrets_env(settings))}
    if settings.s3_endpoint:
        # MLflow's S3 artifact repository reads the first; boto3 the second.
        env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint
        env["AWS_ENDPOINT_URL"] = settings.s3_endpoint
    if settings.s3_region:
        env["AWS_DEFAULT_REGION"] = settings.s3_region
    if settings.s3_ca_file:
        env["AWS_CA_BUNDLE"] = settings.s3_ca_file
    return env


def _sourced(command: str) -> str:
    """A `/bin/sh` script: export the secrets file, then run `command`."""
    return f"set -a && . {SECRETS_FILE} && set +a && {command}"


def server_command(settings: ServerSettings) -> str:
    """The service's command: /bin/sh exports the secrets file and execs the server."""
    script = _sourced("exec " + shlex.join(server_args(settings)))
    return "/bin/sh -c " + shlex.quote(script)


def server_layer(settings: ServerSettings, *, user: bool = True) -> dict[str, Any]:
    """The Pebble layer: the server and its ready check on `/health`.

    `user`: run the service as the rock's workload user (the charm does;
    a test running the layer's command locally need not).
    """
    service: dict[str, Any] = {
        "override": "replace",
        "summary": "MLflow tracking server and model registry",
        "command": server_command(settings),
        "startup": "enabled",
        "environment": server_environment(settings),
    }
    if user:
        service["user-id"] = USER_ID
        service["group-id"] = GROUP_ID
    return {
        "summary": "mlflow-server",
        "services": {SERVICE: service},
        "checks": {
            CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "timeout": "3s",
                "threshold": 3,
                "http": {"url": f"http://localhost:{settings.port}{HEALTH_PATH}"},
            }
        },
    }


# Create an empty database's tables as the server would, so that `mlflow db upgrade`
# finds them (it cannot migrate an empty database).
_INITIALIZE_IF_EMPTY = (
    "import os; from mlflow.store.db import utils; "
    "e = utils.create_sqlalchemy_engine_with_retry(os.environ['MLFLOW_BACKEND_STORE_URI']); "
    "utils._all_tables_exist(e) or utils._initialize_tables(e)"
)


def migrate_command() -> list[str]:
    """The leader's migration: create an empty database's tables, then `mlflow db upgrade`.

    The URI comes from the secrets file, read by the shell: it is in no
    argument Pebble or the charm records.
    """
    script = _sourced(
        "python3 -c "
        + shlex.quote(_INITIALIZE_IF_EMPTY)
        + ' && exec mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"'
    )
    return ["/bin/sh", "-c", script]


def version_command() -> list[str]:
    """What prints the workload's version: `mlflow, version 2.22.0` (click's format)."""
    return ["mlflow", "--version"]


def parse_version(output: str) -> str:
    """The version in `mlflow --version`'s output; ValueError when there is none."""
    words = output.strip().split()
    if not words or not words[-1][:1].isdigit():
        raise ValueError(f"no version in {output.strip()[:80]!r}")
    return words[-1]


def tracking_uri(app: str, model: str, port: int = PORT) -> str:
    """The in-cluster URI of the server (the app's Service in its model's namespace)."""
    return f"http://{app}.{model}.svc.cluster.local:{port}"


def digest(text: str) -> str:
    """A digest of a file's content, for the layer's environment."""
    return hashlib.sha256(text.encode()).hexdigest()
