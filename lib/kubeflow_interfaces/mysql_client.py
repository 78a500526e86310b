"""The `mysql_client` interface: a database and a user of its own for each requirer.

The wire format is the data platform's `data_interfaces` format (v0 and v1),
spoken through the ecosystem's own library, `dpcharmlibs-interfaces`, so our
`mysql` charm serves the ecosystem's requirers and our requirers work with the
ecosystem's MySQL charms. This module is the charm-facing API on top of it:

- the requirer asks for a database name (v1: a JSON list of `requests`, each
  with `resource` and `request-id`; v0: a `database` field);
- the provider answers with `endpoints`, `version`, and `secret-user`, the
  URI of a Juju secret granted to the relation holding `username` and
  `password`: credentials never travel in clear.

`dpcharmlibs-interfaces` builds its pydantic models at import time (about
0.2 s), so it is imported only on the paths that read or write the wire; a
hook with nothing to do for this relation never pays for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import ops

if TYPE_CHECKING:
    from ops import testing

logger = logging.getLogger(__name__)

INTERFACE = "mysql_client"
DEFAULT_PORT = 3306


class InvalidRequestError(Exception):
    """A requirer's databag does not parse."""


class InvalidAnswerError(Exception):
    """A provider's answer cannot be used; the message says why, with no secret in it."""


@dataclass(frozen=True)
class DatabaseRequest:
    """One database asked for on one relation."""

    relation: ops.Relation
    database: str
    request_id: str | None = None
    _raw: Any = field(default=None, repr=False, compare=False)

    @property
    def app_name(self) -> str:
        """The requiring application."""
        return self.relation.app.name if self.relation.app else "unknown"


@dataclass(frozen=True)
class MySQLConnection:
    """What a requirer needs to connect."""

    host: str
    port: int
    database: str
    username: str
    password: str = field(repr=False)
    version: str | None = None


class MySQLProvider:
    """Provider side, for holistic charms: list requests, publish answers."""

    def __init__(self, charm: ops.CharmBase, endpoint: str = "database"):
        self._charm = charm
        self._endpoint = endpoint
        self._handler: Any = None

    @property
    def relations(self) -> list[ops.Relation]:
        """Every relation on the endpoint, in id order."""
        return sorted(self._charm.model.relations[self._endpoint], key=lambda r: r.id)

    def is_answered(self, relation: ops.Relation) -> bool:
        """Whether we have published anything on this relation (cheap: no wire parsing)."""
        return bool(relation.data[self._charm.app])

    def answers_all(self, relation: ops.Relation) -> bool:
        """Whether every database the requirer names has an answer from us.

        Cheap (JSON only, no wire models): it compares the names in the
        requirer's databag (v1: `resource` of each of `requests`; v0:
        `database`) with those we answered with a `secret-user`. Anything it
        cannot read counts as unanswered, for the full parse to report.
        """
        ours = relation.data[self._charm.app]
        if not ours or relation.app is None:
            return False
        theirs = relation.data[relation.app]
        if theirs.get("version") == "v1":
            asked = _resources(theirs.get("requests"))
            answered = _resources(ours.get("requests"), answered=True)
        else:
            asked = {theirs["database"]} if theirs.get("database") else set()
            answered = (
                {ours["database"]} if ours.get("database") and ours.get("secret-user") else set()
            )
        return asked is not None and answered is not None and asked <= answered

    def requests(self, relation: ops.Relation) -> list[DatabaseRequest]:
        """The databases the requirer asks for; raises InvalidRequestError if malformed."""
        from pydantic import ValidationError

        handler = self._get_handler()
        try:
            raw = handler.requests(relation)
        except (ValidationError, ValueError, TypeError) as e:
            raise InvalidRequestError(f"unreadable {INTERFACE} request") from e
        return [DatabaseRequest(relation, r.resource, r.request_id, r) for r in raw if r.resource]

    def answered_databases(self, relation: ops.Relation) -> set[str]:
        """Databases we already answered on this relation."""
        if not self.is_answered(relation):
            return set()
        from dpcharmlibs.interfaces import ResourceProviderModel

        try:
            responses = self._get_handler().responses(relation, ResourceProviderModel)
        except (ValueError, TypeError):
            return set()
        return {r.resource for r in responses if r.resource and r.secret_user}

    def published_credentials(self, relation: ops.Relation) -> tuple[str, str] | None:
        """The username and password already handed out on this relation, or None.

        Read back from the secret of an earlier answer, so that a further
        database on the same relation goes to the same user and password.
        """
        if not self.is_answered(relation):
            return None
        from dpcharmlibs.interfaces import ResourceProviderModel

        try:
            responses = self._get_handler().responses(relation, ResourceProviderModel)
        except (ValueError, TypeError, ops.SecretNotFoundError, ops.ModelError):
            return None
        for response in responses:
            if response.secret_user and response.username and response.password:
                return str(response.username), str(response.password)
        return None

    def publish(
        self,
        request: DatabaseRequest,
        *,
        username: str,
        password: str,
        endpoints: list[str],
        version: str,
    ) -> None:
        """Answer one request; the credentials go into a secret granted to the relation."""
        from dpcharmlibs.interfaces import ResourceProviderModel

        raw = request._raw
        before = set(self._published_secrets(request.relation))
        response = ResourceProviderModel(
            salt=raw.salt,
            request_id=request.request_id,
            resource=request.database,
            username=username,
            password=password,
            endpoints=",".join(endpoints),
            version=version,
        )
        handler = self._get_handler()
        handler.set_response(request.relation.id, response)
        # Record the request as handled: the requirer matches each response to
        # the request stored in our `data` field before it reports success.
        handler.compute_diff(request.relation, raw)
        # v0 requirers read the database name back under the field they wrote.
        original = getattr(raw, "original_field", "")
        if original:
            request.relation.data[self._charm.app][original] = request.database
        # A v0 requirer that names another database gets a new secret in place
        # of the old one: the old one must not outlive its answer.
        self._remove_secrets(before - set(self._published_secrets(request.relation)))

    def _remove_secrets(self, uris: set[str]) -> None:
        for uri in sorted(uris):
            try:
                self._charm.model.get_secret(id=uri).remove_all_revisions()
            except (ops.SecretNotFoundError, ops.ModelError):
                logger.debug("secret %s already gone", uri)

    def revoke(self, relation: ops.Relation) -> None:
        """Remove the credentials secrets we published on a relation that is going away."""
        self._remove_secrets(set(self._published_secrets(relation)))

    def _published_secrets(self, relation: ops.Relation) -> list[str]:
        data = relation.data[self._charm.app]
        uris = [data["secret-user"]] if data.get("secret-user") else []  # v0
        try:
            responses = json.loads(data.get("requests", "[]"))  # v1
        except json.JSONDecodeError:
            responses = []
        for response in responses if isinstance(responses, list) else []:
            if isinstance(response, dict) and isinstance(response.get("secret-user"), str):
                uris.append(response["secret-user"])
        return uris

    def _get_handler(self) -> Any:
        if self._handler is None:
            from dpcharmlibs.interfaces import (
                RequirerCommonModel,
                ResourceProviderEventHandler,
            )

            self._handler = ResourceProviderEventHandler(
                self._charm, self._endpoint, RequirerCommonModel
            )
        return self._handler


