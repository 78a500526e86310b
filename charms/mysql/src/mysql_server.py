"""The MySQL server in the `mysql` container: its config, Pebble layer, first start and SQL.

Everything that touches the server goes through an :class:`executor.Executor`,
so the workload tests run this very module against a real server on
localhost. SQL goes to the `mysql` client on stdin and credentials go into an
option file (mode 0600): neither ever appears on a command line.

The charm runs MySQL 8.4. The workload tests run MariaDB 10.11 in its place,
so the SQL and the client options here are those both accept; where the two
differ it says so next to the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from executor import Executor, WorkloadError

if TYPE_CHECKING:
    from ops.pebble import LayerDict

SYSTEM_DATABASES = frozenset({"mysql", "sys", "information_schema", "performance_schema"})
# Juju storage is mounted at /var/lib/mysql; the data directory is a folder
# inside it, so that `mysqld --initialize` finds it empty (a fresh volume
# holds lost+found on some storage classes).
DATA_DIR = "/var/lib/mysql/data"
SOCKET = "/var/run/mysqld/mysqld.sock"
PID_FILE = "/var/run/mysqld/mysqld.pid"
CONFIG_FILE = "/etc/mysql/conf.d/zz-charm.cnf"
CLIENT_OPTIONS_FILE = "/etc/mysql/charm-client.cnf"
# The first-start SQL holds passwords: it lives outside the volume (gone with
# the pod) and outside DATA_DIR (which `--initialize` wants empty).
INIT_FILE = "/var/run/mysqld/charm-init.sql"
PORT = 3306
SERVICE = "mysqld"
ADMIN_USER = "charm-admin"
# Accounts the relation code must never create, change the grants of, or drop.
RESERVED_USERS = frozenset(
    {"root", ADMIN_USER, "mysql.sys", "mysql.session", "mysql.infoschema", "mariadb.sys"}
)
# The charm makes one account per `database` relation, `relation-<id>`@`%`, and
# no other account by that name: those it may drop when the relation is gone.
RELATION_USER_HOST = "%"
_RELATION_USER = re.compile(r"relation-(0|[1-9][0-9]{0,17})")

MIN_BUFFER_POOL_SIZE = 5 * 1024 * 1024  # InnoDB's own minimum on MySQL 8.4
MAX_BUFFER_POOL_SIZE = 2**64 - 1  # InnoDB's maximum on 64-bit systems, MySQL 8.4
MAX_CONNECTIONS_LIMIT = 100_000  # the server's upper bound for max_connections

QUERY_TIMEOUT = 120.0  # seconds for one batch of administrative SQL
READY_TIMEOUT = 10.0

_DATABASE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# MySQL 8.4 allows 32 characters in a user name, MariaDB 80: keep to the smaller.
_USER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# A host name, an IP address (v4 or v6), or a pattern with % and _.
_HOST_NAME = re.compile(r"[A-Za-z0-9_.:%-]{1,255}")
_BATCH_ESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\0": "\0"}


def is_valid_database_name(name: str) -> bool:
    """Whether `name` is a database the charm may create and hand out.

    1 to 64 characters of letters, digits, `_` and `-`, and not one of the
    server's own databases (compared case-insensitively).
    """
    return (
        isinstance(name, str)
        and _DATABASE_NAME.fullmatch(name) is not None
        and name.lower() not in SYSTEM_DATABASES
    )


def is_valid_user_name(name: str) -> bool:
    """Whether `name` is an account name the charm may use (1-32 of [A-Za-z0-9_.-])."""
    return isinstance(name, str) and _USER_NAME.fullmatch(name) is not None


def relation_user(relation_id: int) -> str:
    """The account name the charm gives the user of `database` relation `relation_id`."""
    if not isinstance(relation_id, int) or isinstance(relation_id, bool) or relation_id < 0:
        raise ValueError(f"invalid relation id {relation_id!r}")
    return f"relation-{relation_id}"


def relation_id_of(user: str) -> int | None:
    """The relation id in a name `relation_user` made, or None for any other name."""
    match = _RELATION_USER.fullmatch(user) if isinstance(user, str) else None
    return int(match.group(1)) if match else None


def quote_identifier(name: str) -> str:
    """Quote a database, table or column name with backticks (inner backticks doubled)."""
    if not name or "\0" in name:
        raise ValueError("an identifier must be non-empty and free of NUL characters")
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """Quote a string literal for SQL.

    Quotes are doubled, backslashes and NULs escaped. That relies on the
    server's default `sql_mode`, without NO_BACKSLASH_ESCAPES (in that mode a
    backslash is an ordinary character); `render_config` never sets it.
    """
    escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0")
    return f"'{escaped}'"


def _account(user: str, host: str) -> str:
    return f"{quote_string(user)}@{quote_string(host)}"


def _grant_level(database: str) -> str:
    """`db`.* for GRANT, matching that database only.

    In a database-level GRANT, `_` and `%` are wildcards (`app_1` would also
    match `appX1`), so they are escaped. Both MySQL 8.4 (with its default
    partial_revokes=OFF) and MariaDB honour the escape.
    """
    pattern = database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return f"{quote_identifier(pattern)}.*"


def _check_database(name: str) -> None:
    if not is_valid_database_name(name):
        raise ValueError(f"invalid database name {name!r}")


def _check_user(name: str, *, reserved_ok: bool = False) -> None:
    if not is_valid_user_name(name):
        raise ValueError(f"invalid user name {name!r}")
    if not reserved_ok and name.lower() in RESERVED_USERS:
        raise ValueError(f"user {name!r} is reserved for the server and the charm")


def _check_host(host: str) -> None:
    if not isinstance(host, str) or _HOST_NAME.fullmatch(host) is None:
        raise ValueError(f"invalid host {host!r}")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise ValueError("a password must be a non-empty string")
    if "\0" in password or "\n" in password or "\r" in password:
        raise ValueError("a password must not contain NUL or line breaks")


# --- server configuration -----------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """The settings the charm derives from its config and the pod's resources."""

    buffer_pool_size: int  # bytes
    max_connections: int

    def __post_init__(self) -> None:
        if not isinstance(self.buffer_pool_size, int) or not (
            MIN_BUFFER_POOL_SIZE <= self.buffer_pool_size <= MAX_BUFFER_POOL_SIZE
        ):
            raise ValueError(
                f"buffer_pool_size must be between {MIN_BUFFER_POOL_SIZE} "
                f"and {MAX_BUFFER_POOL_SIZE} bytes"
            )
        if not isinstance(self.max_connections, int) or not (
            1 <= self.max_connections <= MAX_CONNECTIONS_LIMIT
        ):
            raise ValueError(f"max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT}")


