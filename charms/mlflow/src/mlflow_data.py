"""The database (`relational-db`, mysql_client) and the artifact store (`object-storage`, s3).

The leader asks for the database `mlflow` and for the bucket and path the
config names, with our requirer key `profiles-read: "true"`: minio then
lets every profile read (and list) that bucket/path with the profile's own
keys, so notebooks and KServe read registered models straight from the
bucket. Both answers are read without pydantic (`mysql_client.read_answer`,
`S3Requirer.connection_fields`). The accounts go only into the server's
0600 secrets file (`mlflow_workload.secrets_env`), never into a plan, a
log or a status.
"""

from __future__ import annotations

import dataclasses
import logging

import mlflow_workload as wl
import ops
from mlflow_config import MlflowConfig

from kubeflow_interfaces.mysql_client import (
    InvalidAnswerError,
    MySQLConnection,
    read_answer,
    write_request,
)
from kubeflow_interfaces.s3 import InvalidS3DataError, S3ConnectionFields, S3Requirer

logger = logging.getLogger(__name__)

DATABASE = "relational-db"
STORAGE = "object-storage"


@dataclasses.dataclass(frozen=True)
class DataInputs:
    """The database and the object store as the relations give them, or why not."""

    database: MySQLConnection | None = None
    storage: S3ConnectionFields | None = None
    statuses: tuple[ops.StatusBase, ...] = ()
    missing: tuple[str, ...] = ()  # relations that are not there: the server is stopped

    @property
    def complete(self) -> bool:
        """Whether both answers are there."""
        return self.database is not None and self.storage is not None


def s3_requirer(charm: ops.CharmBase, config: MlflowConfig) -> S3Requirer:
    """The `object-storage` requirer asking for the configured bucket and path."""
    return S3Requirer(
        charm,
        STORAGE,
        bucket=config.artifact_bucket,
        path=config.path or None,
        profiles_read=True,
    )


def request(charm: ops.CharmBase, config: MlflowConfig) -> None:
    """Leader: ask for the database and the bucket where not asked (or asked differently)."""
    if not charm.unit.is_leader():
        return
    relation = charm.model.get_relation(DATABASE)
    if relation is not None and not relation.data[charm.app].get("requests"):
        write_request(charm.model, relation, charm.app, [wl.DATABASE])
        logger.info("asked %s for the database %s", DATABASE, wl.DATABASE)
    storage = s3_requirer(charm, config)
    relation = storage.relation
    if relation is not None:
        storage.publish_request()
        databag = relation.data[charm.app]
        if not config.path and "path" in databag:
            del databag["path"]  # the request's writer leaves a path it no longer asks for


def read(charm: ops.CharmBase, config: MlflowConfig) -> DataInputs:
    """Both answers; else the statuses saying what is missing or wrong."""
    missing = tuple(r for r in (DATABASE, STORAGE) if charm.model.get_relation(r) is None)
    statuses: list[ops.StatusBase] = []
    if missing:
        statuses.append(ops.BlockedStatus(f"missing relations: {', '.join(missing)}"))
    database = storage = None
    relation = charm.model.get_relation(DATABASE)
    if relation is not None:
        provider = relation.app.name if relation.app else "the database"
        try:
            database = read_answer(charm.model, relation, wl.DATABASE)
        except InvalidAnswerError as e:
            statuses.append(ops.BlockedStatus(f"{DATABASE}: {provider}: {e}"))
        else:
            if database is None:
                statuses.append(
                    ops.WaitingStatus(f"waiting for the {wl.DATABASE} database from {provider}")
                )
    requirer = s3_requirer(charm, config)
    relation = requirer.relation
    if relation is not None:
        provider = relation.app.name if relation.app else "the object store"
        try:
            storage = requirer.connection_fields()
        except InvalidS3DataError as e:
            statuses.append(ops.BlockedStatus(f"{STORAGE}: {provider}: {e}"))
        else:
            if storage is None:
                statuses.append(ops.WaitingStatus(f"waiting for a bucket from {provider}"))
    return DataInputs(database, storage, tuple(statuses), missing)


def settings(
    config: MlflowConfig, database: MySQLConnection, storage: S3ConnectionFields
) -> wl.ServerSettings:
    """What the server is started with, from the config and both answers."""
    return wl.ServerSettings(
        db_host=database.host,
        db_port=database.port,
        db_user=database.username,
        db_password=database.password,
        s3_endpoint=storage.endpoint or None,
        s3_bucket=storage.bucket,
        s3_path=storage.path,
        s3_region=storage.region or None,
        s3_access_key=storage.access_key,
        s3_secret_key=storage.secret_key,
        s3_ca_file=wl.CA_FILE if storage.tls_ca_chain else None,
        workers=config.workers,
        request_timeout=config.request_timeout,
    )
