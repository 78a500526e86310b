"""The `relational-db` relation (mysql_client, v1): the DB manager's database `katib`.

The leader asks for the database `katib` (upstream's name: the DB manager's
default KATIB_MYSQL_DB_DATABASE); the provider answers under `requests`
with its `endpoints` and `secret-user`, a Juju secret holding `username`
and `password`. The request is written with `dpcharmlibs-interfaces`'
models, imported only while it is not written yet; the answer is read with
json and ops alone. The account goes only into the DB manager's 0600 env
file (`katib_workloads.db_manager_env`), never into a plan, a log or a
status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import katib_workloads as wl
import ops

logger = logging.getLogger(__name__)

DATABASE = "relational-db"
DEFAULT_MYSQL_PORT = 3306


class DataError(Exception):
    """A provider's answer cannot be used; the message says why, with no secret in it."""


@dataclasses.dataclass(frozen=True)
class DataInputs:
    """The database as the relation gives it, or why it is missing."""

    database: wl.Database | None = None
    status: ops.StatusBase | None = None  # None: the database is there
    relation_missing: bool = False  # then the DB manager is stopped


def request(charm: ops.CharmBase) -> None:
    """Leader: ask for the database where not asked yet."""
    relation = charm.model.get_relation(DATABASE)
    if not charm.unit.is_leader() or relation is None or relation.data[charm.app].get("requests"):
        return
    from dpcharmlibs.interfaces import (
        OpsRelationRepository,
        RequirerCommonModel,
        RequirerDataContractV1,
        gen_hash,
        write_model,
    )

    request = RequirerCommonModel(resource=wl.DATABASE)
    request.request_id = gen_hash(request.resource, request.salt)
    write_model(
        OpsRelationRepository(charm.model, relation, charm.app),
        RequirerDataContractV1[RequirerCommonModel](version="v1", requests=[request]),
    )
    logger.info("asked %s for the database %s", DATABASE, wl.DATABASE)


def read(charm: ops.CharmBase) -> DataInputs:
    """The database; else the status saying what is missing."""
    relation = charm.model.get_relation(DATABASE)
    if relation is None:
        return DataInputs(
            status=ops.BlockedStatus(f"missing relations: {DATABASE}"), relation_missing=True
        )
    provider = relation.app.name if relation.app else "the database"
    try:
        database = read_database(charm.model, relation)
    except DataError as e:
        return DataInputs(status=ops.BlockedStatus(f"{DATABASE}: {provider}: {e}"))
    if database is None:
        return DataInputs(
            status=ops.WaitingStatus(f"waiting for the {wl.DATABASE} database from {provider}")
        )
    return DataInputs(database)


def read_database(model: ops.Model, relation: ops.Relation) -> wl.Database | None:
    """The endpoint and account the provider gave; None until answered.

    Raises DataError when the answer is there but unusable.
    """
    if relation.app is None:
        return None
    raw = relation.data[relation.app].get("requests")
    if not raw:
        return None
    try:
        responses: Any = json.loads(raw)
    except ValueError:
        raise DataError("its answer does not parse") from None
    if not isinstance(responses, list):
        raise DataError("its answer is not a list of responses")
    for response in responses:
        if not isinstance(response, dict) or response.get("resource") != wl.DATABASE:
            continue
        endpoints, secret_id = response.get("endpoints"), response.get("secret-user")
        if not endpoints or not secret_id:
            return None  # not ready yet
        if not isinstance(endpoints, str) or not isinstance(secret_id, str):
            raise DataError("the answer's endpoints or secret is not a string")
        host, port = _mysql_endpoint(endpoints)
        try:
            content = model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise DataError("the credentials secret cannot be read") from None
        user, password = content.get("username"), content.get("password")
        if not user or not password:
            raise DataError("the credentials secret lacks a username or password")
        if ":" in user:
            # The DB manager puts the account into its DSN unescaped (kubeflow/katib v0.18.0,
            # pkg/db/v1beta1/mysql/mysql.go:36); its driver (go-sql-driver/mysql v1.5.0,
            # dsn.go:296-310) splits the name from the password at the first ':'.
            raise DataError("the account's name holds ':', which the DB manager cannot pass on")
        return wl.Database(host=host, port=port, user=user, password=password)
    return None


def _mysql_endpoint(endpoints: str) -> tuple[str, int]:
    first = endpoints.split(",")[0].strip()
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "")
    if not host or any(c.isspace() or c in "/@?#[]" for c in host):
        raise DataError(f"its endpoint {first!r} is not host:port")
    if not port:
        return host, DEFAULT_MYSQL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise DataError(f"its endpoint {first!r} has an invalid port")
    return host, int(port)
