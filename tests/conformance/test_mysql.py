"""The mysql charm's Pebble layer, option files and commands against the official 8.4 image.

Each test renders what the charm really writes or runs (its workload module,
or the charm itself under ops.testing) and checks it against
facts/mysql.yaml, naming the fact and where it was read.
"""

from __future__ import annotations

import configparser
import posixpath
import shlex
from pathlib import Path

import pytest
import yaml
from charm_loader import charm_dir
from conformance import facts
from ops import testing
from unit.mysql.helpers import (
    CHARM,
    commands_run,
    credentials_secret,
    mysql_container,
    mysql_server,
    storage,
)

FACTS = facts.load("mysql")["mysql"]
# The charm's backup module, as the charm imports it (its src/ is on the path now).
import mysql_backups  # noqa: E402

META = yaml.safe_load((charm_dir("mysql") / "charmcraft.yaml").read_text())
CONFIG = mysql_server.ServerConfig(buffer_pool_size=256 << 20, max_connections=151)


def fact(name: str):
    return FACTS[name].value


def why(name: str) -> str:
    return f"fact {name!r} ({FACTS[name].source})"


def _server() -> mysql_server.MySQLServer:
    # Nothing is run: only the commands and option files are rendered.
    return mysql_server.MySQLServer(None, user="charm-admin", password="pw-0123456789")  # type: ignore[arg-type]


def _rendered_options() -> list[tuple[str, str | None]]:
    """The [mysqld] options of the charm's server config, names as mysqld spells them."""
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(mysql_server.render_config(CONFIG))
    return [(name.replace("_", "-"), value) for name, value in parser["mysqld"].items()]


def _options(argv: list[str]) -> list[str]:
    """The long option names of a command line, without values."""
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--")]


# --- image ---------------------------------------------------------------------------


def test_resource_is_the_published_image():
    resource = META["resources"]["mysql-image"]["upstream-source"]
    assert resource == fact("image"), why("image")


def test_charm_platforms_are_built_for_by_the_image():
    # Docker's arm64v8 is the arm64 of charmcraft.
    arches = {a.removesuffix("v8") for a in fact("architectures")}
    assert set(META["platforms"]) <= arches, why("architectures")


# --- the Pebble service ----------------------------------------------------------------


def test_service_runs_the_images_server_as_its_user():
    service = mysql_server.pebble_layer()["services"]["mysqld"]
    argv = shlex.split(service["command"])
    assert argv[0] == fact("command"), why("command")
    assert (service["user"], service["group"]) == (fact("user")["name"], fact("user")["group"]), (
        why("user")
    )
    # The server reads the charm's option file, given where mysqld wants it.
    assert _options(argv[1:2]) == [fact("first-argument-options")[0]], why(
        "first-argument-options"
    )
    assert argv[1] == f"--defaults-file={mysql_server.CONFIG_FILE}"


def test_ready_check_is_the_classic_port():
    check = mysql_server.pebble_layer()["checks"]["mysqld-ready"]
    assert check["tcp"]["port"] == fact("ports")["classic"], why("ports")


# --- paths ---------------------------------------------------------------------------------


def test_storage_is_mounted_on_the_images_data_volume():
    (mount,) = META["containers"]["mysql"]["mounts"]
    assert mount["location"] == fact("data-volume"), why("data-volume")
    assert META["storage"]["database"]["location"] == fact("data-volume"), why("data-volume")
    # The data directory is a folder on that volume (see mysql_server.DATA_DIR).
    assert posixpath.dirname(mysql_server.DATA_DIR) == fact("data-volume"), why("data-volume")


def test_socket_and_run_files_are_where_the_image_has_them():
    assert mysql_server.SOCKET == fact("socket"), why("socket")
    # The run directory exists in the image and the mysql user may write it:
    # the pid file, and the init file mysqld reads after dropping to mysql.
    for path in (mysql_server.SOCKET, mysql_server.PID_FILE, mysql_server.INIT_FILE):
        assert posixpath.dirname(path) == fact("run-dir"), f"{path}: {why('run-dir')}"
    assert f"socket = {fact('socket')}" in mysql_server.render_config(CONFIG), why("socket")


def test_server_config_holds_nothing_the_clients_would_read():
    # Every client reads the image's /etc/my.cnf, which includes the
    # directory the server config is in: it must hold server options only.
    assert posixpath.dirname(mysql_server.CONFIG_FILE) == fact("include-dir"), why("include-dir")
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=("=",))
    parser.read_string(mysql_server.render_config(CONFIG))
    assert parser.sections() == ["mysqld"], why("include-dir")
    # The charm's credentials are read only by the commands that name them.
    assert posixpath.dirname(mysql_server.CLIENT_OPTIONS_FILE) != fact("include-dir"), why(
        "include-dir"
    )


# --- server options ------------------------------------------------------------------------


def test_every_server_option_is_one_mysqld_knows():
    known = set(fact("server-options"))
    for name, value in _rendered_options():
        if name.startswith("innodb-"):
            continue  # the storage engine's own options: not in the server's listing
        if name.startswith("loose-"):
            # Ignored by a server that lacks it: only the X plugin's switch.
            assert name.removeprefix("loose-") == fact("x-plugin-name"), why("x-plugin-name")
            assert value == "OFF", why("x-plugin-name")
            continue
        assert name in known, f"{name}: not a mysqld option, {why('server-options')}"