def _resources(raw: str | None, *, answered: bool = False) -> set[str] | None:
    """The `resource` names in a v1 `requests` list (answers only: with a `secret-user`)."""
    try:
        items = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return {
        i["resource"]
        for i in items
        if isinstance(i.get("resource"), str) and (not answered or i.get("secret-user"))
    }


class MySQLRequirer:
    """Requirer side: ask for one database, read the connection back.

    Wraps `dpcharmlibs.interfaces.ResourceRequirerEventHandler`, which must see
    the relation-created event to write the request, so it is built eagerly.
    """

    def __init__(self, charm: ops.CharmBase, endpoint: str, database: str):
        from dpcharmlibs.interfaces import (
            RequirerCommonModel,
            ResourceProviderModel,
            ResourceRequirerEventHandler,
        )

        self._charm = charm
        self._endpoint = endpoint
        self._database = database
        self.handler = ResourceRequirerEventHandler(
            charm, endpoint, [RequirerCommonModel(resource=database)], ResourceProviderModel
        )

    @property
    def on(self) -> Any:
        """The library's events (`resource_created`, `endpoints_changed`, ...)."""
        return self.handler.on

    def ensure_requested(self) -> bool:
        """Write our request now if the leader's databag lacks it; True if written.

        The library writes it when the relation is created, on the unit that
        leads then. A unit that became leader after that (or a relation made
        while no unit led) never sees that event again, so a charm calls this
        from its reconcile. The request is built with the library's own
        models, as its relation-created handler builds it.
        """
        relation = self._charm.model.get_relation(self._endpoint)
        if relation is None or not self._charm.unit.is_leader():
            return False
        if relation.data[self._charm.app].get("requests"):
            return False
        write_request(self._charm.model, relation, self._charm.app, [self._database])
        return True

    def connection(self) -> MySQLConnection | None:
        """The connection data, or None until the provider has answered."""
        relation = self._charm.model.get_relation(self._endpoint)
        if relation is None or relation.app is None:
            return None
        try:
            model = self.handler.interface.build_model(relation.id, component=relation.app)
        except (ValueError, TypeError) as e:
            logger.warning("unreadable %s response: %s", INTERFACE, type(e).__name__)
            return None
        for response in model.requests:
            if response.resource != self._database or not response.endpoints:
                continue
            if not response.username or not response.password:
                return None
            host, _, port = response.endpoints.split(",")[0].partition(":")
            return MySQLConnection(
                host=host,
                port=int(port or 3306),
                database=self._database,
                username=response.username,
                password=response.password,
                version=response.version,
            )
        return None


