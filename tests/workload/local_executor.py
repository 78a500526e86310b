"""An Executor that runs commands on this machine, for the workload tests.

It stands in for the charm's Pebble executor: the server, backup and restore
code under test cannot tell the difference. Relative file paths are taken
under `root`; absolute ones are used as they are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from executor import WorkloadError

_CHUNK = 1024 * 1024


class LocalExecutor:
    """Run commands with subprocess; stream stdout out of and stdin into them."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root) if root is not None else Path.cwd()
        self.commands: list[list[str]] = []

    def path(self, path: str) -> Path:
        """Where `path` lives on this machine."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str] | None:
        if not env:
            return None
        return {**os.environ, **env}

    def run(
        self,
        argv: list[str],
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Run a command to completion and return its stdout."""
        self.commands.append(list(argv))
        try:
            done = subprocess.run(
                argv,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                env=self._env(env),
                cwd=self.root,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as e:
            raise WorkloadError(argv, f"not found: {e.filename}") from e
        except subprocess.TimeoutExpired as e:
            raise WorkloadError(argv, f"timed out after {timeout} seconds") from e
        if done.returncode != 0:
            raise WorkloadError(argv, done.stderr.decode("utf-8", "replace"), done.returncode)
        return done.stdout

    @contextlib.contextmanager
    def open_output(
        self, argv: list[str], *, env: Mapping[str, str] | None = None
    ) -> Iterator[IO[bytes]]:
        """Start a command and yield its stdout; wait for it (and check it) on leaving."""
        self.commands.append(list(argv))
        # stderr goes to a file, so a chatty command never blocks on a full pipe.
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    env=self._env(env),
                    cwd=self.root,
                )
            except FileNotFoundError as e:
                raise WorkloadError(argv, f"not found: {e.filename}") from e
            assert process.stdout is not None
            try:
                yield process.stdout
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                process.stdout.close()
            code = process.wait()
            if code != 0:
                errors.seek(0)
                raise WorkloadError(argv, errors.read().decode("utf-8", "replace"), code)

    def feed_input(
        self,
        argv: list[str],
        source: IO[bytes],
        *,
        env: Mapping[str, str] | None = None,
    ) -> bytes:
        """Run a command with `source` streamed to its stdin; return its stdout."""
        self.commands.append(list(argv))
        with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=errors,
                    env=self._env(env),
                    cwd=self.root,
                )
            except FileNotFoundError as e:
                raise WorkloadError(argv, f"not found: {e.filename}") from e
            assert process.stdin is not None
            try:
                shutil.copyfileobj(source, process.stdin, _CHUNK)
            except BrokenPipeError:
                pass  # the command stopped reading: its exit code says why
            except BaseException:
                process.kill()
                process.wait()
                raise
            finally:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
            code = process.wait()
            if code != 0:
                errors.seek(0)
                raise WorkloadError(argv, errors.read().decode("utf-8", "replace"), code)
            output.seek(0)
            return output.read()

    def push(self, path: str, data: bytes | str, *, permissions: int = 0o600) -> None:
        """Write a file with `permissions`, creating parent directories."""
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = data.encode() if isinstance(data, str) else data
        # Created with the final mode, so the content is never readable by others.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, permissions)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(target, permissions)

    def remove(self, path: str) -> None:
        """Remove a file if it is there."""
        with contextlib.suppress(FileNotFoundError):
            self.path(path).unlink()
