"""How the mysql charm runs commands in its workload container.

The server, backup and restore code only talks to an :class:`Executor`. In the
charm it is :class:`PebbleExecutor` (Pebble exec and file push in the `mysql`
container); the workload tests run the very same code through a local
executor against a real server on localhost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import IO, Protocol

import ops


class WorkloadError(Exception):
    """A command in the workload failed, or the workload could not be reached."""

    def __init__(self, argv: list[str], message: str, exit_code: int | None = None):
        self.argv = argv
        self.exit_code = exit_code
        super().__init__(f"{argv[0]} failed: {message.strip() or 'no output'}")


class Executor(Protocol):
    """Runs commands and writes files where the workload lives."""

    def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Run a command to completion and return its stdout; raise WorkloadError on failure."""
        ...

    def open_output(
        self, argv: list[str], *, env: Mapping[str, str] | None = None
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Start a command and give its stdout as a stream of bytes.

        Leaving the context waits for the command; a non-zero exit raises WorkloadError.
        """
        ...

    def feed_input(
        self,
        argv: list[str],
        source: IO[bytes],
        *,
        env: Mapping[str, str] | None = None,
    ) -> bytes:
        """Run a command with `source` streamed to its stdin; return stdout, raise on failure."""
        ...

    def push(self, path: str, data: bytes | str, *, permissions: int = 0o600) -> None:
        """Write a file, creating parent directories."""
        ...

    def remove(self, path: str) -> None:
        """Remove a file; no error if it is not there."""
        ...


class PebbleExecutor:
    """An Executor backed by Pebble exec in one workload container."""

    def __init__(self, container: ops.Container, *, user: str | None = None):
        self._container = container
        self._user = user

    def _exec(self, argv: list[str], stdin, env, timeout=None):
        # No stdin is an empty stdin: nothing is inherited from the charm.
        try:
            return self._container.exec(
                argv,
                stdin=b"" if stdin is None else stdin,
                environment=dict(env) if env else None,
                encoding=None,
                timeout=timeout,
                user=self._user,
            )
        except (ops.pebble.APIError, ops.pebble.ConnectionError) as e:
            raise WorkloadError(argv, str(e)) from e

    def run(self, argv, *, stdin=None, env=None, timeout=None) -> bytes:
        """Run a command in the container to completion; return its stdout."""
        process = self._exec(argv, stdin, env, timeout)
        try:
            out, _ = process.wait_output()
        except ops.pebble.ExecError as e:
            raise WorkloadError(argv, _text(e.stderr), e.exit_code) from e
        except (ops.pebble.ChangeError, ops.pebble.TimeoutError) as e:
            raise WorkloadError(argv, str(e)) from e
        return out or b""

    @contextlib.contextmanager
    def open_output(self, argv, *, env=None) -> Iterator[IO[bytes]]:
        """Stream a command's stdout; leaving the block waits for it."""
        process = self._exec(argv, None, env)
        stdout = process.stdout
        assert stdout is not None
        try:
            yield stdout  # type: ignore[misc]
        except BaseException:
            # The reader gave up: do not leave the command running.
            with contextlib.suppress(ops.pebble.APIError, ops.pebble.ConnectionError):
                process.send_signal("SIGKILL")
            raise
        stderr = _text(process.stderr.read()) if process.stderr is not None else ""
        try:
            process.wait()
        except ops.pebble.ExecError as e:
            raise WorkloadError(argv, stderr, e.exit_code) from e
        except ops.pebble.ChangeError as e:
            raise WorkloadError(argv, str(e)) from e

    def feed_input(self, argv, source, *, env=None) -> bytes:
        """Stream `source` to a command's stdin; return its stdout."""
        return self.run(argv, stdin=source, env=env)  # type: ignore[arg-type]

    def push(self, path: str, data: bytes | str, *, permissions: int = 0o600) -> None:
        """Write a file in the container."""
        try:
            self._container.push(
                path, data, make_dirs=True, permissions=permissions, user=self._user
            )
        except (ops.pebble.PathError, ops.pebble.ConnectionError) as e:
            raise WorkloadError(["push", path], str(e)) from e

    def remove(self, path: str) -> None:
        """Remove a file in the container; no error if it is absent."""
        with contextlib.suppress(ops.pebble.PathError):
            try:
                self._container.remove_path(path)
            except ops.pebble.ConnectionError as e:
                raise WorkloadError(["remove", path], str(e)) from e


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data
