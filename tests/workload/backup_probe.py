"""Run one backup or one restore in a process of its own and report its peak memory.

Used by the memory test and the benchmark: the parent starts
`python backup_probe.py` with a JSON job on stdin (so no credential is on a
command line) and reads one JSON line back. The peak is this process's own
(`VmHWM`): the dump and client programs it runs are children and do not
count.

Job: {"action": "backup" | "restore", "backup_id": ..., "workdir": ...,
"server": MySQLServer keyword arguments, "s3": S3ConnectionInfo fields,
"model": ..., "app": ..., "key": the backup key as hex}.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for entry in (ROOT / "charms" / "mysql" / "src", ROOT / "lib", ROOT / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mib() -> float:
    """Return the highest resident memory of this process so far, in MiB.

    VmHWM is this program's own high-water mark. `ru_maxrss` is only the
    fallback: Linux carries the parent's peak into it across the fork and
    exec that started us, so under a large parent it reports the parent.
    """
    kib = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024 / MIB


def rss_mib() -> float:
    """Return the resident memory of this process now, in MiB."""
    return _status_kib("VmRSS") * 1024 / MIB


def main() -> int:
    job = json.load(sys.stdin)

    from mysql_backups import BackupRepository, parse_key
    from mysql_server import MySQLServer
    from workload.local_executor import LocalExecutor

    from kubeflow_interfaces.s3 import S3ConnectionInfo

    executor = LocalExecutor(job["workdir"])
    server = MySQLServer(executor, **job["server"])
    repository = BackupRepository(
        S3ConnectionInfo(**job["s3"]),
        model=job["model"],
        app=job["app"],
        key=parse_key(job["key"]),
        workdir=job["workdir"],
    )
    repository.client  # noqa: B018 - boto3 loaded before the baseline is taken
    baseline = rss_mib()
    started = time.monotonic()
    if job["action"] == "backup":
        backup = repository.create(server)
    else:
        backup = repository.restore(server, job["backup_id"])
    seconds = time.monotonic() - started
    report = {
        "backup": backup.to_dict(),
        "seconds": seconds,
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
