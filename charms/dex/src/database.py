"""Dex's database: asked of a MySQL charm on `relational-db`, read back cheaply.

The request is written by the `mysql_client` library (`MySQLRequirer`), whose
wire models load pydantic and the data platform's library. It is needed only
until the request is in our databag, so the charm builds it only then. The
answer is read here with ops and json alone: in the v1 format the provider
lists its responses under `requests`, each naming its `resource` (our
database), its `endpoints` (host:port, comma-separated) and `secret-user`, a
Juju secret granted to the relation that holds `username` and `password`.
A settled hook reads these without loading any of the library.
"""

from __future__ import annotations

import json
import logging

import ops

from kubeflow_interfaces.mysql_client import MySQLConnection

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3306


class DatabaseAnswerError(Exception):
    """The provider's answer cannot be used; the message says why, with no secret in it."""


def request_written(relation: ops.Relation, app: ops.Application) -> bool:
    """Whether our request is in our application databag (leader only: it reads that bag)."""
    return bool(relation.data[app].get("requests"))


def read_connection(
    model: ops.Model, relation: ops.Relation, database: str
) -> MySQLConnection | None:
    """The connection the provider gave for `database`; None until it has answered.

    Raises DatabaseAnswerError when the answer is there but unusable.
    """
    if relation.app is None:
        return None
    raw = relation.data[relation.app].get("requests")
    if not raw:
        return None
    try:
        responses = json.loads(raw)
    except ValueError:
        raise DatabaseAnswerError("its answer does not parse") from None
    if not isinstance(responses, list):
        raise DatabaseAnswerError("its answer is not a list of responses")
    for response in responses:
        if not isinstance(response, dict) or response.get("resource") != database:
            continue
        endpoints, secret_id = response.get("endpoints"), response.get("secret-user")
        if not endpoints or not secret_id:
            return None  # the database is not ready yet
        if not isinstance(endpoints, str) or not isinstance(secret_id, str):
            raise DatabaseAnswerError("its endpoints or credentials field is not a string")
        host, port = _endpoint(endpoints)
        username, password = _credentials(model, secret_id)
        version = response.get("version")
        return MySQLConnection(
            host=host,
            port=port,
            database=database,
            username=username,
            password=password,
            version=version if isinstance(version, str) else None,
        )
    return None


def _endpoint(endpoints: str) -> tuple[str, int]:
    first = endpoints.split(",")[0].strip()
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # an IPv6 address; Dex adds the brackets back with the port
    if not host or any(c.isspace() or c in "/@?#[]" for c in host):
        raise DatabaseAnswerError(f"its endpoint {first!r} is not host:port")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise DatabaseAnswerError(f"its endpoint {first!r} has an invalid port")
    return host, int(port)


def _credentials(model: ops.Model, secret_id: str) -> tuple[str, str]:
    try:
        content = model.get_secret(id=secret_id).get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError):
        raise DatabaseAnswerError("its credentials secret cannot be read") from None
    username, password = content.get("username"), content.get("password")
    if not username or not password:
        raise DatabaseAnswerError("its credentials secret lacks a username or password")
    if ":" in username:
        # Dex hands the driver a DSN, user:password@...: the user ends at the first colon.
        raise DatabaseAnswerError("its credentials secret holds a username with a colon")
    return username, password
