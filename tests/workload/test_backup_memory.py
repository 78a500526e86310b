"""Memory of the backup path stays flat: 200+ MiB of data, under 100 MiB of RSS.

The backup runs in a child process that does nothing else (boto3 and all),
so its peak RSS is the cost of the backup path; `mariadb-dump` is that
child's own child and is not counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mysql_backups import DUMP_OBJECT, PART_SIZE, READ_CHUNK, BackupRepository
from mysql_server import MySQLServer
from workload.helpers import make_blobs, probe_job, run_probe
from workload.servers import MariaDB

from kubeflow_interfaces.s3 import S3ConnectionInfo

MIB = 1024 * 1024
DATA_MIB = 205
PEAK_LIMIT_MIB = 100


def test_backup_memory_stays_flat(
    admin: MySQLServer,
    mariadb: MariaDB,
    s3_info: S3ConnectionInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    data_bytes = make_blobs(mariadb, mib=DATA_MIB)
    assert data_bytes >= 200 * MIB

    report = run_probe(probe_job("backup", admin, s3_info, tmp_path))

    backup = report["backup"]
    assert backup["status"] == "completed"
    assert backup["databases"] == "big"
    size = int(backup["size"])
    with capsys.disabled():
        print(
            f"\nbackup of {data_bytes / MIB:.0f} MiB of data ({size / MIB:.0f} MiB compressed)"
            f" in {report['seconds']:.1f}s: peak RSS {report['peak_rss_mib']:.1f} MiB"
            f" (baseline {report['baseline_rss_mib']:.1f} MiB after importing boto3)"
        )
    assert report["peak_rss_mib"] < PEAK_LIMIT_MIB

    # It really went up in parts, and the object is whole.
    repository = BackupRepository(s3_info, model="kubeflow", app="mysql")
    head = repository.client.head_object(
        Bucket=s3_info.bucket, Key=repository.key(backup["id"], DUMP_OBJECT)
    )
    assert head["ContentLength"] == size
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])
    # Each part but the last holds PART_SIZE or a little more (one read's output).
    assert size // (PART_SIZE + READ_CHUNK) <= parts <= -(-size // PART_SIZE)
    assert parts >= 10
