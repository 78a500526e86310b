"""Building blocks of the mlflow charm's unit tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from charm_loader import load_charm
from ops import testing

from kubeflow_interfaces import mysql_client, s3

CHARM = load_charm("mlflow")
# The charm's own modules, as it imported them.
import mlflow_charm  # noqa: E402
import mlflow_data  # noqa: E402
import mlflow_profiles  # noqa: E402
import mlflow_workload as workload  # noqa: E402

MODEL = "kubeflow"
APP = "mlflow"
PEERS = "mlflow-peers"
DB_PASSWORD = "db-Pass:word/7"  # URL-special characters on purpose
S3_SECRET_KEY = "s3-Secret-Key-9"
VERSION = "2.22.0"
MINIO = "http://minio.kubeflow.svc.cluster.local:9000"


def db_relation(**kwargs: Any) -> tuple[testing.Relation, testing.Secret]:
    """Mysql's answer for the database mlflow."""
    return mysql_client.relation_for_requirer(
        mlflow_data.DATABASE,
        database="mlflow",
        username="relation-7",
        password=DB_PASSWORD,
        endpoints="mysql-primary.kubeflow.svc:3306",
        **kwargs,
    )


def s3_relation(**kwargs: Any) -> tuple[testing.Relation, testing.Secret]:
    """Minio's answer: the bucket and path asked for, keys in a secret."""
    options: dict[str, Any] = {
        "endpoint_url": MINIO,
        "bucket": "mlflow",
        "path": "artifacts",
        "access_key": "relation-8",
        "secret_key": S3_SECRET_KEY,
    }
    relation, secret = s3.relation_for_requirer(mlflow_data.STORAGE, **(options | kwargs))
    assert secret is not None
    return relation, secret


def version_exec(version: str = VERSION) -> testing.Exec:
    """`mlflow --version` as click prints it."""
    return testing.Exec(["mlflow", "--version"], stdout=f"mlflow, version {version}\n")


def migrate_exec(return_code: int = 0, stderr: str = "") -> testing.Exec:
    """The migration (`/bin/sh -c ...`), succeeding unless told otherwise."""
    return testing.Exec(["/bin/sh", "-c"], return_code=return_code, stderr=stderr)


def container(
    *,
    can_connect: bool = True,
    version: str = VERSION,
    migrate: testing.Exec | None = None,
    **kwargs: Any,
) -> testing.Container:
    """The server's container, answering `mlflow --version` and the migration."""
    execs = {version_exec(version), migrate or migrate_exec()}
    return testing.Container(workload.CONTAINER, can_connect=can_connect, execs=execs, **kwargs)


def state(
    leader: bool = True,
    *,
    db: bool = True,
    storage: bool = True,
    peer_data: dict[str, str] | None = None,
    **kwargs: Any,
) -> testing.State:
    """A unit with its peer relation, and by default the database and the bucket."""
    relations: set[testing.Relation] = {
        testing.PeerRelation(PEERS, local_app_data=peer_data or {})
    }
    secrets: set[testing.Secret] = set()
    if db:
        relation, secret = db_relation()
        relations.add(relation)
        secrets.add(secret)
    if storage:
        relation, secret = s3_relation()
        relations.add(relation)
        secrets.add(secret)
    relations |= set(kwargs.pop("relations", ()))
    secrets |= set(kwargs.pop("secrets", ()))
    defaults: dict[str, Any] = {
        "leader": leader,
        "containers": {container()},
        "relations": relations,
        "secrets": secrets,
        "model": testing.Model(name=MODEL),
    }
    return testing.State(**(defaults | kwargs))


def peer(out: testing.State) -> testing.PeerRelation:
    """The peer relation in the output state."""
    (relation,) = [r for r in out.relations if r.endpoint == PEERS]
    assert isinstance(relation, testing.PeerRelation)
    return relation


def relation(out: testing.State, endpoint: str) -> testing.Relation:
    """The one relation on an endpoint in the output state."""
    (found,) = [r for r in out.relations if r.endpoint == endpoint]
    return found  # type: ignore[return-value]


def running(out: testing.State) -> bool:
    """Whether the server runs in the output state."""
    statuses = out.get_container(workload.CONTAINER).service_statuses
    return statuses.get(workload.SERVICE) == testing.pebble.ServiceStatus.ACTIVE


def replace_container(state: testing.State, new: testing.Container) -> testing.State:
    """The state with the server's container replaced."""
    return dataclasses.replace(state, containers={new})


__all__ = ["CHARM", "mlflow_charm", "mlflow_data", "mlflow_profiles", "workload"]
