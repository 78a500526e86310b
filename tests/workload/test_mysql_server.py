"""The SQL and client commands of `mysql_server`, against a real MariaDB.

MariaDB answers these statements as MySQL 8.4 does; where the two differ the
module under test says so.
"""

from __future__ import annotations

import stat
from pathlib import Path

import ops
import pytest
from executor import WorkloadError
from mysql_server import (
    ADMIN_USER,
    SYSTEM_DATABASES,
    MySQLServer,
    ServerConfig,
    initialise_argv,
    initialise_sql,
    is_valid_database_name,
    pebble_layer,
    quote_identifier,
    quote_string,
    relation_id_of,
    relation_user,
    render_config,
)
from workload.helpers import connect_as
from workload.local_executor import LocalExecutor
from workload.servers import MariaDB, mariadb_server

# Quotes, backslashes (one at the end), a comment sign, spaces, `=` and non-ASCII:
# everything that could break SQL quoting or the option file.
AWKWARD_PASSWORD = 'it\'s a "pass" #word = \\ ünï; DROP USER root; \\'


def access_denied(error: pytest.ExceptionInfo[WorkloadError]) -> bool:
    return "Access denied" in str(error.value)


def test_admin_account_from_initialise_sql(admin: MySQLServer, mariadb: MariaDB):
    assert admin.is_ready()
    assert "MariaDB" in admin.version()
    grants = "\n".join(row[0] for row in admin.query("SHOW GRANTS;"))
    assert "ALL PRIVILEGES ON *.*" in grants
    assert "WITH GRANT OPTION" in grants
    # root's password is the one given to initialise_sql (the root options file uses it).
    assert mariadb.scalar("SELECT CURRENT_USER();") == "root@localhost"


def test_client_options_file_is_private_and_argv_has_no_secret(
    admin: MySQLServer, executor: LocalExecutor, admin_password: str
):
    path = Path(admin.options_file)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admin.query("SELECT 1;")
    admin.dump_argv(["anything"])
    for argv in executor.commands:
        assert argv[1] == f"--defaults-extra-file={admin.options_file}"
        assert not any(admin_password in arg for arg in argv)


def test_is_ready_false_with_wrong_password(mariadb: MariaDB, executor: LocalExecutor):
    server = MySQLServer(
        executor,
        user=ADMIN_USER,
        password="not-the-password",
        socket=mariadb.socket,
        options_file=str(executor.root / "wrong.cnf"),
        client="mariadb",
    )
    server.write_client_options()
    assert server.is_ready() is False


