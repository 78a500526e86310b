"""Real servers on 127.0.0.1 for the workload tests and the benchmarks.

- `mariadb_server(tmp_path)`: MariaDB (standing in for MySQL 8.4) on a fresh
  data directory, a Unix socket and a free TCP port.
- `s3_server()`: an S3 API (moto) on a free port.
- `s3_server_enforcing_iam()`: moto in a process of its own, checking each
  request against its IAM user's policies once auth is switched on.

Both are context managers; the server is stopped by its PID (or shut down,
for the in-process S3 server) when the block ends. A missing server binary is
an error, never a reason to skip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Debian puts the server in /usr/sbin, which is not on every PATH.
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = "mariadb-install-db"
CLIENT = "mariadb"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0

# Settings that make a throwaway test server fast; none changes what SQL means.
FAST_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=512M",
    "--innodb-log-file-size=512M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
    "--max-connections=200",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(program: str) -> str:
    path = program if os.path.isabs(program) else shutil.which(program)
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"{program} is not installed: the workload tests need it")
    return path


@dataclass(frozen=True)
class MariaDB:
    """A running server: where it listens and how to get in as root."""

    pid: int
    datadir: Path
    socket: str
    port: int
    root_user: str
    root_password: str
    root_options_file: str  # [client] root credentials and the socket, mode 0600
    log_file: Path
    host: str = "127.0.0.1"

    def sql(self, sql: str, *, database: str | None = None, timeout: float = 300) -> str:
        """Run SQL as root over the socket; return the batch output (raises on error)."""
        argv = [CLIENT, f"--defaults-file={self.root_options_file}", "--batch", "-N"]
        if database:
            argv.append(f"--database={database}")
        done = subprocess.run(
            argv, input=sql.encode(), capture_output=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"SQL failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode()

    def scalar(self, sql: str, **kwargs) -> str:
        """Return the first column of the first row of the result."""
        return self.sql(sql, **kwargs).split("\n", 1)[0].split("\t", 1)[0]


def _write_options(path: Path, lines: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def _wait_ready(process: subprocess.Popen, options_file: Path, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            log = log_file.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mariadbd exited with {process.returncode}:\n{log}")
        done = subprocess.run(
            [CLIENT, f"--defaults-file={options_file}", "-N", "-e", "SELECT 1"],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"mariadbd not ready after {START_TIMEOUT}s: {done.stderr!r}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def mariadb_server(
    tmp_path: str | os.PathLike[str],
    *,
    defaults_file: str | os.PathLike[str] | None = None,
    extra_options: tuple[str, ...] = FAST_SERVER_OPTIONS,
) -> Iterator[MariaDB]:
    """Start MariaDB on a new data directory under `tmp_path`; stop it on leaving.

    With `defaults_file` the server reads that option file (as mysqld does in
    the charm) and the command line then points it at the temp directory.
    Root gets a random password; only root@localhost (the socket) is left.
    """
    mariadbd = _which(MARIADBD)
    install_db = _which(INSTALL_DB)
    _which(CLIENT)
    base = Path(tmp_path)
    datadir = base / "mariadb-data"
    log_file = base / "mariadbd.log"
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    run_dir = Path(tempfile.mkdtemp(prefix="mdb-"))
    sock = str(run_dir / "mysqld.sock")
    options_file = run_dir / "root.cnf"
    as_root = ["--user=root"] if os.geteuid() == 0 else []

    install = subprocess.run(
        [
            install_db,
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--datadir={datadir}",
            *as_root,
        ],
        capture_output=True,
        check=False,
    )
    if install.returncode != 0:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed: {install.stderr.decode()[-3000:]}")

    port = free_port()
    first = ["--no-defaults"] if defaults_file is None else [f"--defaults-file={defaults_file}"]
    argv = [
        mariadbd,
        *first,  # must come first
        f"--datadir={datadir}",
        f"--socket={sock}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--pid-file={run_dir / 'mysqld.pid'}",
        *extra_options,
        *as_root,
    ]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        _write_options(
            options_file,
            ["[client]", "user = root", f"socket = {sock}", "default-character-set = utf8mb4"],
        )
        _wait_ready(process, options_file, log_file)
        password = secrets.token_urlsafe(18)
        server = MariaDB(
            pid=process.pid,
            datadir=datadir,
            socket=sock,
            port=port,
            root_user="root",
            root_password=password,
            root_options_file=str(options_file),
            log_file=log_file,
        )
        # Only root@localhost stays; it gets a password (install-db leaves none).
        others = server.sql(
            "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.user "
            "WHERE User = 'root' AND Host <> 'localhost';"
        ).split()
        drops = "".join(f"DROP USER {account};\n" for account in others)
        server.sql(f"{drops}ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';\n")
        _write_options(
            options_file,
            [
                "[client]",
                "user = root",
                f"password = {password}",
                f"socket = {sock}",
                "default-character-set = utf8mb4",
            ],
        )
        yield server
    finally:
        _stop(process)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Run an S3 API (moto, in a thread of this process) on 127.0.0.1; yield its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def s3_server_enforcing_iam() -> Iterator[str]:
    """Run moto in its own process, able to enforce IAM policies on S3; yield its URL.

    Auth starts off (so a test can make buckets, users and policies freely)
    and is switched on by POSTing `0` to `<url>/moto-api/reset-auth`. Its
    own process, because moto keeps that switch in a module global: the
    in-process server of `s3_server()` must stay open to any key.
    """
    port = free_port()
    tests_dir = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tests_dir), env.get("PYTHONPATH")]))
    code = f"from workload.servers import serve_s3_enforcing_iam; serve_s3_enforcing_iam({port})"
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the S3 server exited with {process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the S3 server did not listen within {START_TIMEOUT}s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _string_like(expected: list[str] | str, actual: str) -> bool:
    """IAM's StringLike: any of the patterns, `*` any run of characters, `?` one."""
    import re

    patterns = [expected] if isinstance(expected, str) else expected
    for pattern in patterns:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        if re.fullmatch(regex, actual, flags=re.DOTALL):
            return True
    return False