def write_request(
    model: ops.Model, relation: ops.Relation, app: ops.Application, databases: Sequence[str]
) -> None:
    """Leader: ask for `databases` in one v1 request list, in our application databag.

    The request is built with the library's own models, as its
    relation-created handler builds it; this imports the library.
    """
    from dpcharmlibs.interfaces import (
        OpsRelationRepository,
        RequirerCommonModel,
        RequirerDataContractV1,
        gen_hash,
        write_model,
    )

    requests = [RequirerCommonModel(resource=name) for name in databases]
    for request in requests:
        request.request_id = gen_hash(request.resource, request.salt)
    write_model(
        OpsRelationRepository(model, relation, app),
        RequirerDataContractV1[RequirerCommonModel](version="v1", requests=requests),
    )


# --- reading an answer cheaply ----------------------------------------------


def read_answer(
    model: ops.Model,
    relation: ops.Relation,
    database: str,
    *,
    secrets: dict[str, dict[str, str]] | None = None,
    name_it: bool = False,
) -> MySQLConnection | None:
    """The connection the provider gave for `database` (v1 answer); None until answered.

    Reads the provider's `requests` with json and ops alone, so a settled
    hook loads none of `dpcharmlibs-interfaces`: the answer naming
    `database` as its `resource` gives `endpoints` (host:port, comma-separated,
    the first is used; an IPv6 address loses its brackets) and `secret-user`,
    a Juju secret holding `username` and `password`. `secrets` keeps the
    contents read so far by secret id, for a caller reading several databases
    in one hook; `name_it` names the database in the errors. Raises
    InvalidAnswerError when the answer is there but unusable.
    """
    if relation.app is None:
        return None
    raw = relation.data[relation.app].get("requests")
    if not raw:
        return None
    try:
        responses: Any = json.loads(raw)
    except ValueError:
        raise InvalidAnswerError("its answer does not parse") from None
    if not isinstance(responses, list):
        raise InvalidAnswerError("its answer is not a list of responses")
    its = f"the {database}" if name_it else "its"
    for response in responses:
        if not isinstance(response, dict) or response.get("resource") != database:
            continue
        endpoints, secret_id = response.get("endpoints"), response.get("secret-user")
        if not endpoints or not secret_id:
            return None  # the database is not ready yet
        if not isinstance(endpoints, str) or not isinstance(secret_id, str):
            raise InvalidAnswerError(f"{its} answer's endpoints or secret is not a string")
        host, port = _first_endpoint(endpoints)
        username, password = _credentials(
            model, secret_id, {} if secrets is None else secrets, its
        )
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


def _credentials(
    model: ops.Model, secret_id: str, secrets: dict[str, dict[str, str]], its: str
) -> tuple[str, str]:
    """The username and password in the secret, read at most once (`secrets` keeps it by id)."""
    if secret_id not in secrets:
        try:
            secrets[secret_id] = model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            raise InvalidAnswerError(f"{its} credentials secret cannot be read") from None
    username, password = secrets[secret_id].get("username"), secrets[secret_id].get("password")
    if not username or not password:
        raise InvalidAnswerError(f"{its} credentials secret lacks a username or password")
    return username, password


def _first_endpoint(endpoints: str) -> tuple[str, int]:
    first = endpoints.split(",")[0].strip()
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() or c in "/@?#[]" for c in host):
        raise InvalidAnswerError(f"its endpoint {first!r} is not host:port")
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidAnswerError(f"its endpoint {first!r} has an invalid port")
    return host, int(port)


# --- helpers for charm tests -------------------------------------------------


def relation_for_provider(
    endpoint: str = "database",
    *,
    database: str = "app-db",
    remote_app_name: str = "requirer",
    format_version: Literal["v1", "v0"] = "v1",
    **kwargs: Any,
) -> testing.Relation:
    """A relation as the provider sees it, with a request in the requirer's databag.

    v1 is what `dpcharmlibs-interfaces` requirers write; v0 what the older
    `data_interfaces` requirers write.
    """
    from ops import testing

    secrets = json.dumps(["username", "password", "tls", "tls-ca", "uris", "read-only-uris"])
    if format_version == "v0":
        data = {"database": database, "requested-secrets": secrets}
    else:
        request = {"resource": database, "request-id": f"req-{database}", "salt": "s" * 16}
        data = {"version": "v1", "requests": json.dumps([request])}
    return testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data=data,
        **kwargs,
    )


def relation_for_requirer(
    endpoint: str = "relational-db",
    *,
    database: str = "app-db",
    username: str = "relation-1",
    password: str = "password",  # noqa: S107 - test data
    endpoints: str = "mysql-0.mysql-endpoints:3306",
    version: str = "8.4.0",
    remote_app_name: str = "mysql",
    **kwargs: Any,
) -> tuple[testing.Relation, testing.Secret]:
    """A relation as a requirer sees it once the provider answered (v1), and its secret."""
    from ops import testing

    secret = testing.Secret(tracked_content={"username": username, "password": password})
    response = {
        "resource": database,
        "request-id": f"req-{database}",
        "salt": "s" * 16,
        "endpoints": endpoints,
        "version": version,
        "secret-user": secret.id,
    }
    relation = testing.Relation(
        endpoint,
        interface=INTERFACE,
        remote_app_name=remote_app_name,
        remote_app_data={"version": "v1", "requests": json.dumps([response])},
        **kwargs,
    )
    return relation, secret
