"""`mysql_client`: our provider API against the ecosystem's requirer, on the wire."""

from __future__ import annotations

import json

import ops
import pytest
from ops import testing

from kubeflow_interfaces import mysql_client
from kubeflow_interfaces.mysql_client import InvalidRequestError, MySQLProvider, MySQLRequirer

PROVIDER_META = {"name": "db", "provides": {"database": {"interface": "mysql_client"}}}
REQUIRER_META = {
    "name": "app",
    "requires": {"relational-db": {"interface": "mysql_client", "limit": 1}},
}


class ProviderCharm(ops.CharmBase):
    """Answers every request with a fixed user, as a database charm would."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = MySQLProvider(self, "database")
        framework.observe(self.on["database"].relation_changed, self._serve)

    def _serve(self, event: ops.RelationChangedEvent) -> None:
        try:
            requests = self.provider.requests(event.relation)
        except InvalidRequestError:
            self.unit.status = ops.BlockedStatus("bad request")
            return
        answered = self.provider.answered_databases(event.relation)
        for request in requests:
            if request.database in answered:
                continue
            self.provider.publish(
                request,
                username="relation-1",
                password="s3cret-pass",
                endpoints=["db-0.db-endpoints:3306"],
                version="8.4.2",
            )


class RequirerCharm(ops.CharmBase):
    """The ecosystem's requirer (dpcharmlibs-interfaces) through our wrapper."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.db = MySQLRequirer(self, "relational-db", "kfp")
        framework.observe(self.db.on.resource_created, self._created)

    def _created(self, event) -> None:
        connection = self.db.connection()
        assert connection is not None
        self.unit.status = ops.ActiveStatus(
            f"{connection.username}@{connection.host}:{connection.port}/{connection.database}"
        )


def _requirer_request() -> dict[str, str]:
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("relational-db", remote_app_name="db")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations=[relation])
    )
    return dict(out.get_relation(relation.id).local_app_data)


def _serve(request: dict[str, str]) -> tuple[dict[str, str], list[testing.Secret]]:
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("database", remote_app_name="app", remote_app_data=request)
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0),
        testing.State(leader=True, relations=[relation]),
    )
    return dict(out.get_relation(relation.id).local_app_data), list(out.secrets)


def test_ecosystem_requirer_gets_credentials_from_our_provider():
    request = _requirer_request()
    assert json.loads(request["requests"])[0]["resource"] == "kfp"

    answer, secrets = _serve(request)
    assert "s3cret-pass" not in json.dumps(answer), "credentials must not be in the databag"
    (secret,) = secrets
    assert secret.latest_content == {"username": "relation-1", "password": "s3cret-pass"}
    assert secret.remote_grants  # granted to the relation

    # The requirer sees our databag and the secret granted to it.
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation(
        "relational-db",
        remote_app_name="db",
        local_app_data=request,
        remote_app_data=answer,
    )
    shared = testing.Secret(tracked_content=secret.latest_content, id=secret.id)
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0),
        testing.State(leader=True, relations=[relation], secrets=[shared]),
    )
    assert out.unit_status == testing.ActiveStatus("relation-1@db-0.db-endpoints:3306/kfp")


def test_v0_requirer_is_answered_under_its_own_field():
    relation = mysql_client.relation_for_provider(database="katib", format_version="v0")
    answer, secrets = _serve(dict(relation.remote_app_data))
    assert answer["database"] == "katib"
    assert answer["secret-user"] == secrets[0].id
    assert answer["endpoints"] == "db-0.db-endpoints:3306"
    assert answer["version"] == "8.4.2"


def test_v1_helper_relation_parses_and_is_answered_once():
    relation = mysql_client.relation_for_provider(database="mlflow")
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    state = testing.State(leader=True, relations=[relation])
    out = ctx.run(ctx.on.relation_changed(relation, remote_unit=0), state)
    first = out.get_relation(relation.id).local_app_data
    assert json.loads(first["requests"])[0]["resource"] == "mlflow"
    # A second pass finds the request answered and changes nothing.
    again = ctx.run(ctx.on.relation_changed(out.get_relation(relation.id), remote_unit=0), out)
    assert again.get_relation(relation.id).local_app_data == first
    assert len(again.secrets) == 1


def test_empty_databag_has_no_requests():
    answer, secrets = _serve({})
    assert answer == {}
    assert secrets == []


@pytest.mark.parametrize(
    "bad",
    [
        {"version": "v1", "requests": "not json"},
        {"version": "v1", "requests": json.dumps([{"resource": 3, "request-id": []}])},
    ],
)
def test_malformed_request_raises(bad):
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("database", remote_app_name="app", remote_app_data=bad)
    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=0),
        testing.State(leader=True, relations=[relation]),
    )
    assert out.unit_status == testing.BlockedStatus("bad request")
    assert out.get_relation(relation.id).local_app_data == {}