def test_settings_left_or_set_to_the_servers_defaults():
    defaults = fact("server-defaults")
    options = dict(_rendered_options())
    # The charm's default max-connections is the server's.
    assert META["config"]["options"]["max-connections"]["default"] == defaults["max-connections"]
    assert options["max-allowed-packet"] == str(defaults["max-allowed-packet"]), why(
        "server-defaults"
    )
    # No log-error: the server's default sends its log to stderr, which Pebble keeps.
    assert defaults["log-error"] == "stderr" and "log-error" not in options, why("server-defaults")
    # quote_string escapes with backslashes: right only while sql_mode, left at
    # the server's default, has no NO_BACKSLASH_ESCAPES.
    assert "sql-mode" not in options, why("server-defaults")
    assert "NO_BACKSLASH_ESCAPES" not in defaults["sql-mode"].split(","), why("server-defaults")
    assert mysql_server.quote_string("a'b\\") == "'a''b\\\\'"


def test_server_listens_on_the_classic_port_only():
    options = dict(_rendered_options())
    assert options["port"] == str(fact("ports")["classic"]), why("ports")
    # The X protocol port of the image is switched off with its plugin.
    assert options[f"loose-{fact('x-plugin-name')}"] == "OFF", why("x-plugin-name")
    # Binary logs are off (no replicas, logical backups).
    assert "skip-log-bin" in options and "skip-log-bin" in fact("server-options"), why(
        "server-options"
    )


def test_the_unit_opens_only_the_classic_port(tmp_path):
    ctx = testing.Context(CHARM.MySQLCharm)
    state = testing.State(
        leader=True,
        containers={mysql_container(tmp_path)},
        storages={storage()},
        secrets={credentials_secret()},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.opened_ports == {testing.TCPPort(fact("ports")["classic"])}, why("ports")


# --- first start ---------------------------------------------------------------------------


def test_initialise_command_is_the_images():
    argv = mysql_server.initialise_argv()
    assert argv[0] == fact("command"), why("command")
    assert argv[1] == f"--defaults-file={mysql_server.CONFIG_FILE}", why("first-argument-options")
    assert fact("initialise-flag") in argv, why("initialise-flag")
    assert f"{fact('user-flag')}={fact('user')['name']}" in argv, why("user-flag")
    assert f"{fact('init-file-flag')}={mysql_server.INIT_FILE}" in argv, why("init-file-flag")
    for name in _options(argv[1:]):
        assert name in set(fact("server-options")) | set(fact("first-argument-options")), (
            f"{name}: {why('server-options')}"
        )


def _data_dir_on_mount(tmp_path: Path) -> Path:
    """Where DATA_DIR lands in the test container's data mount (see mysql_container)."""
    relative = posixpath.relpath(mysql_server.DATA_DIR, fact("data-volume"))
    return tmp_path / "data" / relative


@pytest.mark.parametrize("initialised", [False, True])
def test_initialises_only_a_data_directory_without_the_marker(tmp_path, initialised):
    container = mysql_container(tmp_path, initialised=False, running=False)
    data_dir = _data_dir_on_mount(tmp_path)
    data_dir.mkdir(parents=True, exist_ok=True)
    if initialised:
        (data_dir / fact("initialised-marker")).mkdir()
    ctx = testing.Context(CHARM.MySQLCharm)
    state = testing.State(
        leader=True,
        containers={container},
        storages={storage()},
        secrets={credentials_secret()},
        # The first leader records itself in the peer data, then initialises.
        relations={testing.PeerRelation("mysql-peers")},
    )
    ctx.run(ctx.on.pebble_ready(container), state)
    ran = [c for c in commands_run(ctx) if fact("initialise-flag") in c]
    assert bool(ran) is not initialised, why("initialised-marker")


# --- clients and backups -------------------------------------------------------------------


def test_client_commands_take_their_credentials_from_an_option_file():
    server = _server()
    for argv in (server.restore_argv(), server.dump_argv(["kubeflow"])):
        assert argv[1] == f"{fact('client-options-file-flag')}={server.options_file}", why(
            "client-options-file-flag"
        )
        assert fact("client-options-file-flag").removeprefix("--") in set(
            fact("first-argument-options")
        ), why("first-argument-options")
        assert not any(a.startswith(("--password", "-p")) for a in argv), why(
            "client-options-file-flag"
        )
    options = server.client_options()
    assert f'socket = "{fact("socket")}"' in options, why("socket")


def test_backups_use_the_images_mysqldump_with_its_options():
    argv = _server().dump_argv(["kubeflow", "pipelines"])
    assert argv[0] == fact("mysqldump-in-image"), why("mysqldump-in-image")
    known = set(fact("mysqldump-options"))
    for name in _options(argv[2:]):
        assert name in known, f"--{name}: {why('mysqldump-options')}"
    # A consistent dump without locking, that recreates each database.
    for needed in ("single-transaction", "add-drop-database", "databases"):
        assert f"--{needed}" in argv, why("mysqldump-options")


def test_restore_refuses_a_dump_without_mysqldumps_trailer():
    # What a whole dump ends with; the backup code checks for it.
    assert mysql_backups._DUMP_TRAILER == fact("mysqldump-trailer").encode(), why(
        "mysqldump-trailer"
    )


def test_restore_account_names_definers_with_the_servers_own_privileges():
    known = set(fact("definer-privileges"))
    for name in mysql_backups.MYSQL_DEFINER_PRIVILEGES:
        assert name in known, why("definer-privileges")
