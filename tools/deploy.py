#!/usr/bin/env python3
"""Deploy bundle/bundle.yaml into a Juju Kubernetes model and wait until it is all active.

Needs the `juju` CLI (3.6) and a model on a Kubernetes cloud: the current
one, or the one given with --model. Unless --no-pack is given, the charms are
packed first (tools/pack.py, which needs charmcraft). Then:

    juju deploy ./bundle/bundle.yaml --trust --overlay <overlay> ...

with bundle/overlays/microk8s.yaml when no --overlay is given, and polls
`juju status --format json` until every application of the bundle and its
overlays is active with idle agents. It prints a line whenever that picture
changes, stops at the first unit in error, and on timeout lists what is not
active, with its status message.

    python tools/deploy.py [--no-pack] [--destructive-mode] [--overlay FILE ...]
                           [--model [CONTROLLER:]MODEL] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "bundle" / "bundle.yaml"
DEFAULT_OVERLAY = ROOT / "bundle" / "overlays" / "microk8s.yaml"

MISSING_JUJU = """\
juju is not installed (or not on PATH).
Install the 3.6 client:   sudo snap install juju --channel 3.6/stable
then bootstrap a controller and add a model on a Kubernetes cloud, e.g.
  juju bootstrap microk8s && juju add-model kubeflow
"""

NO_MODEL = """\
there is no Juju model to deploy into{where}.
Add one on a Kubernetes cloud (juju add-model kubeflow [<k8s-cloud>]), or
switch to one (juju switch <controller>:<model>), or pass --model.
juju said: {detail}
"""


class DeployError(Exception):
    """Deployment cannot go on; the message says why and what to do."""


# --- juju -------------------------------------------------------------------


def find_juju() -> str:
    """The juju executable, or a DeployError that says how to get it."""
    path = shutil.which("juju")
    if path is None:
        raise DeployError(MISSING_JUJU)
    return path


def model_args(model: str | None) -> list[str]:
    """`-m MODEL` when a model was named, nothing for the current one."""
    return ["-m", model] if model else []


def check_model(juju: str, model: str | None) -> str:
    """The full name of the model to deploy into; a DeployError if none or not Kubernetes."""
    argv = [juju, "show-model", *([model] if model else []), "--format", "json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    where = f" ({model})" if model else ""
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        raise DeployError(NO_MODEL.format(where=where, detail=detail))
    try:
        shown = json.loads(result.stdout)
        name, info = next(iter(shown.items()))
    except (json.JSONDecodeError, StopIteration, AttributeError):
        raise DeployError(f"unexpected output from juju show-model: {result.stdout!r}") from None
    # `model-type` is caas for Kubernetes models; `type` is the cloud's type.
    if info.get("model-type", "caas") != "caas" or info.get("type", "kubernetes") != "kubernetes":
        raise DeployError(
            f"model {name} is on {info.get('cloud', 'a machine cloud')}, not Kubernetes; "
            "the bundle needs a model on a Kubernetes cloud (juju add-model <name> <k8s-cloud>)"
        )
    controller = info.get("controller-name")
    return f"{controller}:{name}" if controller else name


# --- bundle -----------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from a file; a DeployError if missing or not a mapping."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise DeployError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise DeployError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise DeployError(f"{path} is not a YAML mapping")
    return data


def application_names(bundle: Path, overlays: Iterable[Path]) -> list[str]:
    """Applications the bundle and its overlays deploy (a null entry removes one)."""
    apps: dict[str, Any] = dict(load_yaml(bundle).get("applications") or {})
    for overlay in overlays:
        for name, spec in (load_yaml(overlay).get("applications") or {}).items():
            if spec is None:
                apps.pop(name, None)
            else:
                apps.setdefault(name, spec)
    return sorted(apps)


def missing_artefacts(bundle: Path) -> list[Path]:
    """Local charm files the bundle points at that do not exist."""
    missing = []
    for spec in (load_yaml(bundle).get("applications") or {}).values():
        charm = str((spec or {}).get("charm", ""))
        if charm.startswith((".", "/")):
            path = (bundle.parent / charm).resolve()
            if not path.exists():
                missing.append(path)
    return missing


def deploy_command(
    juju: str, bundle: Path, overlays: Sequence[Path], model: str | None
) -> list[str]:
    """The `juju deploy` argv for the bundle with its overlays."""
    argv = [juju, "deploy", str(bundle), "--trust", *model_args(model)]
    for overlay in overlays:
        argv += ["--overlay", str(overlay)]
    return argv


# --- status -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UnitState:
    """One unit's workload and agent status."""

    name: str
    workload: str
    message: str
    agent: str

    @property
    def settled(self) -> bool:
        """Active workload, idle agent."""
        return self.workload == "active" and self.agent == "idle"


@dataclasses.dataclass(frozen=True)
class AppState:
    """One application's status, and its units'."""

    name: str
    status: str
    message: str
    scale: int
    units: tuple[UnitState, ...]

    @property
    def settled(self) -> bool:
        """Active, with all its units there and settled."""
        return (
            self.status == "active"
            and len(self.units) >= max(self.scale, 1)
            and all(unit.settled for unit in self.units)
        )

    def summary(self) -> str:
        """A short progress line: status, settled units, and the message while unsettled."""
        active = sum(unit.settled for unit in self.units)
        text = f"{self.name}: {self.status} ({active}/{max(self.scale, len(self.units))} units)"
        return f"{text} {self.message}" if self.message and not self.settled else text


def _status(entry: Any) -> tuple[str, str]:
    entry = entry if isinstance(entry, dict) else {}
    return str(entry.get("current", "unknown")), str(entry.get("message", "") or "")


