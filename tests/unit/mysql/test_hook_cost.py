"""A settled update-status hook of the mysql charm runs no SQL and loads no wire models.

The answered relations are made in this session; the settled hook runs in a
fresh interpreter, since this session has imported dpcharmlibs already.
"""

from __future__ import annotations

import json

import pytest
from charm_loader import run_fresh
from ops import testing
from unit.mysql.helpers import credentials_secret, mysql_container, storage

from kubeflow_interfaces import mysql_client

SCRIPT = r"""
import json, pathlib, sys
from charm_loader import load_charm
from hook_calls import record
from ops import testing
from unit.mysql.helpers import credentials_secret, mysql_container, storage

given = json.loads(sys.stdin.read())
charm = load_charm("mysql")
database = testing.Relation(
    "database",
    interface="mysql_client",
    id=given["id"],
    remote_app_name="kfp",
    remote_app_data=given["remote"],
    local_app_data=given["local"],
)
peers = testing.PeerRelation("mysql-peers", id=given["id"] + 1, local_app_data=given["peers"])
secret = testing.Secret(
    tracked_content=given["secret"], id=given["secret_id"], owner="app",
    remote_grants={given["id"]: {"kfp"}},
)
state = testing.State(
    leader=True,
    containers={mysql_container(pathlib.Path(given["tmp"]))},
    storages={storage()},
    secrets={credentials_secret(), secret},
    relations={database, peers},
    opened_ports={testing.TCPPort(3306)},
)
ctx = testing.Context(charm.MySQLCharm)
calls = record()
out = ctx.run(ctx.on.update_status(), state)
print(json.dumps({
    **calls,
    "heavy": sorted(m for m in ("dpcharmlibs", "pydantic") if m in sys.modules),
    "commands": [list(e.command) for e in ctx.exec_history.get("mysql", [])],
    "unchanged": dict(out.get_relation(database.id).local_app_data) == given["local"]
        and dict(out.get_relation(peers.id).local_app_data) == given["peers"],
    "status": f"{out.unit_status.name}: {out.unit_status.message}",
}))
"""


@pytest.mark.parametrize("version", ["v1", "v0"])
def test_settled_update_status_is_light(ctx, tmp_path, version):
    relation = mysql_client.relation_for_provider(
        database="kfp", remote_app_name="kfp", format_version=version
    )
    peers = testing.PeerRelation("mysql-peers", id=relation.id + 1)
    state = testing.State(
        leader=True,
        containers={mysql_container(tmp_path)},
        storages={storage()},
        secrets={credentials_secret()},
        relations={relation, peers},
    )
    served = ctx.run(ctx.on.relation_changed(relation), state)
    (secret,) = [s for s in served.secrets if s.remote_grants.get(relation.id)]
    given = {
        "id": relation.id,
        "remote": dict(relation.remote_app_data),
        "local": dict(served.get_relation(relation.id).local_app_data),
        "peers": dict(served.get_relation(peers.id).local_app_data),
        "secret": dict(secret.latest_content or {}),
        "secret_id": secret.id,
        "tmp": str(tmp_path),
    }
    assert set(given["peers"]) == {
        "data-unit",
        "relation-users-checked",
        "relation-grants-checked",
    }

    result = run_fresh(SCRIPT, stdin=json.dumps(given))
    assert result.pop("log") == []
    # What the hook asks Juju: no status-get, each secret read once.
    assert result.pop("tools") == [
        "config-get",
        "secret-get",
        "secret-get",
        "storage-list",
        "relation-ids",
        "relation-list",
        "relation-get",
        "opened-ports",
        "relation-ids",
        "relation-ids",
        "relation-list",
        "relation-get",
        "relation-get",
        "goal-state",
        "status-set",
        "status-set",
    ]
    # Pebble is asked once whether mysqld runs and is ready: the status
    # reuses what the reconcile found.
    assert result.pop("pebble") == [
        "can_connect",
        "pull",
        "pull",
        "exists",
        "get_plan",
        "get_services",
        "get_checks",
    ]
    assert result == {
        "heavy": [],
        "commands": [],
        "unchanged": True,
        "status": "active: primary",
    }