def test_relation_user_reads_and_writes_its_own_database_only(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    # `team_a` versus `teamXa`: `_` is a wildcard in GRANT unless escaped.
    for name in ("team_a", "teamXa", "other-db"):
        admin.ensure_database(name)
    admin.execute(
        "CREATE TABLE `other-db`.secrets (v TEXT); INSERT INTO `other-db`.secrets VALUES ('x');"
    )
    admin.ensure_user("relation-7", AWKWARD_PASSWORD, "team_a")
    admin.ensure_user("relation-7", AWKWARD_PASSWORD, "team_a")  # idempotent

    app = connect_as(mariadb, executor, "relation-7", AWKWARD_PASSWORD)
    app.execute(
        "CREATE TABLE team_a.runs (id INT PRIMARY KEY, name TEXT);"
        "INSERT INTO team_a.runs VALUES (1, 'first'), (2, 'tab\\there');"
        "UPDATE team_a.runs SET name = 'second' WHERE id = 2;"
    )
    assert app.query("SELECT id, name FROM team_a.runs ORDER BY id;") == [
        ["1", "first"],
        ["2", "second"],
    ]
    assert app.user_databases() == ["team_a"]

    for sql in (
        "SELECT * FROM `other-db`.secrets;",
        "CREATE TABLE teamXa.t (i INT);",
        "DROP DATABASE `other-db`;",
        "CREATE DATABASE sneaky;",
        "SELECT * FROM mysql.user;",
    ):
        with pytest.raises(WorkloadError) as error:
            app.execute(sql)
        assert access_denied(error) or "command denied" in str(error.value), sql


def test_drop_user_removes_access_and_keeps_data(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    admin.ensure_database("keep-me")
    admin.ensure_user("relation-3", "secret-3", "keep-me")
    app = connect_as(mariadb, executor, "relation-3", "secret-3")
    app.execute("CREATE TABLE `keep-me`.t (i INT); INSERT INTO `keep-me`.t VALUES (1), (2);")

    admin.drop_user("relation-3")
    admin.drop_user("relation-3")  # idempotent

    with pytest.raises(WorkloadError) as error:
        app.query("SELECT 1;")
    assert access_denied(error)
    assert admin.query("SELECT SUM(i) FROM `keep-me`.t;") == [["3"]]
    assert admin.query("SELECT COUNT(*) FROM mysql.user WHERE User = 'relation-3';") == [["0"]]


def test_a_second_database_goes_to_the_same_user_and_password(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    """What the charm does when a relation asks for a further database."""
    for name in ("kfp", "mlmd", "someone-else"):
        admin.ensure_database(name)
    admin.ensure_user("relation-8", AWKWARD_PASSWORD, "kfp")
    app = connect_as(mariadb, executor, "relation-8", AWKWARD_PASSWORD)
    app.execute("CREATE TABLE kfp.runs (i INT); INSERT INTO kfp.runs VALUES (1);")

    admin.ensure_user("relation-8", AWKWARD_PASSWORD, "mlmd")

    # The first database's credentials still work, and now reach both databases.
    app.execute("CREATE TABLE mlmd.artifacts (i INT); INSERT INTO mlmd.artifacts VALUES (2);")
    assert app.query("SELECT i FROM kfp.runs;") == [["1"]]
    assert app.user_databases() == ["kfp", "mlmd"]
    with pytest.raises(WorkloadError) as error:
        app.execute("CREATE TABLE `someone-else`.t (i INT);")
    assert "command denied" in str(error.value)
    accounts = admin.query("SELECT Host FROM mysql.user WHERE User = 'relation-8';")
    assert accounts == [["%"]]


def test_only_the_users_of_gone_relations_are_dropped(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    admin.ensure_database("kept")
    ours = {"relation-0": 0, "relation-5": 5, "relation-12": 12}
    for user in ours:
        admin.ensure_user(user, "pw-" + user, "kept")
    # Accounts the charm did not make, by their names or their host.
    for user, host in [("relation-x", "%"), ("relation-007", "%"), ("relation-12", "localhost")]:
        admin.ensure_user(user, "pw-" + user, "kept", host=host)
    admin.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'pw'; CREATE ROLE `relation-3`;")
    try:
        _drop_only_gone_relation_users(admin, mariadb, executor, ours)
    finally:
        admin.execute("DROP ROLE `relation-3`;")  # the workload reset drops accounts only


def _drop_only_gone_relation_users(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor, ours: dict[str, int]
) -> None:
    admin.execute("CREATE TABLE kept.t (i INT); INSERT INTO kept.t VALUES (1);")
    assert admin.relation_users() == ours
    dropped, failed = admin.drop_stale_relation_users({5, 99})
    assert (dropped, failed) == (["relation-0", "relation-12"], [])

    def accounts() -> list[list[str]]:
        return admin.query(
            "SELECT User, Host FROM mysql.user WHERE User LIKE 'relation-%' OR User = 'app' "
            "ORDER BY User, Host;"
        )

    assert accounts() == [
        ["app", "%"],
        ["relation-007", "%"],
        ["relation-12", "localhost"],
        ["relation-3", ""],
        ["relation-5", "%"],
        ["relation-x", "%"],
    ]
    assert connect_as(mariadb, executor, "relation-5", "pw-relation-5").is_ready()
    assert admin.query("SELECT i FROM kept.t;") == [["1"]]  # the data stays
    assert admin.drop_stale_relation_users({5}) == ([], [])  # nothing more, one query


def test_grants_no_longer_asked_for_are_revoked_and_the_data_kept(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    for name in ("first", "second", "kfp_db", "kfpXdb", "theirs"):
        admin.ensure_database(name)
    admin.ensure_user("relation-4", "pw-relation-4", "first")
    admin.ensure_user("relation-4", "pw-relation-4", "second")
    admin.ensure_user("relation-4", "pw-relation-4", "kfp_db")  # granted as `kfp\_db`
    admin.ensure_user("relation-6", "pw-relation-6", "theirs")  # a relation not checked
    admin.ensure_user("relation-x", "pw-relation-x", "first")  # not the charm's name scheme
    app = connect_as(mariadb, executor, "relation-4", "pw-relation-4")
    app.execute("CREATE TABLE first.t (i INT); INSERT INTO first.t VALUES (1);")

    # The v0 requirer renamed `first` to `second`; it still asks for `kfp_db`.
    revoked, failed = admin.revoke_unasked_databases({4: {"second", "kfp_db"}})

    assert (revoked, failed) == ([("relation-4", "first")], [])
    with pytest.raises(WorkloadError) as error:
        app.query("SELECT i FROM first.t;")
    assert "denied" in str(error.value)
    assert app.user_databases() == ["kfp_db", "second"]
    assert admin.query("SELECT i FROM first.t;") == [["1"]]  # the data stays
    assert connect_as(mariadb, executor, "relation-6", "pw-relation-6").user_databases() == [
        "theirs"
    ]
    assert connect_as(mariadb, executor, "relation-x", "pw-relation-x").user_databases() == [
        "first"
    ]
    # Settled: nothing more to revoke.
    assert admin.revoke_unasked_databases({4: {"second", "kfp_db"}}) == ([], [])
    # A relation that asks for nothing keeps no grant.
    assert admin.revoke_unasked_databases({4: set()}) == (
        [("relation-4", "kfp_db"), ("relation-4", "second")],
        [],
    )
    assert app.user_databases() == []


@pytest.mark.parametrize("relation_id", [0, 7, 123456789])
def test_relation_user_names_round_trip(relation_id: int):
    assert relation_id_of(relation_user(relation_id)) == relation_id


@pytest.mark.parametrize("name", ["relation-", "relation-07", "relation--1", "Relation-1", "root"])
def test_names_the_charm_did_not_make_have_no_relation(name: str):
    assert relation_id_of(name) is None


def test_ensure_user_changes_the_password(
    admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor
):
    admin.ensure_database("db1")
    admin.ensure_user("relation-4", "old-password", "db1")
    admin.ensure_user("relation-4", "new-password", "db1")
    with pytest.raises(WorkloadError) as error:
        connect_as(mariadb, executor, "relation-4", "old-password").query("SELECT 1;")
    assert access_denied(error)
    assert connect_as(mariadb, executor, "relation-4", "new-password").is_ready()


def test_set_password_on_every_host(admin: MySQLServer, mariadb: MariaDB, executor: LocalExecutor):
    admin.ensure_database("db2")
    admin.ensure_user("relation-5", "first", "db2", host="%")
    admin.ensure_user("relation-5", "first", "db2", host="localhost")
    admin.set_password("relation-5", AWKWARD_PASSWORD)

    over_tcp = connect_as(mariadb, executor, "relation-5", AWKWARD_PASSWORD)
    assert over_tcp.query("SELECT CURRENT_USER();") == [["relation-5@%"]]
    over_socket = MySQLServer(
        executor,
        user="relation-5",
        password=AWKWARD_PASSWORD,
        socket=mariadb.socket,
        options_file=str(executor.root / "socket.cnf"),
        client="mariadb",
    )
    over_socket.write_client_options()
    assert over_socket.query("SELECT CURRENT_USER();") == [["relation-5@localhost"]]


def test_set_password_of_own_account_rewrites_the_options(admin: MySQLServer, admin_password: str):
    admin.set_password(ADMIN_USER, "rotated-" + admin_password)
    try:
        assert admin.is_ready()
        assert "rotated-" in Path(admin.options_file).read_text()
    finally:
        admin.set_password(ADMIN_USER, admin_password)
    assert admin.is_ready()


def test_user_databases_and_query_escapes(admin: MySQLServer):
    for name in ("zeta", "alpha-1", "Mid_2"):
        admin.ensure_database(name)
    admin.ensure_database("zeta")  # idempotent
    assert admin.user_databases() == sorted(["zeta", "alpha-1", "Mid_2"])
    assert not set(admin.user_databases()) & SYSTEM_DATABASES
    rows = admin.query("SELECT 'a\\tb', 'line\\nbreak', 'back\\\\slash', NULL, '';")
    assert rows == [["a\tb", "line\nbreak", "back\\slash", "NULL", ""]]


BAD_DATABASES = ["", "x" * 65, "bad`name", "a;DROP DATABASE mysql", "with space", "db.table"]
BAD_DATABASES += ["mysql", "MySQL", "sys", "INFORMATION_SCHEMA", "performance_schema", "é"]


class RefusingExecutor(LocalExecutor):
    def run(self, argv, **kwargs):  # pragma: no cover - reaching it fails the test
        raise AssertionError(f"SQL ran: {argv}")


@pytest.mark.parametrize("name", BAD_DATABASES)
def test_invalid_names_are_refused_before_any_sql(name: str, tmp_path: Path):
    server = MySQLServer(RefusingExecutor(tmp_path), user=ADMIN_USER, password="x")
    assert not is_valid_database_name(name)
    with pytest.raises(ValueError):
        server.ensure_database(name)
    with pytest.raises(ValueError):
        server.ensure_user("relation-1", "password", name)
    with pytest.raises(ValueError):
        server.dump_argv(["fine", name])


@pytest.mark.parametrize(
    ("user", "host"),
    [
        ("", "%"),
        ("x" * 33, "%"),
        ("o'neil", "%"),
        ("a`b", "%"),
        ("root", "%"),
        (ADMIN_USER, "localhost"),
        ("relation-1", "host' OR 1=1"),
        ("relation-1", ""),
    ],
)
def test_invalid_accounts_are_refused_before_any_sql(user: str, host: str, tmp_path: Path):
    server = MySQLServer(RefusingExecutor(tmp_path), user=ADMIN_USER, password="x")
    with pytest.raises(ValueError):
        server.ensure_user(user, "password", "fine", host=host)
    with pytest.raises(ValueError):
        server.drop_user(user, host=host)


def test_empty_password_refused(tmp_path: Path):
    server = MySQLServer(RefusingExecutor(tmp_path), user=ADMIN_USER, password="x")
    with pytest.raises(ValueError):
        server.ensure_user("relation-1", "", "fine")
    with pytest.raises(ValueError):
        server.set_password("relation-1", "line\nbreak")


def test_quoting_helpers(admin: MySQLServer):
    assert quote_identifier("a`b") == "`a``b`"
    assert quote_string("it's \\") == "'it''s \\\\'"
    nasty = "x'; DROP DATABASE mysql; -- \\' \" `"
    assert admin.query(f"SELECT {quote_string(nasty)};") == [[nasty]]
    admin.ensure_database("quoted")
    admin.execute(f"CREATE TABLE quoted.{quote_identifier('we`ird')} (i INT);")
    assert admin.query("SHOW TABLES FROM quoted;") == [["we`ird"]]


def test_pebble_layer_and_initialise_command():
    layer = ops.pebble.Layer(pebble_layer())  # parsed as Pebble's client parses it
    service = layer.services["mysqld"]
    assert service.command == "mysqld --defaults-file=/etc/mysql/conf.d/zz-charm.cnf"
    assert service.user == "mysql"
    assert service.startup == "enabled"
    assert service.override == "replace"
    check = layer.checks["mysqld-ready"]
    assert check.level == ops.pebble.CheckLevel.READY
    assert check.tcp == {"port": 3306}
    argv = initialise_argv()
    assert argv[0] == "mysqld"
    assert argv[1].startswith("--defaults-file=")  # must be the first option
    assert "--initialize-insecure" in argv
    assert any(a.startswith("--init-file=") for a in argv)
    sql = initialise_sql("root-pw", "admin-pw")
    assert all(line.endswith(";") for line in sql.splitlines())  # one statement a line
    with pytest.raises(ValueError):
        initialise_sql("root-pw", "two\nlines")


def test_render_config_is_deterministic_and_validated():
    cfg = ServerConfig(buffer_pool_size=256 * 1024 * 1024, max_connections=300)
    text = render_config(cfg)
    assert text == render_config(ServerConfig(256 * 1024 * 1024, 300))
    assert "innodb_buffer_pool_size = 268435456" in text
    assert "max_connections = 300" in text
    assert "bind-address = 0.0.0.0" in text
    assert "log-error" not in text.replace("# No log-error", "")
    with pytest.raises(ValueError):
        ServerConfig(buffer_pool_size=1024, max_connections=10)
    with pytest.raises(ValueError):
        ServerConfig(buffer_pool_size=64 * 1024 * 1024, max_connections=0)


def test_rendered_config_starts_a_real_server(tmp_path: Path):
    """Mariadbd reads the charm's option file and applies it (paths overridden for the test)."""
    config = tmp_path / "zz-charm.cnf"
    config.write_text(render_config(ServerConfig(96 * 1024 * 1024, 42)))
    with mariadb_server(tmp_path, defaults_file=config, extra_options=()) as server:
        values = dict(
            line.split("\t")
            for line in server.sql(
                "SELECT 'pool', @@innodb_buffer_pool_size UNION ALL "
                "SELECT 'conns', @@max_connections UNION ALL "
                "SELECT 'resolve', @@skip_name_resolve UNION ALL "
                "SELECT 'infile', @@local_infile UNION ALL "
                "SELECT 'binlog', @@log_bin;"
            ).splitlines()
        )
        log = server.log_file.read_text()
    assert values == {
        "pool": str(96 * 1024 * 1024),
        "conns": "42",
        "resolve": "1",
        "infile": "0",
        "binlog": "0",
    }
    # The error log went to stderr (captured in the log file), as Pebble would see it.
    assert "ready for connections" in log