def render_config(cfg: ServerConfig) -> str:
    """Render the server's whole option file (mysqld reads nothing else: `pebble_layer`).

    The same input always gives the same text, so the charm can compare it
    with what is in the container and restart only on a real change.
    """
    lines = [
        "# Written by the mysql charm; local changes are overwritten.",
        "[mysqld]",
        f"datadir = {DATA_DIR}",
        f"socket = {SOCKET}",
        f"pid-file = {PID_FILE}",
        f"port = {PORT}",
        "bind-address = 0.0.0.0",
        # Accounts are matched by IP address; no DNS lookups on connect.
        "skip-name-resolve",
        "character-set-server = utf8mb4",
        f"innodb_buffer_pool_size = {cfg.buffer_pool_size}",
        f"max_connections = {cfg.max_connections}",
        # MySQL 8.4's default; MariaDB's is 16M. Room for large rows in a restore.
        "max_allowed_packet = 67108864",
        "local-infile = OFF",
        # No log-error: without it the server writes its error log to stderr,
        # which Pebble captures (`juju debug-log`, `pebble logs`).
        #
        # MySQL 8.4 writes binary logs by default and keeps them 30 days. There
        # are no replicas and no point-in-time recovery here (backups are
        # logical dumps), so they would only fill the volume. MariaDB has them
        # off already and accepts the same option.
        "skip-log-bin",
        # GTIDs stay off (the default in both): with them on, mysqldump 8.4
        # would take a global read lock at the start of every backup.
        #
        # The X protocol (port 33060) is MySQL-only and unused; `loose-` makes
        # a server that does not know the option ignore it.
        "loose-mysqlx = OFF",
    ]
    return "\n".join(lines) + "\n"


