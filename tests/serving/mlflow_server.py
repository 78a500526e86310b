"""Run the mlflow charm's Pebble service and migration on this machine, as Pebble would.

The command and environment are the charm's own (`mlflow_workload`, pure
functions of its settings). On localhost only the secrets file moves (the
charm writes it to `mlflow_workload.SECRETS_FILE` in the container); the
process gets the layer's environment over a bare base (PATH to this
environment's programs, an empty HOME), as Pebble starts a service with the
layer's environment over its own.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHARM_SRC = Path(__file__).resolve().parents[2] / "charms" / "mlflow" / "src"
if str(CHARM_SRC) not in sys.path:
    sys.path.insert(0, str(CHARM_SRC))

import mlflow_workload as wl  # noqa: E402

START_TIMEOUT = 180.0


def base_environment(home: Path) -> dict[str, str]:
    """What a process starts with besides the layer's environment."""
    programs = str(Path(sys.executable).parent)  # `mlflow` and `python3` of this environment
    return {"PATH": f"{programs}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def write_secrets(settings: wl.ServerSettings, path: Path) -> None:
    """Write the charm's secrets file where this machine keeps it, mode 0600 as the charm does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(wl.secrets_env(settings))


def localise(text: str, secrets_file: Path) -> str:
    """The charm's command text with the secrets file at its local path."""
    assert wl.SECRETS_FILE in text, "the command no longer reads the secrets file"
    return text.replace(wl.SECRETS_FILE, str(secrets_file))


def migrate(secrets_file: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run the charm's migration command (no environment of its own, as the charm runs it)."""
    command = wl.migrate_command()
    assert sum(wl.SECRETS_FILE in part for part in command) == 1, command
    argv = [localise(p, secrets_file) if wl.SECRETS_FILE in p else p for p in command]
    return subprocess.run(
        argv, env=base_environment(home), capture_output=True, text=True, timeout=600, check=False
    )


@contextlib.contextmanager
def serve(
    layer: dict[str, Any], secrets_file: Path, home: Path, log_file: Path
) -> Iterator[dict[str, Any]]:
    """Start the layer's service; yield what was run once its ready check answers.

    Yields {"argv", "environment"}; the server is stopped (its process group)
    on leaving.
    """
    service = layer["services"][wl.SERVICE]
    argv = shlex.split(localise(service["command"], secrets_file))
    environment = base_environment(home) | service["environment"]
    url = layer["checks"][wl.CHECK]["http"]["url"].replace("localhost", "127.0.0.1")
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            argv, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(process, url, log_file)
        yield {"argv": argv, "environment": environment}
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen, url: str, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the MLflow server exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - localhost
                if answer.status == 200:
                    return
        if time.monotonic() > deadline:
            tail = log_file.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the MLflow server not ready in {START_TIMEOUT}s:\n{tail}")
        time.sleep(0.5)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # gunicorn's workers are in the server's session: stop them all, by the group's id.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
