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

from simulator import BUNDLE, SimulationError, load_bundle, simulate  # noqa: E402
from workload.servers import s3_server  # noqa: E402
from workloads import Workloads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Simulate, print the status table and the figures; exit 1 when not all active."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=BUNDLE)
    parser.add_argument("--overlay", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    bundle = load_bundle(args.bundle, args.overlay)
    with s3_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        try:
            model = simulate(bundle, Workloads(endpoint), Path(tmp))
        except SimulationError as e:
            sys.stderr.write(f"simulation failed: {e}\n")
            return 1
        changes = model.update_status_everywhere()
        out = sys.stdout
        out.write(f"Model  kubeflow (simulated)  bundle {args.bundle.name}")
        out.write("".join(f" + {o.name}" for o in args.overlay) + "\n\n")
        out.write(model.status_table() + "\n\n")
        out.write(f"{len(model.hooks)} hooks run; settled in {model.settle_seconds:.2f} s\n")
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