def pebble_layer() -> LayerDict:
    """Return the Pebble layer of the `mysql` container: the server and its ready check.

    mysqld reads only CONFIG_FILE (`--defaults-file`), so nothing in the
    image's own /etc/my.cnf can change or contradict what the charm wrote. The
    image's client programs still read /etc/my.cnf, which is harmless.
    """
    return {
        "summary": "MySQL server",
        "description": "mysqld, configured by the mysql charm",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "MySQL server",
                "command": f"mysqld --defaults-file={CONFIG_FILE}",
                "startup": "enabled",
                "user": "mysql",
                "group": "mysql",
                # SIGTERM makes InnoDB flush and shut down cleanly, which can
                # take longer than Pebble's default 5 seconds before SIGKILL.
                "kill-delay": "20s",
            }
        },
        "checks": {
            "mysqld-ready": {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "threshold": 3,
                "tcp": {"port": PORT},
            }
        },
    }


def initialise_argv() -> list[str]:
    """Return the command that creates the system tables in an empty DATA_DIR (run once).

    Before running it the charm writes CONFIG_FILE (the data directory is
    created with the settings in it), makes DATA_DIR owned by `mysql`, and
    pushes `initialise_sql(...)` to INIT_FILE readable by `mysql` (mysqld
    reads it after dropping to that user). It removes INIT_FILE afterwards.

    MySQL 8.4 only: MariaDB makes its system tables with `mariadb-install-db`.
    """
    return [
        "mysqld",
        f"--defaults-file={CONFIG_FILE}",  # must come first
        "--initialize-insecure",
        "--user=mysql",
        f"--datadir={DATA_DIR}",
        f"--init-file={INIT_FILE}",
    ]


def initialise_sql(root_password: str, admin_password: str) -> str:
    """Return the SQL run at the end of initialisation: root's password, the charm's account.

    One statement per line, no comments: what an init file may hold on both
    servers. The account is @localhost, reached over the socket by the
    client that runs in the workload container.
    """
    _check_password(root_password)
    _check_password(admin_password)
    root = _account("root", "localhost")
    admin = _account(ADMIN_USER, "localhost")
    statements = [
        f"ALTER USER {root} IDENTIFIED BY {quote_string(root_password)};",
        f"CREATE USER IF NOT EXISTS {admin} IDENTIFIED BY {quote_string(admin_password)};",
        f"ALTER USER {admin} IDENTIFIED BY {quote_string(admin_password)};",
        f"GRANT ALL PRIVILEGES ON *.* TO {admin} WITH GRANT OPTION;",
    ]
    return "\n".join(statements) + "\n"


# --- the client side ------------------------------------------------------------


