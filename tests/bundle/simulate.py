"""Run the bundle (and overlays) in the simulated model and print a `juju status`-like table.

    python tests/bundle/simulate.py [--overlay FILE ...] [--bundle FILE]

Every charm's real code runs under `ops.testing`; nothing talks to Juju or
Kubernetes. Use it to check a bundle and overlay before a real deploy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent / "lib")]

from simulator import BUNDLE, BundleError, SimulationError, load_bundle, simulate  # noqa: E402
from workload.servers import s3_server  # noqa: E402
from workloads import Workloads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Simulate, print the status table and the figures.

    Exit 1 when not all active, 2 when the bundle or an overlay cannot be used.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE)
    parser.add_argument("--overlay", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle, args.overlay)
    except BundleError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    with s3_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        try:
            model = simulate(bundle, Workloads(endpoint), Path(tmp))
        except SimulationError as e:
            sys.stderr.write(f"simulation failed: {e}\n")
            return 1
        settle_hooks, settle_seconds = len(model.hooks), model.settle_seconds
        # The settle check: one update-status per unit must change nothing.
        changes = model.update_status_everywhere()
        check_hooks = len(model.hooks) - settle_hooks
        out = sys.stdout
        out.write(f"Model  kubeflow (simulated)  bundle {args.bundle.name}")
        out.write("".join(f" + {o.name}" for o in args.overlay) + "\n\n")
        out.write(model.status_table() + "\n\n")
        out.write(f"{settle_hooks} hooks to settle, in {settle_seconds:.2f} s;")
        out.write(f" then {check_hooks} update-status hooks (one per unit) changed ")
        out.write(f"{len(changes)} thing(s), listed below\n" if changes else "nothing\n")
        problems = [
            f"{name}: {status.name}: {status.message}"
            for name, status in {**model.statuses, **model.app_statuses}.items()
            if status.name != "active"
        ]
        problems += [f"update-status changed {c}" for c in changes]
        problems += [f"a credential shows in {leak}" for leak in model.leaks()]
        for problem in problems:
            out.write(f"problem: {problem}\n")
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
