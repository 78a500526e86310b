"""Building blocks of the mysql charm's unit-test states."""

from __future__ import annotations

from pathlib import Path

import ops
from charm_loader import load_charm
from ops import testing

CHARM = load_charm("mysql")
import mysql_server  # noqa: E402 - the workload module, as the charm imported it

READY = testing.CheckInfo(
    "mysqld-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.UP
)
NOT_READY = testing.CheckInfo(
    "mysqld-ready", level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
)
CREDENTIALS = {"root-password": "root-pw-0123456789", "admin-password": "admin-pw-0123456789"}


def credentials_secret() -> testing.Secret:
    return testing.Secret(
        tracked_content=dict(CREDENTIALS), owner="app", label="admin-credentials"
    )


def mysql_container(
    tmp_path: Path,
    *,
    initialised: bool = True,
    running: bool = True,
    ready: bool = True,
    mysql_stdout: str = "8.4.3\n",
    dump_stdout: str = "",
    can_connect: bool = True,
) -> testing.Container:
    """The workload container: data on a mount, the server's state, its commands."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    etc = tmp_path / "etc"  # persists between runs, as config files do in a real container
    etc.mkdir(exist_ok=True)
    if initialised:
        (data / "data" / "mysql").mkdir(parents=True, exist_ok=True)
    layers = {}
    service_statuses = {}
    if running:
        layers["mysqld"] = ops.pebble.Layer(mysql_server.pebble_layer())
        service_statuses["mysqld"] = ops.pebble.ServiceStatus.ACTIVE
    return testing.Container(
        "mysql",
        can_connect=can_connect,
        layers=layers,
        service_statuses=service_statuses,
        check_infos={READY if ready else NOT_READY} if running else frozenset(),
        mounts={
            "data": testing.Mount(location="/var/lib/mysql", source=data),
            "etc": testing.Mount(location="/etc/mysql", source=etc),
        },
        execs={
            # Bytes: the charm reads its commands' output undecoded.
            testing.Exec(["mysql"], stdout=mysql_stdout.encode(), stderr=b""),  # type: ignore[arg-type]
            testing.Exec(["mysqld"], stdout=b"", stderr=b""),  # type: ignore[arg-type]
            testing.Exec(["mysqldump"], stdout=dump_stdout.encode(), stderr=b""),  # type: ignore[arg-type]
        },
    )


def storage() -> testing.Storage:
    return testing.Storage("database")


def sql_sent(ctx: testing.Context) -> str:
    """Every piece of SQL the charm sent to the mysql client, in order."""
    history = ctx.exec_history.get("mysql", [])
    return "\n".join(
        (e.stdin or "") if isinstance(e.stdin, str) else (e.stdin or b"").decode()
        for e in history
        if e.command[0] == "mysql"
    )


def commands_run(ctx: testing.Context) -> list[list[str]]:
    return [list(e.command) for e in ctx.exec_history.get("mysql", [])]