def _option_value(value: str) -> str:
    """Quote a value for an option file with the escapes the servers' parser knows."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _unescape_batch(field: str) -> str:
    """Undo the escaping of `mysql --batch` output (tab, newline, backslash, NUL)."""
    if "\\" not in field:
        return field
    return re.sub(r"\\[\\tn0]", lambda m: _BATCH_ESCAPES[m.group(0)], field)


class MySQLServer:
    """One account's view of a running server, through the `mysql` and `mysqldump` clients.

    With `host` set the clients connect over TCP to host:port; otherwise over
    `socket`. Credentials are written by `write_client_options()` to
    `options_file` (mode 0600), which every command names with
    `--defaults-extra-file` (it must be the first option).
    """

    def __init__(
        self,
        executor: Executor,
        *,
        user: str,
        password: str,
        socket: str | None = SOCKET,
        host: str | None = None,
        port: int = PORT,
        options_file: str = CLIENT_OPTIONS_FILE,
        client: str = "mysql",
        dump: str = "mysqldump",
    ):
        if not host and not socket:
            raise ValueError("either a socket or a host is needed")
        _check_user(user, reserved_ok=True)
        self._executor = executor
        self.user = user
        self._password = password
        self.socket = socket
        self.host = host
        self.port = port
        self.options_file = options_file
        self._client = client
        self._dump = dump

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self.host else self.socket
        return f"MySQLServer(user={self.user!r}, at={where!r})"

    @property
    def executor(self) -> Executor:
        """The executor every command of this server runs through."""
        return self._executor

    # --- plumbing

    def client_options(self) -> str:
        """Return the client option file's content: who to connect as, and where."""
        lines = [
            "[client]",
            f"user = {_option_value(self.user)}",
            f"password = {_option_value(self._password)}",
        ]
        if self.host:
            lines += [
                f"host = {_option_value(self.host)}",
                f"port = {int(self.port)}",
                "protocol = tcp",
            ]
        else:
            assert self.socket is not None
            lines += [f"socket = {_option_value(self.socket)}", "protocol = socket"]
        return "\n".join(lines) + "\n"

    def write_client_options(self) -> None:
        """Write `client_options()` to the option file, mode 0600."""
        self._executor.push(self.options_file, self.client_options(), permissions=0o600)

    def _client_argv(self, *options: str) -> list[str]:
        return [
            self._client,
            f"--defaults-extra-file={self.options_file}",
            "--default-character-set=utf8mb4",
            *options,
        ]

    def _run_sql(self, sql: str, *, timeout: float | None = QUERY_TIMEOUT) -> str:
        argv = self._client_argv("--batch", "--skip-column-names", "--connect-timeout=10")
        out = self._executor.run(argv, stdin=sql.encode(), timeout=timeout)
        return out.decode("utf-8", "replace")

    # --- queries

    def is_ready(self) -> bool:
        """Whether the server answers a query with these credentials."""
        try:
            out = self._run_sql("SELECT 1;", timeout=READY_TIMEOUT)
        except WorkloadError:
            return False
        return out.strip() == "1"

    def version(self) -> str:
        """Return the server's version, e.g. `8.4.3` (MariaDB: `10.11.6-MariaDB-...`)."""
        rows = self.query("SELECT VERSION();")
        return rows[0][0] if rows and rows[0] else ""

    def query(self, sql: str) -> list[list[str]]:
        """Run SQL and return the rows of its result, each a list of column texts.

        SQL NULL comes back as the text `NULL`.
        """
        out = self._run_sql(sql)
        return [[_unescape_batch(f) for f in line.split("\t")] for line in out.splitlines()]

    def execute(self, sql: str) -> None:
        """Run SQL whose result does not matter; raise WorkloadError if it fails."""
        self._run_sql(sql)

    # --- databases and accounts

    def ensure_database(self, name: str) -> None:
        """Create the database if it does not exist."""
        _check_database(name)
        self.execute(
            f"CREATE DATABASE IF NOT EXISTS {quote_identifier(name)} CHARACTER SET utf8mb4;"
        )

    def ensure_user(self, user: str, password: str, database: str, host: str = "%") -> None:
        """Make `user`@`host` exist with `password` and every privilege on `database`.

        Safe to repeat: an existing account gets the password set again and
        keeps the databases granted before, so one account with one password
        can be given several databases, one call each.
        """
        _check_user(user)
        _check_host(host)
        _check_database(database)
        _check_password(password)
        account = _account(user, host)
        secret = quote_string(password)
        self.execute(
            "\n".join(
                [
                    f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret};",
                    f"ALTER USER {account} IDENTIFIED BY {secret};",
                    f"GRANT ALL PRIVILEGES ON {_grant_level(database)} TO {account};",
                ]
            )
        )

    def drop_user(self, user: str, host: str = "%") -> None:
        """Remove the account and its privileges; its databases stay. No error if absent.

        MySQL 8.4 refuses to drop an account that is the DEFINER of a stored
        routine, view, trigger or event; MariaDB drops it anyway.
        """
        _check_user(user)
        _check_host(host)
        self.execute(f"DROP USER IF EXISTS {_account(user, host)};")

    def relation_users(self) -> dict[str, int]:
        """The relation accounts on the server: `relation-<id>`@`%`, by name, with their id.

        Any other account, `relation-x`, `relation-007` or `relation-1`@`localhost`
        among them, is not one the charm made and is left out.
        """
        # mysql.user is a table in MySQL 8.4 and a view in MariaDB (whose roles
        # have an empty Host, so never match).
        rows = self.query(
            "SELECT User FROM mysql.user WHERE Host = '%' AND User LIKE 'relation-%';"
        )
        found = {}
        for row in rows:
            if len(row) == 1 and (relation_id := relation_id_of(row[0])) is not None:
                found[row[0]] = relation_id
        return found

    def drop_stale_relation_users(self, live: set[int]) -> tuple[list[str], list[str]]:
        """Drop the relation accounts whose relation is not in `live`; their databases stay.

        Returns the accounts dropped and those that could not be (MySQL 8.4
        refuses to drop the DEFINER of a stored routine, view, trigger or
        event), each sorted. One query when nothing is stale.
        """
        dropped, failed = [], []
        for user, relation_id in sorted(self.relation_users().items()):
            if relation_id in live:
                continue
            try:
                self.drop_user(user, RELATION_USER_HOST)
            except WorkloadError:
                failed.append(user)
            else:
                dropped.append(user)
        return dropped, failed

    def revoke_unasked_databases(
        self, wanted: dict[int, set[str]]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Revoke from each relation user the databases its relation no longer asks for.

        `wanted` maps a relation id to the databases it asks for; the users of
        relations not in it are left alone. Only grants are revoked: the
        databases and their data stay. Returns the (user, database) grants
        revoked and those that could not be, each sorted. One query when
        nothing is to be revoked.
        """
        # mysql.db holds database-level grants (a table in both servers), with
        # the name as the GRANT gave it: `_` and `%` escaped (see _grant_level).
        rows = self.query(
            "SELECT User, Db FROM mysql.db WHERE Host = '%' AND User LIKE 'relation-%';"
        )
        revoked, failed = [], []
        for row in sorted(r for r in rows if len(r) == 2):
            user, pattern = row
            relation_id = relation_id_of(user)
            if relation_id is None or relation_id not in wanted:
                continue
            name = re.sub(r"\\(.)", r"\1", pattern)
            if name in wanted[relation_id]:
                continue
            account = _account(user, RELATION_USER_HOST)
            try:
                self.execute(
                    f"REVOKE ALL PRIVILEGES ON {quote_identifier(pattern)}.* FROM {account};"
                )
            except WorkloadError:
                failed.append((user, name))
            else:
                revoked.append((user, name))
        return revoked, failed

    def set_password(self, user: str, password: str) -> None:
        """Set the password of `user` on every host it exists on.

        When `user` is the account this object connects as, the option file
        is rewritten with the new password.
        """
        _check_user(user, reserved_ok=True)
        _check_password(password)
        # mysql.user is a table in MySQL 8.4 and a view in MariaDB; both read the same.
        who = quote_string(user)
        rows = self.query(f"SELECT Host FROM mysql.user WHERE User = {who};")  # noqa: S608
        hosts = sorted(row[0] for row in rows if row)
        if not hosts:
            return
        secret = quote_string(password)
        self.execute(
            "\n".join(f"ALTER USER {_account(user, h)} IDENTIFIED BY {secret};" for h in hosts)
        )
        if user == self.user:
            self._password = password
            self.write_client_options()

    def user_databases(self) -> list[str]:
        """Every database except the server's own, sorted."""
        rows = self.query("SHOW DATABASES;")
        names = (row[0] for row in rows if row)
        return sorted(n for n in names if n.lower() not in SYSTEM_DATABASES)

    # --- dump and restore

    def dump_argv(self, databases: list[str]) -> list[str]:
        """Return the command dumping `databases` to stdout, consistent and without locking.

        `--single-transaction` reads every InnoDB table from one snapshot
        while writes go on. No global read lock is taken: MariaDB's mysqldump
        never takes one with this option, and MySQL 8.4's takes one only to
        read GTIDs, which are off (see `render_config`). Routines, triggers
        and events are included; `--databases` puts CREATE DATABASE and USE
        in the dump, with a DROP DATABASE first so a restore gives back
        exactly what was dumped.
        """
        if not databases:
            raise ValueError("no databases to dump")
        for name in databases:
            _check_database(name)
        return [
            self._dump,
            f"--defaults-extra-file={self.options_file}",
            "--default-character-set=utf8mb4",
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",
            "--add-drop-database",
            "--databases",
            *databases,
        ]

    def restore_argv(self) -> list[str]:
        """Return the command that reads a dump on stdin; it stops at the first error."""
        return self._client_argv("--batch")