def test_requirer_helper_relation_gives_connection():
    relation, secret = mysql_client.relation_for_requirer(database="kfp", password="pw-123")

    class Reader(RequirerCharm):
        def __init__(self, framework):
            super().__init__(framework)
            framework.observe(self.on.update_status, self._read)

        def _read(self, _):
            conn = self.db.connection()
            assert conn is not None
            self.unit.status = ops.ActiveStatus(f"{conn.username}:{conn.password}:{conn.port}")

    ctx = testing.Context(Reader, meta=REQUIRER_META)
    out = ctx.run(ctx.on.update_status(), testing.State(relations=[relation], secrets=[secret]))
    assert out.unit_status == testing.ActiveStatus("relation-1:pw-123:3306")


def test_connection_hides_password_in_repr():
    conn = mysql_client.MySQLConnection("h", 3306, "d", "u", "topsecret")
    assert "topsecret" not in repr(conn)


# --- read_answer: the answer read with json and ops alone ---------------------------------


class AnswerReader(ops.CharmBase):
    """Reads two databases' answers with `read_answer`, sharing one secret cache."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._read)

    def _read(self, _: ops.EventBase) -> None:
        relation = self.model.get_relation("relational-db")
        assert relation is not None
        secrets: dict[str, dict[str, str]] = {}
        try:
            answers = [
                mysql_client.read_answer(self.model, relation, name, secrets=secrets, name_it=True)
                for name in ("kfp", "metadb")
            ]
        except mysql_client.InvalidAnswerError as e:
            self.unit.status = ops.BlockedStatus(str(e))
            return
        self.unit.status = ops.ActiveStatus(
            " ".join(
                "-" if a is None else f"{a.username}@{a.host}:{a.port}/{a.database}:{a.version}"
                for a in answers
            )
        )


def _read_answers(*responses: dict[str, object], secrets=()) -> testing.State:
    relation = testing.Relation(
        "relational-db",
        interface="mysql_client",
        remote_app_name="mysql",
        remote_app_data={"version": "v1", "requests": json.dumps(list(responses))},
    )
    ctx = testing.Context(AnswerReader, meta=REQUIRER_META)
    return ctx.run(ctx.on.update_status(), testing.State(relations=[relation], secrets=secrets))


def test_read_answer_gives_each_database_its_connection_and_none_before_the_answer():
    secret = testing.Secret({"username": "relation-1", "password": "pw"})
    kfp = {"resource": "kfp", "endpoints": "[fd00::1]:3307,db-1:3306", "secret-user": secret.id}
    out = _read_answers(kfp, {"resource": "metadb"}, secrets=[secret])
    assert out.unit_status == testing.ActiveStatus("relation-1@fd00::1:3307/kfp:None -")
    answered = {**kfp, "resource": "metadb", "endpoints": "db-0", "version": "8.4.2"}
    out = _read_answers(kfp, answered, secrets=[secret])
    assert out.unit_status == testing.ActiveStatus(
        "relation-1@fd00::1:3307/kfp:None relation-1@db-0:3306/metadb:8.4.2"
    )


@pytest.mark.parametrize(
    ("responses", "message"),
    [
        ("not json", "its answer does not parse"),
        ({"resource": "kfp"}, "its answer is not a list of responses"),
        (
            [{"resource": "kfp", "endpoints": ["db-0"], "secret-user": "secret:x"}],
            "the kfp answer's endpoints or secret is not a string",
        ),
        (
            [{"resource": "kfp", "endpoints": "db-0:0", "secret-user": "secret:x"}],
            "its endpoint 'db-0:0' has an invalid port",
        ),
        (
            [{"resource": "kfp", "endpoints": "u@db-0:3306", "secret-user": "secret:x"}],
            "its endpoint 'u@db-0:3306' is not host:port",
        ),
        (
            [{"resource": "kfp", "endpoints": "db-0", "secret-user": "secret:gone"}],
            "the kfp credentials secret cannot be read",
        ),
    ],
)
def test_read_answer_refuses_an_unusable_answer(responses, message):
    raw = responses if isinstance(responses, str) else json.dumps(responses)
    relation = testing.Relation(
        "relational-db",
        interface="mysql_client",
        remote_app_name="mysql",
        remote_app_data={"version": "v1", "requests": raw},
    )
    ctx = testing.Context(AnswerReader, meta=REQUIRER_META)
    out = ctx.run(ctx.on.update_status(), testing.State(relations=[relation]))
    assert out.unit_status == testing.BlockedStatus(message)


def test_read_answer_refuses_a_secret_without_a_password():
    secret = testing.Secret({"username": "relation-1"})
    kfp = {"resource": "kfp", "endpoints": "db-0", "secret-user": secret.id}
    out = _read_answers(kfp, secrets=[secret])
    assert out.unit_status == testing.BlockedStatus(
        "the kfp credentials secret lacks a username or password"
    )