def serve_s3_enforcing_iam(port: int) -> None:
    """Serve moto on `port` until stopped, with S3 listing conditions evaluated.

    moto checks a policy's Action and Resource, but evaluates only the
    StringEquals condition and gives S3 requests no condition values, so a
    statement conditioned on `s3:prefix` would allow any listing. MinIO
    gives `s3:prefix` the ListObjects `prefix` parameter (minio/minio
    RELEASE.2025-09-07T16-13-09Z, cmd/bucket-policy.go getConditionValues;
    minio/pkg v3.1.3 policy/condition/keyname.go) and evaluates StringLike
    as a wildcard match, as AWS does. This adds both to moto.

    moto also takes an Allow statement whose condition fails for an explicit
    deny, before it looks at the statement's resource: a policy with a
    prefix-scoped listing on two buckets would then refuse every listing.
    MinIO's Allow statement whose action, resource or condition does not
    match just does not apply (minio/pkg v3.1.3 policy/statement.go
    `IsAllowed`, policy/policy.go `IsAllowed`); the server here does the same.
    """
    from urllib.parse import parse_qs, urlsplit

    from moto.iam import access_control, policy_conditions
    from moto.server import ThreadedMotoServer

    policy_conditions.CONDITION_OPERATIONS["StringLike"] = _string_like
    statement_permits = access_control.IAMPolicyStatement.is_action_permitted

    def allow_applies_only_when_it_matches(
        self: Any, action: str, resource: str = "*", principal: Any = None, values: Any = None
    ) -> Any:
        result = statement_permits(self, action, resource, principal, values)
        if (
            result == access_control.PermissionResult.DENIED
            and self._statement["Effect"] == "Allow"
        ):
            return access_control.PermissionResult.NEUTRAL
        return result

    access_control.IAMPolicyStatement.is_action_permitted = allow_applies_only_when_it_matches  # type: ignore[method-assign]

    def check_action_permitted(self, resource: str) -> None:
        values = None
        if self._action == "s3:ListBucket":
            query = parse_qs(urlsplit(self._path).query, keep_blank_values=True)
            values = {"s3:prefix": (query.get("prefix") or [""])[0]}
        permitted = False
        for policy in self._access_key.collect_policies():
            result = access_control.IAMPolicy(policy).is_action_permitted(
                self._action, resource, incoming_condition_values=values
            )
            if result == access_control.PermissionResult.DENIED:
                self._raise_access_denied()
            permitted = permitted or result == access_control.PermissionResult.PERMITTED
        if not permitted:
            self._raise_access_denied()

    access_control.IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    while not stop:
        time.sleep(0.2)
    server.stop()
