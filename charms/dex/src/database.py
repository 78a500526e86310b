"""Dex's database: asked of a MySQL charm on `relational-db`, read back cheaply.

The request is written by the `mysql_client` library (`MySQLRequirer`), whose
wire models load pydantic and the data platform's library. It is needed only
until the request is in our databag, so the charm builds it only then. The
answer is read with ops and json alone (`mysql_client.read_answer`): in the
v1 format the provider lists its responses under `requests`, each naming its
`resource` (our database), its `endpoints` (host:port, comma-separated) and
`secret-user`, a Juju secret granted to the relation that holds `username`
and `password`. A settled hook reads these without loading any of the library.
"""

from __future__ import annotations

import logging

import ops

from kubeflow_interfaces.mysql_client import InvalidAnswerError, MySQLConnection, read_answer

logger = logging.getLogger(__name__)


class DatabaseAnswerError(Exception):
    """The provider's answer cannot be used; the message says why, with no secret in it."""


def request_written(relation: ops.Relation, app: ops.Application) -> bool:
    """Whether our request is in our application databag (leader only: it reads that bag)."""
    return bool(relation.data[app].get("requests"))


def read_connection(
    model: ops.Model, relation: ops.Relation, database: str
) -> MySQLConnection | None:
    """The connection the provider gave for `database`; None until it has answered.

    An IPv6 address comes without its brackets: Dex adds them back with the
    port. Raises DatabaseAnswerError when the answer is there but unusable.
    """
    try:
        connection = read_answer(model, relation, database)
    except InvalidAnswerError as e:
        raise DatabaseAnswerError(str(e)) from None
    if connection is not None and ":" in connection.username:
        # Dex hands the driver a DSN, user:password@...: the user ends at the first colon.
        raise DatabaseAnswerError("its credentials secret holds a username with a colon")
    return connection
