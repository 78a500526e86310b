"""`mysql_client`: dpcharmlibs-interfaces' own requirer against our real mysql charm.

The requirer is the library's `ResourceRequirerEventHandler` used directly,
as the data platform's client charms use it, not our wrapper around it
(tests/lib/test_mysql_client.py runs the wrapper against our provider API).
"""

from __future__ import annotations

from typing import Any, ClassVar

import ops
from dpcharmlibs.interfaces import (
    RequirerCommonModel,
    ResourceProviderModel,
    ResourceRequirerEventHandler,
)
from ops import testing
from unit.mysql.helpers import CHARM, credentials_secret, mysql_container, sql_sent, storage

REQUIRER_META = {
    "name": "kfp-db",
    "requires": {"relational-db": {"interface": "mysql_client", "limit": 1}},
}


class DatabaseClient(ops.CharmBase):
    """A client charm asking for database `kfp` through the library."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.db = ResourceRequirerEventHandler(
            self, "relational-db", [RequirerCommonModel(resource="kfp")], ResourceProviderModel
        )
        framework.observe(self.db.on.resource_created, self._on_created)

    def _on_created(self, event: Any) -> None:
        response = event.response
        type(self).seen.append(
            {
                "resource": response.resource,
                "username": _plain(response.username),
                "password": _plain(response.password),
                "endpoints": response.endpoints,
                "version": response.version,
            }
        )
        self.unit.status = ops.ActiveStatus(f"{_plain(response.username)}@{response.endpoints}")


def _plain(value: Any) -> str | None:
    """The library's secret-backed fields may come as pydantic SecretStr."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_library_requirer_gets_a_database_and_user_from_mysql(tmp_path):
    DatabaseClient.seen = []
    client_ctx = testing.Context(DatabaseClient, meta=REQUIRER_META)
    theirs = testing.Relation("relational-db", remote_app_name="mysql")
    asked = client_ctx.run(
        client_ctx.on.relation_created(theirs), testing.State(leader=True, relations={theirs})
    )
    theirs = asked.get_relation(theirs.id)
    assert isinstance(theirs, testing.Relation)
    request = dict(theirs.local_app_data)

    # Our mysql serves the request: a database, a user of its own, a secret.
    mysql_ctx = testing.Context(CHARM.MySQLCharm)
    ours = testing.Relation(
        "database", interface="mysql_client", remote_app_name="kfp-db", remote_app_data=request
    )
    served = mysql_ctx.run(
        mysql_ctx.on.relation_changed(ours, remote_unit=0),
        testing.State(
            leader=True,
            containers={mysql_container(tmp_path)},
            storages={storage()},
            secrets={credentials_secret()},
            relations={ours},
        ),
    )
    sql = sql_sent(mysql_ctx)
    user = f"relation-{ours.id}"
    assert "CREATE DATABASE IF NOT EXISTS `kfp`" in sql
    answer = dict(served.get_relation(ours.id).local_app_data)
    shared = [s for s in served.secrets if s.remote_grants.get(ours.id)]
    assert len(shared) == 1
    content = dict(shared[0].latest_content or {})
    assert content["password"] not in str(answer)  # only in the secret

    # The library reads the answer and the secret granted to it: resource created.
    theirs = testing.Relation(
        "relational-db",
        id=theirs.id,
        remote_app_name="mysql",
        local_app_data=request,
        local_unit_data=dict(theirs.local_unit_data),
        remote_app_data=answer,
    )
    seen_secret = testing.Secret(tracked_content=content, id=shared[0].id)
    out = client_ctx.run(
        client_ctx.on.relation_changed(theirs, remote_unit=0),
        testing.State(leader=True, relations={theirs}, secrets={seen_secret}),
    )

    endpoints = f"mysql-0.mysql-endpoints.{served.model.name}.svc.cluster.local:3306"
    (info,) = DatabaseClient.seen
    assert info == {
        "resource": "kfp",
        "username": user,
        "password": content["password"],
        "endpoints": endpoints,
        "version": "8.4.3",
    }
    assert out.unit_status == testing.ActiveStatus(f"{user}@{endpoints}")
