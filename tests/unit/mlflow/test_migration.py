"""Schema migrations: the leader migrates before a new version starts, others wait for it."""

from __future__ import annotations

import dataclasses

from ops import testing
from unit.mlflow.helpers import (
    DB_PASSWORD,
    VERSION,
    container,
    migrate_exec,
    mlflow_charm,
    peer,
    replace_container,
    running,
    state,
    workload,
)

KEY = mlflow_charm.MIGRATED_KEY


def _commands(ctx: testing.Context) -> list[str]:
    return [p.command[0] for p in ctx.exec_history.get(workload.CONTAINER, [])]


def test_the_migration_sources_the_secrets_file_and_runs_db_upgrade(ctx: testing.Context):
    ctx.run(ctx.on.config_changed(), state())

    (migration,) = [p for p in ctx.exec_history[workload.CONTAINER] if p.command[0] == "/bin/sh"]
    assert migration.command == workload.migrate_command()
    script = migration.command[2]
    assert script.startswith(f"set -a && . {workload.SECRETS_FILE} && set +a && ")
    assert script.endswith('exec mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"')
    assert DB_PASSWORD not in " ".join(migration.command)
    assert migration.timeout == workload.MIGRATION_TIMEOUT
    assert migration.user_id == workload.USER_ID
    assert migration.working_dir == "/"  # not the workload user's home, which may not exist


def test_a_failed_migration_leaves_the_running_server_and_plan_as_they_were(
    ctx: testing.Context,
):
    settled = ctx.run(ctx.on.config_changed(), state())
    old = settled.get_container(workload.CONTAINER)
    # A new image (same pod here): version 2.22.1, whose migration fails.
    failing = container(
        version="2.22.1",
        migrate=migrate_exec(
            1, stderr=f"pymysql.err.OperationalError: (1142, 'ALTER denied' {DB_PASSWORD})\n"
        ),
        layers=old.layers,
        service_statuses=old.service_statuses,
        check_infos=old.check_infos,
    )
    base = replace_container(settled, failing)

    out = ctx.run(ctx.on.upgrade_charm(), base)

    assert out.get_container(workload.CONTAINER).plan == old.plan
    assert running(out)
    assert peer(out).local_app_data[KEY] == VERSION  # not recorded
    status = out.unit_status
    assert isinstance(status, testing.BlockedStatus)
    assert status.message.startswith("database migration to MLflow 2.22.1 failed (exit code 1: ")
    assert "retried on the next hook" in status.message
    assert DB_PASSWORD not in status.message  # blanked
    assert out.app_status == status


def test_a_failed_migration_is_retried_on_the_next_hook(ctx: testing.Context):
    base = state(containers={container(migrate=migrate_exec(1, stderr="boom"))})
    out = ctx.run(ctx.on.config_changed(), base)
    assert not running(out)
    assert KEY not in peer(out).local_app_data

    fixed = replace_container(out, container())
    out = ctx.run(ctx.on.update_status(), fixed)

    assert running(out)
    assert peer(out).local_app_data[KEY] == VERSION
    assert out.unit_status == testing.ActiveStatus()


def test_upgrade_charm_always_migrates(ctx: testing.Context):
    settled = ctx.run(ctx.on.config_changed(), state())
    # The pod was replaced: a fresh container, the same version recorded.
    out = ctx.run(ctx.on.upgrade_charm(), replace_container(settled, container()))

    assert _commands(ctx).count("/bin/sh") == 2
    assert running(out)
    assert out.unit_status == testing.ActiveStatus()


def test_a_recorded_version_is_not_migrated_again(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), state(peer_data={KEY: VERSION}))

    assert _commands(ctx) == ["mlflow"]
    assert running(out)


def test_a_follower_waits_for_the_leader_to_migrate(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), state(leader=False, peer_data={KEY: "2.21.0"}))

    assert _commands(ctx) == ["mlflow"]  # the version only: followers never migrate
    assert not running(out)
    assert out.unit_status == testing.WaitingStatus(
        f"waiting for the leader to migrate the database to MLflow {VERSION}"
    )


def test_a_follower_starts_once_the_leader_recorded_the_version(ctx: testing.Context):
    waiting = ctx.run(ctx.on.config_changed(), state(leader=False))
    assert not running(waiting)
    relation = dataclasses.replace(
        peer(waiting), local_app_data={KEY: VERSION}, peers_data={1: {}}
    )
    others = {r for r in waiting.relations if r.endpoint != relation.endpoint}

    out = ctx.run(
        ctx.on.relation_changed(relation, remote_unit=1),
        dataclasses.replace(waiting, relations=others | {relation}),
    )

    assert running(out)
    assert out.unit_status == testing.ActiveStatus()


def test_an_unreadable_version_waits_and_changes_nothing(ctx: testing.Context):
    broken = testing.Container(
        workload.CONTAINER,
        can_connect=True,
        execs={testing.Exec(["mlflow", "--version"], return_code=127, stderr="not found")},
    )
    out = ctx.run(ctx.on.config_changed(), state(containers={broken}))

    assert not running(out)
    assert isinstance(out.unit_status, testing.WaitingStatus)
    assert out.unit_status.message.startswith("cannot read MLflow's version: ")


def test_version_parsing():
    assert workload.parse_version("mlflow, version 2.22.0\n") == "2.22.0"
    for bad in ("", "command not found"):
        try:
            workload.parse_version(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
