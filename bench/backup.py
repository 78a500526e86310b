"""Benchmark: backup and restore throughput of the mysql charm, and their peak memory.

Not a test: it prints figures. It starts the same servers as the workload
tests (MariaDB standing in for MySQL 8.4, an S3 API on localhost), fills a
database with about 200 MiB, then runs one backup and one restore, each in a
process of its own so that its peak RSS is its own (the dump and client
programs are not counted).

    PYTHONPATH=lib python bench/backup.py [--mib 205]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "charms" / "mysql" / "src", ROOT / "lib", ROOT / "tests"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from mysql_server import ADMIN_USER, MySQLServer, initialise_sql  # noqa: E402
from workload.helpers import CLIENT, DUMP, make_blobs, probe_job, run_probe  # noqa: E402
from workload.local_executor import LocalExecutor  # noqa: E402
from workload.servers import mariadb_server, s3_server  # noqa: E402

from kubeflow_interfaces.s3 import S3ConnectionInfo  # noqa: E402

MIB = 1024 * 1024


def table_fingerprint(mariadb) -> str:
    return mariadb.sql(
        "SELECT COUNT(*), SUM(LENGTH(payload)), BIT_XOR(CRC32(payload)) FROM big.blobs;"
    ).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description="Backup and restore throughput and memory")
    parser.add_argument("--mib", type=int, default=205, help="MiB of table data to back up")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp, s3_server() as endpoint:
        work = Path(tmp)
        with mariadb_server(work) as mariadb:
            admin_password = secrets.token_urlsafe(24)
            mariadb.sql(initialise_sql(mariadb.root_password, admin_password))
            executor = LocalExecutor(work)
            admin = MySQLServer(
                executor,
                user=ADMIN_USER,
                password=admin_password,
                socket=mariadb.socket,
                options_file=str(work / "charm-client.cnf"),
                client=CLIENT,
                dump=DUMP,
            )
            admin.write_client_options()
            s3 = S3ConnectionInfo(
                endpoint=endpoint,
                bucket="bench-backups",
                access_key="bench",
                secret_key=secrets.token_urlsafe(16),
                uri_style="path",
            )
            s3.client().create_bucket(Bucket=s3.bucket)

            print(f"generating {args.mib} MiB of data...", flush=True)
            data = make_blobs(mariadb, mib=args.mib) / MIB
            before = table_fingerprint(mariadb)

            backup = run_probe(probe_job("backup", admin, s3, work))
            compressed = int(backup["backup"]["size"]) / MIB

            mariadb.sql("DROP DATABASE big;")
            restore = run_probe(
                probe_job("restore", admin, s3, work, backup_id=backup["backup"]["id"])
            )
            if table_fingerprint(mariadb) != before:
                print("restored data differs from the original", file=sys.stderr)
                return 1

    print(f"data:     {data:8.1f} MiB in one table ({compressed:.1f} MiB gzip-compressed)")
    for name, report in (("backup", backup), ("restore", restore)):
        seconds = report["seconds"]
        print(
            f"{name + ':':9} {data / seconds:8.1f} MiB/s of data"
            f" ({seconds:5.1f} s, {compressed / seconds:6.1f} MiB/s compressed),"
            f" peak RSS {report['peak_rss_mib']:6.1f} MiB"
            f" (baseline {report['baseline_rss_mib']:.1f} MiB with boto3 loaded)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
