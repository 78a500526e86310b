"""The data relations: the databases from `relational-db`, the bucket from `object-storage`.

`relational-db` (mysql_client, v1): the leader asks for both databases,
`mlpipeline` and `metadb`, in one request list; the provider answers each
under `requests` with its `endpoints` and `secret-user`, a Juju secret
holding `username` and `password`. Each database's account is read from its
own answer: a provider that gives one user per relation (ours) and one that
gives a user per database both work. The request is written with
`dpcharmlibs-interfaces`' models, imported only while it is not written
yet; the answers are read with json and ops alone (`mysql_client.read_answer`).

`object-storage` (s3): the leader asks for the bucket `mlpipeline`; the
connection comes from `S3Requirer`, the keys from the secret it names.

The API server and MLMD read the credentials from files (0600, see
`kfp_workloads`); their layers carry only a digest of the file
(`CONFIG_HASH`), so new credentials restart them and none enter the plan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any
from urllib.parse import urlsplit

import kfp_workloads as wl
import ops
from kfp_config import BUCKET

from kubeflow_interfaces.mysql_client import InvalidAnswerError, read_answer, write_request
from kubeflow_interfaces.s3 import InvalidS3DataError, S3Requirer

logger = logging.getLogger(__name__)

DATABASE = "relational-db"
OBJECT_STORAGE = "object-storage"
DATABASES = (wl.MLPIPELINE_DB, wl.METADATA_DB)
CONFIG_HASH = "CONFIG_HASH"


class DataError(Exception):
    """A provider's answer cannot be used; the message says why, with no secret in it."""


@dataclasses.dataclass(frozen=True)
class DataInputs:
    """The databases and object store as the relations give them, or why they are missing."""

    databases: dict[str, wl.Database] = dataclasses.field(default_factory=dict)
    store: wl.ObjectStore | None = None
    status: ops.StatusBase | None = None  # None: everything is there
    relation_missing: bool = False  # then the services that need them are stopped

    def files(self) -> dict[str, wl.File]:
        """The API server's and MLMD's config files, by container; empty until complete."""
        if self.status is not None or self.store is None:
            return {}
        api = wl.api_server_config(self.databases[wl.MLPIPELINE_DB], self.store)
        mlmd = wl.mlmd_server_config(self.databases[wl.METADATA_DB])
        return {api.container: api, mlmd.container: mlmd}


def request(charm: ops.CharmBase) -> None:
    """Leader: ask for the two databases and the bucket where not asked yet."""
    if not charm.unit.is_leader():
        return
    S3Requirer(charm, OBJECT_STORAGE, bucket=BUCKET).publish_request()
    relation = charm.model.get_relation(DATABASE)
    if relation is None or relation.data[charm.app].get("requests"):
        return
    write_request(charm.model, relation, charm.app, DATABASES)
    logger.info("asked %s for the databases %s", DATABASE, ", ".join(DATABASES))


def read(charm: ops.CharmBase) -> DataInputs:
    """The databases and the object store; else the status saying what is missing."""
    model = charm.model
    db_relation = model.get_relation(DATABASE)
    store_relation = model.get_relation(OBJECT_STORAGE)
    missing = [
        name
        for name, relation in ((DATABASE, db_relation), (OBJECT_STORAGE, store_relation))
        if relation is None
    ]
    if missing:
        return DataInputs(
            status=ops.BlockedStatus(f"missing relations: {', '.join(missing)}"),
            relation_missing=True,
        )
    assert db_relation is not None
    provider = db_relation.app.name if db_relation.app else "the database"
    databases: dict[str, wl.Database] = {}
    contents: dict[str, dict[str, str]] = {}  # a provider may give both one secret: read it once
    for name in DATABASES:
        try:
            database = read_database(model, db_relation, name, contents)
        except DataError as e:
            return DataInputs(status=ops.BlockedStatus(f"{DATABASE}: {provider}: {e}"))
        if database is None:
            return DataInputs(
                status=ops.WaitingStatus(f"waiting for the {name} database from {provider}")
            )
        databases[name] = database
    try:
        store = read_store(charm)
    except DataError as e:
        return DataInputs(databases, status=ops.BlockedStatus(f"{OBJECT_STORAGE}: {e}"))
    if store is None:
        assert store_relation is not None
        s3_app = store_relation.app.name if store_relation.app else "the object store"
        return DataInputs(
            databases, status=ops.WaitingStatus(f"waiting for the {BUCKET} bucket from {s3_app}")
        )
    return DataInputs(databases, store)


def read_database(
    model: ops.Model,
    relation: ops.Relation,
    name: str,
    contents: dict[str, dict[str, str]] | None = None,
) -> wl.Database | None:
    """The endpoint and account the provider gave for database `name`; None until answered.

    `contents` holds the secrets read so far this hook, by id: each is read
    once. Raises DataError when the answer is there but unusable.
    """
    try:
        answer = read_answer(model, relation, name, secrets=contents, name_it=True)
    except InvalidAnswerError as e:
        raise DataError(str(e)) from None
    if answer is None:
        return None
    if ":" in answer.host:
        raise DataError("its endpoint is an IPv6 address; give a host name or an IPv4 address")
    return wl.Database(
        host=answer.host, port=answer.port, user=answer.username, password=answer.password
    )


def read_store(charm: ops.CharmBase) -> wl.ObjectStore | None:
    """The object store's address and keys; None until the provider answered."""
    try:
        info = S3Requirer(charm, OBJECT_STORAGE, bucket=BUCKET).connection_fields()
    except InvalidS3DataError as e:
        raise DataError(str(e)) from None
    if info is None:
        return None
    if info.bucket != BUCKET:
        raise DataError(f"the bucket is {info.bucket!r}; Kubeflow Pipelines needs {BUCKET!r}")
    if info.path:
        raise DataError("a path prefix in the bucket is not supported")
    if not info.endpoint:
        raise DataError("the provider gave no endpoint")
    url = urlsplit(info.endpoint if "://" in info.endpoint else f"https://{info.endpoint}")
    try:
        port = url.port
    except ValueError:
        raise DataError(f"the endpoint {info.endpoint!r} has an invalid port") from None
    if url.scheme not in ("http", "https") or not url.hostname or url.path.strip("/"):
        raise DataError(f"the endpoint {info.endpoint!r} is not an http(s) host and port")
    secure = url.scheme == "https"
    return wl.ObjectStore(
        host=url.hostname,
        port=port or (443 if secure else 80),
        secure=secure,
        region=info.region or "",
        access_key=info.access_key,
        secret_key=info.secret_key,
    )


def with_hash(layer: ops.pebble.LayerDict, service: str, file: wl.File) -> ops.pebble.LayerDict:
    """`layer` with the digest of `file` in the service's environment: a new file restarts it."""
    digest = hashlib.sha256(file.content.encode()).hexdigest()
    services: dict[str, Any] = dict(layer.get("services", {}))
    svc: dict[str, Any] = dict(services[service])
    svc["environment"] = {**(svc.get("environment") or {}), CONFIG_HASH: digest}
    services[service] = svc
    return {**layer, "services": services}  # type: ignore[return-value]
