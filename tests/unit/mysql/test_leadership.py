"""Which unit serves: the one whose data directory holds the databases, whoever leads."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.mysql.helpers import CHARM, commands_run, credentials_secret, mysql_container, storage

from kubeflow_interfaces import mysql_client


def _unit_ctx(unit_id: int) -> testing.Context:
    return testing.Context(CHARM.MySQLCharm, app_name="mysql", unit_id=unit_id)


def _peers(data_unit: str | None, *other_units: int) -> testing.PeerRelation:
    app_data = {"data-unit": data_unit} if data_unit else {}
    return testing.PeerRelation(
        "mysql-peers", local_app_data=app_data, peers_data={u: {} for u in other_units}
    )


def _state(container: testing.Container, *relations, leader=True, **kwargs) -> testing.State:
    return testing.State(
        leader=leader,
        containers={container},
        storages={storage()},
        secrets={credentials_secret()},
        relations=set(relations),
        planned_units=kwargs.pop("planned_units", 2),
        **kwargs,
    )


def test_scale_one_then_a_new_leader_serves_no_empty_server(tmp_path):
    # mysql/0 starts the application: it records itself as the data unit.
    for unit in ("0", "1"):
        (tmp_path / unit).mkdir()
    first = _unit_ctx(0)
    container = mysql_container(tmp_path / "0", initialised=False, running=False)
    peers = _peers(None)
    out = first.run(first.on.pebble_ready(container), _state(container, peers, planned_units=1))
    recorded = dict(out.get_relation(peers.id).local_app_data)
    assert recorded["data-unit"] == "mysql/0"

    # mysql/1, with an empty volume, is elected leader while mysql/0 is still there.
    second = _unit_ctx(1)
    empty = mysql_container(tmp_path / "1", initialised=False, running=False)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    peers = testing.PeerRelation("mysql-peers", local_app_data=recorded, peers_data={0: {}})
    out = second.run(second.on.leader_elected(), _state(empty, peers, relation))

    assert commands_run(second) == []  # no --initialize, no SQL
    assert out.get_container("mysql").plan.services == {}
    assert out.get_relation(relation.id).local_app_data == {}  # its empty server is not handed out
    message = (
        "data lives on mysql/0; replication is not supported yet, "
        "so this leader serves no new relation"
    )
    assert out.unit_status == testing.BlockedStatus(message)
    assert out.app_status == testing.BlockedStatus(message)
    assert out.get_relation(peers.id).local_app_data == recorded


def test_a_leader_whose_data_unit_is_gone_says_to_restore(tmp_path):
    ctx = _unit_ctx(1)
    container = mysql_container(tmp_path, initialised=False, running=False)
    out = ctx.run(ctx.on.leader_elected(), _state(container, _peers("mysql/0"), planned_units=1))
    assert commands_run(ctx) == []
    assert out.get_container("mysql").plan.services == {}
    assert out.unit_status == testing.BlockedStatus(
        "data lived on mysql/0, which is gone; replication is not supported yet: "
        "deploy a new mysql and restore a backup into it"
    )


def test_a_leader_that_does_not_hold_the_data_stops_its_mysqld(tmp_path):
    ctx = _unit_ctx(1)
    out = ctx.run(ctx.on.update_status(), _state(mysql_container(tmp_path), _peers("mysql/0", 0)))
    status = out.get_container("mysql").service_statuses["mysqld"]
    assert status == ops.pebble.ServiceStatus.INACTIVE
    assert commands_run(ctx) == []
    assert out.unit_status.name == "blocked"


def test_the_data_unit_keeps_serving_when_it_no_longer_leads(tmp_path):
    ctx = _unit_ctx(0)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    state = _state(mysql_container(tmp_path), _peers("mysql/0", 1), relation, leader=False)
    out = ctx.run(ctx.on.update_status(), state)
    status = out.get_container("mysql").service_statuses["mysqld"]
    assert status == ops.pebble.ServiceStatus.ACTIVE
    assert commands_run(ctx) == []  # a follower runs no SQL and answers no relation
    assert out.unit_status == testing.ActiveStatus(
        "primary; new relations wait until this unit leads"
    )


def test_the_data_unit_starts_mysqld_when_it_no_longer_leads(tmp_path):
    # Say its pod was rescheduled while another unit led.
    ctx = _unit_ctx(0)
    container = mysql_container(tmp_path, running=False)
    out = ctx.run(
        ctx.on.pebble_ready(container), _state(container, _peers("mysql/0", 1), leader=False)
    )
    status = out.get_container("mysql").service_statuses["mysqld"]
    assert status == ops.pebble.ServiceStatus.ACTIVE
    assert not [c for c in commands_run(ctx) if c[0] == "mysqld"]  # not initialised again


@pytest.mark.parametrize("data_unit", [None, "mysql/0"])
def test_a_unit_that_does_not_hold_the_data_keeps_mysqld_stopped(tmp_path, data_unit):
    ctx = _unit_ctx(1)
    out = ctx.run(
        ctx.on.update_status(),
        _state(mysql_container(tmp_path), _peers(data_unit, 0), leader=False),
    )
    status = out.get_container("mysql").service_statuses["mysqld"]
    assert status == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status == testing.BlockedStatus(
        "replication is not supported yet: this unit keeps mysqld stopped"
    )


def test_a_leader_with_data_from_before_the_record_records_itself(tmp_path):
    ctx = _unit_ctx(0)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    peers = _peers(None)
    out = ctx.run(
        ctx.on.upgrade_charm(), _state(mysql_container(tmp_path), peers, relation, planned_units=1)
    )
    assert out.get_relation(peers.id).local_app_data["data-unit"] == "mysql/0"
    answer = json.loads(out.get_relation(relation.id).local_app_data["requests"])[0]
    assert answer["endpoints"].startswith("mysql-0.mysql-endpoints.")
    assert out.unit_status == testing.ActiveStatus("primary")


def test_leadership_back_on_the_data_unit_serves_again(tmp_path):
    ctx = _unit_ctx(0)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    state = _state(mysql_container(tmp_path), _peers("mysql/0", 1), relation)
    out = ctx.run(ctx.on.leader_elected(), state)
    answer = json.loads(out.get_relation(relation.id).local_app_data["requests"])[0]
    assert answer["endpoints"].startswith("mysql-0.mysql-endpoints.")
    assert out.unit_status == testing.ActiveStatus("primary")
    assert out.app_status == testing.ActiveStatus(
        "one unit serves; replication is not supported yet"
    )


def test_without_the_peer_relation_an_empty_leader_waits(tmp_path):
    ctx = _unit_ctx(0)
    container = mysql_container(tmp_path, initialised=False, running=False)
    out = ctx.run(ctx.on.pebble_ready(container), _state(container, planned_units=1))
    assert commands_run(ctx) == []
    assert out.unit_status == testing.WaitingStatus("waiting for the peer relation")
    # Once it is there, the leader records itself and initialises.
    peers = _peers(None)
    out = ctx.run(ctx.on.relation_created(peers), dataclasses.replace(out, relations={peers}))
    assert out.get_relation(peers.id).local_app_data["data-unit"] == "mysql/0"
    assert [c for c in commands_run(ctx) if c[0] == "mysqld"]


def test_a_leader_scaled_away_leaves_the_relations_to_the_units_that_stay(tmp_path):
    # mysql/0 served kfp while it led; leadership then went to mysql/1.
    first = _unit_ctx(0)
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    served = first.run(
        first.on.relation_changed(relation),
        _state(mysql_container(tmp_path), _peers("mysql/0", 1), relation, planned_units=1),
    )
    answer = json.loads(served.get_relation(relation.id).local_app_data["requests"])[0]
    # mysql/1 leads and is scaled away (Kubernetes removes the highest number):
    # Juju runs relation-broken on it for each of its relations, and it still leads.
    second = _unit_ctx(1)
    (tmp_path / "1").mkdir()
    leaving = dataclasses.replace(
        served,
        containers={mysql_container(tmp_path / "1", initialised=False, running=False)},
        relations={served.get_relation(relation.id), _peers("mysql/0", 0)},
        planned_units=1,
    )
    out = second.run(second.on.relation_broken(leaving.get_relation(relation.id)), leaving)
    assert answer["secret-user"] in {s.id for s in out.secrets}  # kfp keeps its credentials
    assert commands_run(second) == []
    assert out.get_relation(relation.id).local_app_data == (
        served.get_relation(relation.id).local_app_data
    )


def test_a_relation_removed_while_two_units_run_is_revoked(tmp_path):
    relation = mysql_client.relation_for_provider(database="kfp", remote_app_name="kfp")
    ctx = _unit_ctx(0)
    served = ctx.run(
        ctx.on.relation_changed(relation),
        _state(mysql_container(tmp_path), _peers("mysql/0", 1), relation, planned_units=2),
    )
    answer = json.loads(served.get_relation(relation.id).local_app_data["requests"])[0]
    out = ctx.run(ctx.on.relation_broken(served.get_relation(relation.id)), served)
    assert answer["secret-user"] not in {s.id for s in out.secrets}