def parse_status(document: dict[str, Any], names: Iterable[str]) -> dict[str, AppState]:
    """The state of the named applications in a `juju status --format json` document.

    An application not (yet) in the document is reported as `missing`.
    """
    applications = document.get("applications") or {}
    states = {}
    for name in names:
        app = applications.get(name)
        if app is None:
            states[name] = AppState(name, "missing", "not in juju status yet", 1, ())
            continue
        status, message = _status(app.get("application-status"))
        units = []
        for unit_name, unit in sorted((app.get("units") or {}).items()):
            workload, unit_message = _status(unit.get("workload-status"))
            agent, agent_message = _status(unit.get("juju-status"))
            units.append(UnitState(unit_name, workload, unit_message or agent_message, agent))
        scale = int(app.get("scale", len(units)) or 0)
        states[name] = AppState(name, status, message, scale, tuple(units))
    return states


def problems(states: dict[str, AppState]) -> list[str]:
    """One line per application or unit that is not active and idle, with its message."""
    lines = []
    for app in states.values():
        if app.settled:
            continue
        lines.append(f"{app.name}: {app.status}" + (f": {app.message}" if app.message else ""))
        for unit in app.units:
            if not unit.settled:
                text = f"  {unit.name}: {unit.workload} (agent {unit.agent})"
                lines.append(text + (f": {unit.message}" if unit.message else ""))
    return lines


def errors(states: dict[str, AppState]) -> list[str]:
    """Units whose workload or agent is in error (a failed hook)."""
    return [
        f"{unit.name}: {unit.message or 'error'}"
        for app in states.values()
        for unit in app.units
        if "error" in (unit.workload, unit.agent)
    ]


def read_status(juju: str, model: str | None) -> dict[str, Any]:
    """`juju status --format json` of the model, parsed."""
    argv = [juju, "status", "--format", "json", *model_args(model)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DeployError(f"juju status failed: {(result.stderr or result.stdout).strip()}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise DeployError("juju status printed something that is not JSON") from None


def wait_for_active(
    read: Callable[[], dict[str, Any]],
    names: Sequence[str],
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    write: Callable[[str], Any] = sys.stdout.write,
) -> dict[str, AppState]:
    """Poll until every named application is settled; raise DeployError on error or timeout."""
    start = clock()
    last = ""
    while True:
        elapsed = clock() - start
        try:
            document = read()
        except DeployError as e:  # a lost connection to the controller is worth a retry
            if elapsed >= timeout:
                raise
            write(f"[{elapsed:5.0f}s] {e}; retrying\n")
            sleep(interval)
            continue
        states = parse_status(document, names)
        line = " | ".join(state.summary() for state in states.values())
        if line != last:
            write(f"[{elapsed:5.0f}s] {line}\n")
            last = line
        failed = errors(states)
        if failed:
            raise DeployError("units in error:\n  " + "\n  ".join(failed))
        if all(state.settled for state in states.values()):
            return states
        if elapsed >= timeout:
            raise DeployError(
                f"not all active after {timeout:.0f}s:\n  " + "\n  ".join(problems(states))
            )
        sleep(interval)


# --- command line -----------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; the MicroK8s overlay when no --overlay is given."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--overlay",
        action="append",
        type=Path,
        metavar="FILE",
        help="overlay bundle, repeatable (default: bundle/overlays/microk8s.yaml)",
    )
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help=argparse.SUPPRESS)
    parser.add_argument("-m", "--model", help="[controller:]model (default: the current one)")
    parser.add_argument("--no-pack", action="store_true", help="deploy the artefacts in build/")
    parser.add_argument(
        "--destructive-mode", action="store_true", help="pack on this host (see tools/pack.py)"
    )
    parser.add_argument("--platform", help="pack only this platform, e.g. amd64")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for active (default: 1800)"
    )
    parser.add_argument(
        "--interval", type=float, default=10, help="seconds between status polls (default: 10)"
    )
    args = parser.parse_args(argv)
    if args.overlay is None:
        args.overlay = [DEFAULT_OVERLAY]
    if args.timeout <= 0 or args.interval <= 0:
        parser.error("--timeout and --interval must be positive")
    return args


def run(args: argparse.Namespace) -> None:
    """Check, pack, deploy, wait; a DeployError says what went wrong."""
    juju = find_juju()
    model = check_model(juju, args.model)
    sys.stdout.write(f"deploying into {model}\n")
    overlays = [path.resolve() for path in args.overlay]
    for path in [args.bundle, *overlays]:
        if not path.is_file():
            raise DeployError(f"no such file: {path}")
    if not args.no_pack:
        import pack

        pack_argv = ["--destructive-mode"] if args.destructive_mode else []
        pack_argv += [f"--platform={args.platform}"] if args.platform else []
        if pack.main(pack_argv) != 0:
            raise DeployError("packing failed (see above); fix it or deploy with --no-pack")
    missing = missing_artefacts(args.bundle)
    if missing:
        listed = "\n  ".join(str(path) for path in missing)
        raise DeployError(f"charm artefacts missing (run python tools/pack.py):\n  {listed}")
    argv = deploy_command(juju, args.bundle.resolve(), overlays, args.model)
    sys.stdout.write(" ".join(argv) + "\n")
    sys.stdout.flush()
    if subprocess.run(argv, check=False).returncode != 0:
        raise DeployError("juju deploy failed (see above)")
    names = application_names(args.bundle, overlays)
    wait_for_active(
        lambda: read_status(juju, args.model),
        names,
        timeout=args.timeout,
        interval=args.interval,
    )
    sys.stdout.write(f"all active: {', '.join(names)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when the bundle is deployed and active."""
    args = parse_args(argv)
    try:
        run(args)
    except DeployError as e:
        sys.stderr.write(f"error: {str(e).rstrip()}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
