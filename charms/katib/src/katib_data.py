"""The `relational-db` relation (mysql_client, v1): the DB manager's database `katib`.

The leader asks for the database `katib` (upstream's name: the DB manager's
default KATIB_MYSQL_DB_DATABASE); the provider answers under `requests`
with its `endpoints` and `secret-user`, a Juju secret holding `username`
and `password`. The request is written with `dpcharmlibs-interfaces`'
models, imported only while it is not written yet; the answer is read with
json and ops alone (`mysql_client.read_answer`). The account goes only
into the DB manager's 0600 env file (`katib_workloads.db_manager_env`),
never into a plan, a log or a status.
"""

from __future__ import annotations

import dataclasses
import logging

import katib_workloads as wl
import ops

from kubeflow_interfaces.mysql_client import InvalidAnswerError, read_answer, write_request

logger = logging.getLogger(__name__)

DATABASE = "relational-db"


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
    write_request(charm.model, relation, charm.app, [wl.DATABASE])
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
    try:
        answer = read_answer(model, relation, wl.DATABASE)
    except InvalidAnswerError as e:
        raise DataError(str(e)) from None
    if answer is None:
        return None
    if ":" in answer.host:
        raise DataError("its endpoint is an IPv6 address; give a host name or an IPv4 address")
    user, password = answer.username, answer.password
    if ":" in user:
        # The DB manager puts the account into its DSN unescaped (kubeflow/katib v0.18.0,
        # pkg/db/v1beta1/mysql/mysql.go:36); its driver (go-sql-driver/mysql v1.5.0,
        # dsn.go:296-310) splits the name from the password at the first ':'.
        raise DataError("the account's name holds ':', which the DB manager cannot pass on")
    return wl.Database(host=answer.host, port=answer.port, user=user, password=password)
