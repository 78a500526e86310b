"""Benchmark: how many hooks the simulated bundle runs to settle, and how long it takes.

Not a test: it prints figures. The bundle, alone and with each overlay, is
deployed in the simulated model of tests/bundle (every charm's real code
under `ops.testing`, a fake Kubernetes, a real S3 server behind MinIO) until
nothing changes; then one update-status per unit must change nothing. For
each it prints the hooks run to settle, the time they took, and the hooks
each application ran.

    PYTHONPATH=lib python bench/settle.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "lib", ROOT / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from bundle.simulator import BUNDLE, load_bundle, simulate  # noqa: E402
from bundle.workloads import Workloads  # noqa: E402
from workload.servers import s3_server  # noqa: E402

CASES = [[], *([o] for o in sorted((BUNDLE.parent / "overlays").glob("*.yaml")))]


def main() -> int:
    """Settle each case once and print its figures; 1 when one did not settle all active."""
    rows = []
    unsettled = []
    with s3_server() as endpoint, tempfile.TemporaryDirectory(prefix="bundlebench-") as tmp:
        for n, overlays in enumerate(CASES):
            name = " + ".join(["bundle", *(o.stem for o in overlays)])
            model = simulate(
                load_bundle(BUNDLE, overlays), Workloads(endpoint), Path(tmp) / str(n)
            )
            by_app = collections.Counter(h.unit.split("/")[0] for h in model.hooks)
            settled_hooks = len(model.hooks)
            changes = model.update_status_everywhere()
            not_active = [
                f"{unit}: {status.name}: {status.message}"
                for unit, status in {**model.statuses, **model.app_statuses}.items()
                if status.name != "active"
            ]
            if changes or not_active:
                unsettled.append(f"{name}: {'; '.join([*changes, *not_active])}")
            rows.append((name, settled_hooks, model.settle_seconds, by_app))
    print("The simulated bundle (tests/bundle): hooks run until nothing changes, and their time.")
    width = max(len(name) for name in [*(r[0] for r in rows), *rows[0][3]])
    print(f"\n{'model':<{width}} {'hooks':>6} {'settle':>9}")
    for name, hooks, seconds, _ in rows:
        print(f"{name:<{width}} {hooks:>6} {seconds:>7.2f} s")
    print("\nhooks per application (the bundle alone):")
    for app, hooks in sorted(rows[0][3].items(), key=lambda item: -item[1]):
        print(f"  {app:<{width}} {hooks:>4}")
    for problem in unsettled:
        print(f"not settled: {problem}", file=sys.stderr)
    return 1 if unsettled else 0


if __name__ == "__main__":
    sys.exit(main())
