"""Logical backups of the MySQL server streamed to S3, and restores from them.

A backup is a `mysqldump` of every user database, gzip-compressed as it is
read and sent to S3 in parts of about 8 MiB (multipart upload): neither the
dump nor the compressed file is ever held whole, in memory or on disk, so
memory stays flat however large the databases grow. Objects, under
`[<path>/]mysql-backups/<model>/<app>/<id>/`:

- `dump.sql.gz`: the compressed dump;
- `dump.sql.gz.sha256`: its SHA-256, in `sha256sum` format (for a check
  by hand; anyone who can write the bucket can rewrite it, so a restore
  does not rely on it);
- `backup.json`: what the backup holds and how it went (written last, also
  when the backup failed), and its MAC.

A backup's id is the UTC time it started, `YYYY-MM-DDTHH-MM-SSZ` (with `-2`,
`-3`... if that id is taken).

Authentication: each backup carries an HMAC-SHA256 keyed with a key only the
application holds (in its Juju secret, never in the bucket). It is computed
while the dump streams up and covers the compressed dump and every field of
`backup.json` but the MAC itself, encoded as `mac_message` says. A restore
downloads the whole backup, verifies the MAC, decompresses it, checks its SQL
(`dump_scanner`) and only then feeds it to the server, as a restore account
that holds rights on the backup's databases only and is dropped afterwards.
A backup without a MAC, with one that does not verify, or whose SQL is
refused is not restored and the live data is untouched.

Keys: new backups are always signed with the application's own key; a
restore verifies with the key whose id (`key_id`, recorded in `backup.json`)
the backup names: the own key or one of the trusted keys the repository was
given (the keys of earlier deployments, for disaster recovery).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import logging
import os
import posixpath
import re
import secrets
import tempfile
import weakref
import zlib
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dump_scanner import DumpRefusedError, scan_dump
from executor import WorkloadError
from mysql_server import MySQLServer, is_valid_database_name, quote_identifier, quote_string

if TYPE_CHECKING:
    from kubeflow_interfaces.s3 import S3ConnectionInfo

logger = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024  # about; S3 wants at least 5 MiB in every part but the last
READ_CHUNK = 1024 * 1024
# zlib level 6 (gzip's default) would cost about three times the CPU for a
# few percent smaller backups.
COMPRESSION_LEVEL = 1
METADATA_FORMAT = 2

# The MAC: HMAC-SHA256 over MAC_CONTEXT, the compressed dump, the signed
# metadata (canonical JSON), then the metadata's and the dump's lengths as
# 8-byte big-endian integers. Read from the end, the lengths split the
# message one way only. The scheme's name is itself in the signed metadata.
MAC_SCHEME = "hmac-sha256/v1"
MAC_CONTEXT = b"kubeflow-operators mysql backup\x00v1\x00"
_KEY_ID_CONTEXT = b"kubeflow-operators mysql backup key id\x00"
KEY_BYTES = 32
_UNSIGNED_FIELDS = frozenset({"mac"})
# The account a restore runs as: made for one restore, dropped after it.
RESTORE_USER = "charm-restore"
RESTORE_OPTIONS_FILE = "charm-restore.cnf"  # beside the admin's option file
# The global rights to create objects owned by another account: MySQL 8.4's
# dynamic privileges, and MariaDB's (the workload tests' server) one.
MYSQL_DEFINER_PRIVILEGES = ("SET_ANY_DEFINER", "ALLOW_NONEXISTENT_DEFINER")
MARIADB_DEFINER_PRIVILEGE = "SET USER"

DUMP_OBJECT = "dump.sql.gz"
CHECKSUM_OBJECT = "dump.sql.gz.sha256"
METADATA_OBJECT = "backup.json"

ID_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
_ID = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)(?:-([1-9]\d{0,3}))?")
_MAX_ID_SUFFIX = 9999
_GZIP = 16 + zlib.MAX_WBITS  # zlib's window bits for a gzip wrapper
# The last line mysqldump writes (MySQL and MariaDB alike) when it got to the end.
_DUMP_TRAILER = b"-- Dump completed"
_TAIL = 512
_MAX_REASON = 500
_MAX_PARTS = 10_000  # S3's limit: about 78 GiB of compressed dump with 8 MiB parts


class BackupError(Exception):
    """A backup or restore did not happen; the message says why, for the operator."""


class UnknownKeyError(BackupError):
    """A backup is signed with a key the repository neither holds nor trusts."""

    def __init__(self, message: str, key_id: str):
        super().__init__(message)
        self.key_id = key_id


@dataclasses.dataclass(frozen=True)
class Backup:
    """One backup as recorded in S3."""

    id: str
    status: str  # "completed" | "failed"
    size: int  # compressed bytes
    started_at: str
    finished_at: str | None
    databases: tuple[str, ...]
    error: str | None = None
    signed: bool = False  # it carries a MAC; only a restore verifies it
    key_id: str | None = None  # the id of the key it says signed it

    def to_dict(self) -> dict[str, str]:
        """Return the backup as action results: hyphenated keys, text values, no empty fields."""
        out = {
            "id": self.id,
            "status": self.status,
            "size": str(self.size),
            "started-at": self.started_at,
            "databases": ",".join(self.databases),
            "signed": "yes" if self.signed else "no",
        }
        if self.key_id:
            out["key-id"] = self.key_id
        if self.finished_at:
            out["finished-at"] = self.finished_at
        if self.error:
            out["error"] = self.error
        return out


def generate_key() -> str:
    """Return a new backup key as text (hex), for the application's secret."""
    return secrets.token_hex(KEY_BYTES)


def parse_key(text: str) -> bytes:
    """Return the key bytes of `generate_key()` text; ValueError when it is not one."""
    try:
        key = bytes.fromhex(text.strip())
    except (ValueError, AttributeError):
        raise ValueError("the backup key is not hex text") from None
    if len(key) < KEY_BYTES:
        raise ValueError(f"the backup key is shorter than {KEY_BYTES} bytes")
    return key


def key_id(key: bytes) -> str:
    """Return a short public name of `key` (an HMAC of a constant: it tells keys apart)."""
    return hmac.new(key, _KEY_ID_CONTEXT, hashlib.sha256).hexdigest()[:16]


def signed_metadata(metadata: dict[str, Any]) -> bytes:
    """Return the metadata bytes the MAC covers: canonical JSON of every field but the MAC."""
    fields = {k: v for k, v in metadata.items() if k not in _UNSIGNED_FIELDS}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def new_mac(key: bytes) -> hmac.HMAC:
    """Start the MAC of a backup; feed it the compressed dump, then call `finish_mac`."""
    return hmac.new(key, MAC_CONTEXT, hashlib.sha256)


def finish_mac(mac: hmac.HMAC, metadata: dict[str, Any], dump_size: int) -> str:
    """Return the hex MAC of a dump already fed to `mac`, and of its metadata (`mac` unchanged)."""
    mac = mac.copy()
    signed = signed_metadata(metadata)
    mac.update(signed)
    mac.update(len(signed).to_bytes(8, "big"))
    mac.update(dump_size.to_bytes(8, "big"))
    return mac.hexdigest()


def mac_message(dump: bytes, metadata: dict[str, Any]) -> bytes:
    """Return the whole message the MAC is computed over (for tests and checks by hand)."""
    signed = signed_metadata(metadata)
    lengths = len(signed).to_bytes(8, "big") + len(dump).to_bytes(8, "big")
    return MAC_CONTEXT + dump + signed + lengths


def is_valid_backup_id(backup_id: str) -> bool:
    """Whether `backup_id` has the shape of a backup id (`2024-05-01T12-00-00Z`, `...Z-2`)."""
    return isinstance(backup_id, str) and _ID.fullmatch(backup_id) is not None


def _id_order(backup_id: str) -> tuple[str, int]:
    match = _ID.fullmatch(backup_id)
    assert match is not None
    return match.group(1), int(match.group(2) or 1)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime | None) -> datetime:
    moment = moment or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _started_from_id(backup_id: str) -> str:
    stamp = _id_order(backup_id)[0]
    return _timestamp(datetime.strptime(stamp, ID_FORMAT))


def _describe(error: BaseException) -> str:
    """Give a one-line reason for the operator."""
    text = " ".join(str(error).split())
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    if isinstance(error, (BackupError, WorkloadError)):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _S3Calls:
    """Wraps one S3 call: boto errors become a BackupError naming what was being done."""

    def __init__(self, doing: str):
        self._doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> None:
        # Returns None: an exception is never swallowed, only translated.
        if error is None:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            info = error.response.get("Error", {})
            detail = f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")
        elif isinstance(error, BotoCoreError):
            detail = str(error)
        else:
            return
        raise BackupError(f"S3 error while {self._doing}: {detail}") from error


def _is_missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class BackupRepository:
    """The backups of one application in one bucket: create, list, restore.

    `client` is a boto3 S3 client to use instead of one made from `s3` (made
    lazily, so merely building a repository imports nothing heavy).
    Downloads for a restore and the CA bundle go to `workdir` (the system's
    temp directory by default). `key` (see `parse_key`) signs new backups and
    verifies them on restore: without it nothing can be created. A restore
    also verifies with any of `trusted_keys` (keys of earlier deployments),
    picking the key by the key id the backup records.
    """

    def __init__(
        self,
        s3: S3ConnectionInfo,
        *,
        model: str,
        app: str,
        key: bytes | None = None,
        trusted_keys: Iterable[bytes] = (),
        client: Any = None,
        workdir: str | None = None,
    ):
        trusted = list(trusted_keys)
        for k in (key, *trusted):
            if k is not None and len(k) < KEY_BYTES:
                raise ValueError(f"a backup key has at least {KEY_BYTES} bytes")
        self._key = key
        self._own_key_id = key_id(key) if key is not None else None
        self._trusted = {key_id(k): k for k in trusted}
        self._s3 = s3
        self.bucket = s3.bucket
        self.prefix = "/".join(p for p in (s3.path.strip("/"), "mysql-backups", model, app) if p)
        self._client = client
        self._workdir = workdir or tempfile.gettempdir()
        self._ca_file: str | None = None

    # --- S3 plumbing

    @property
    def client(self) -> Any:
        """The boto3 S3 client (boto3 is imported on first use)."""
        if self._client is None:
            self._client = self._s3.client(ca_bundle_path=self._write_ca_bundle())
        return self._client

    def _write_ca_bundle(self) -> str | None:
        if not self._s3.tls_ca_chain:
            return None
        if self._ca_file is None:
            fd, path = tempfile.mkstemp(prefix="s3-ca-", suffix=".pem", dir=self._workdir)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(cert.strip() for cert in self._s3.tls_ca_chain) + "\n")
            self._ca_file = path
            weakref.finalize(self, _remove_quietly, path)
        return self._ca_file

    def close(self) -> None:
        """Remove the CA bundle file, if one was written."""
        if self._ca_file:
            _remove_quietly(self._ca_file)
            self._ca_file = None

    def __enter__(self) -> BackupRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, backup_id: str, name: str) -> str:
        """Return the object key of one file of a backup."""
        return f"{self.prefix}/{backup_id}/{name}"

    def key_origin(self, backup: Backup) -> str:
        """Say which key signed `backup`: `own`, `trusted`, `unknown`, or `none` (unsigned)."""
        if not backup.signed:
            return "none"
        if backup.key_id is not None and backup.key_id == self._own_key_id:
            return "own"
        if backup.key_id in self._trusted:
            return "trusted"
        return "unknown"

    def _get(self, key: str, doing: str) -> bytes | None:
        """Return a small object's content, or None when it does not exist."""
        with _S3Calls(doing):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as e:
                if _is_missing(e):
                    return None
                raise
            return response["Body"].read()

    def _put(self, key: str, body: bytes, content_type: str, doing: str) -> None:
        extra = {"StorageClass": self._s3.storage_class} if self._s3.storage_class else {}
        with _S3Calls(doing):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
            )

    def _id_taken(self, backup_id: str) -> bool:
        with _S3Calls("checking for an existing backup"):
            page = self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=f"{self.prefix}/{backup_id}/", MaxKeys=1
            )
        return bool(page.get("KeyCount") or page.get("Contents"))

    def _new_id(self, started: datetime) -> str:
        base = started.strftime(ID_FORMAT)
        if not self._id_taken(base):
            return base
        for n in range(2, _MAX_ID_SUFFIX + 1):
            candidate = f"{base}-{n}"
            if not self._id_taken(candidate):
                return candidate
        raise BackupError(f"too many backups started at {_timestamp(started)}")

    # --- create

    def create(self, server: MySQLServer, *, now: datetime | None = None) -> Backup:
        """Back up every user database of `server`; return the completed backup.

        On failure the partial upload is aborted, a `backup.json` with status
        `failed` and the reason is left, and BackupError is raised.
        """
        started = _utc(now)
        key = self._require_key("make a backup")
        try:
            databases = server.user_databases()
        except WorkloadError as e:
            raise BackupError(f"cannot list the databases to back up: {_describe(e)}") from e
        if not databases:
            raise BackupError("there is no database to back up")
        backup_id = self._new_id(started)
        dump_key = self.key(backup_id, DUMP_OBJECT)
        extra = {"StorageClass": self._s3.storage_class} if self._s3.storage_class else {}
        with _S3Calls("starting the upload"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=dump_key, ContentType="application/gzip", **extra
            )["UploadId"]
        logger.info("backup %s of %s started", backup_id, ", ".join(databases))
        try:
            size, digest, mac = self._upload_dump(
                server, databases, dump_key, upload_id, new_mac(key)
            )
            self._put(
                self.key(backup_id, CHECKSUM_OBJECT),
                f"{digest}  {DUMP_OBJECT}\n".encode(),
                "text/plain",
                "writing the checksum",
            )
            backup = Backup(
                id=backup_id,
                status="completed",
                size=size,
                started_at=_timestamp(started),
                finished_at=_timestamp(_utc(None)),
                databases=tuple(databases),
                signed=True,
                key_id=key_id(key),
            )
            self._write_metadata(backup, sha256=digest, server=server, mac=mac)
        except BaseException as e:
            self._abort(dump_key, upload_id)
            self._delete(dump_key)  # when the upload had completed before the failure
            failed = Backup(
                id=backup_id,
                status="failed",
                size=0,
                started_at=_timestamp(started),
                finished_at=_timestamp(_utc(None)),
                databases=tuple(databases),
                error=_describe(e),
            )
            try:
                self._write_metadata(failed)
            except BackupError as meta_error:
                logger.warning("cannot record failed backup %s: %s", backup_id, meta_error)
            if not isinstance(e, Exception):
                raise
            logger.error("backup %s failed: %s", backup_id, failed.error)
            raise BackupError(f"backup {backup_id} failed: {failed.error}") from e
        logger.info("backup %s completed: %d bytes", backup_id, size)
        return backup

    def _require_key(self, doing: str) -> bytes:
        if self._key is None:
            raise BackupError(
                f"cannot {doing}: this application holds no backup key yet "
                "(the leader makes one with the first backup)"
            )
        return self._key

    def _upload_dump(
        self,
        server: MySQLServer,
        databases: list[str],
        key: str,
        upload_id: str,
        mac: hmac.HMAC,
    ) -> tuple[int, str, hmac.HMAC]:
        """Stream the dump through gzip into the multipart upload.

        Return its size, its SHA-256 and `mac` fed with it.
        """
        compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, _GZIP)
        digest = hashlib.sha256()
        # Compressed output waiting to go up: a list, so nothing is copied until
        # the part is joined, and the list is emptied before the upload starts.
        pending: list[bytes] = []
        pending_size = 0
        parts: list[dict[str, Any]] = []
        size = 0
        tail = b""

        def add(data: bytes) -> None:
            nonlocal pending_size, size
            if data:
                digest.update(data)
                mac.update(data)
                size += len(data)
                pending.append(data)
                pending_size += len(data)

        def ship() -> None:
            nonlocal pending_size
            body = b"".join(pending)
            pending.clear()
            pending_size = 0
            number = len(parts) + 1
            if number > _MAX_PARTS:
                raise BackupError(
                    f"the backup is larger than {_MAX_PARTS} parts of {PART_SIZE // 2**20} MiB"
                )
            with _S3Calls(f"uploading part {number}"):
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    # BytesIO shares the bytes: botocore reads it in blocks, no copy.
                    Body=io.BytesIO(body),
                    ContentLength=len(body),
                )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})

        with server.executor.open_output(server.dump_argv(databases)) as stdout:
            while chunk := stdout.read(READ_CHUNK):
                tail = (tail + chunk[-_TAIL:])[-_TAIL:]
                add(compressor.compress(chunk))
                del chunk
                if pending_size >= PART_SIZE:
                    ship()
        if _DUMP_TRAILER not in tail:
            raise BackupError("the dump ended early (no end marker from mysqldump)")
        add(compressor.flush())
        ship()
        with _S3Calls("completing the upload"):
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        return size, digest.hexdigest(), mac

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with _S3Calls("aborting the upload"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except BackupError as e:
            # Completed uploads cannot be aborted; anything else is worth a line.
            if "NoSuchUpload" not in str(e):
                logger.warning("%s", e)

    def _delete(self, key: str) -> None:
        try:
            with _S3Calls("removing an incomplete dump"):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except BackupError as e:
            logger.warning("%s", e)

    def _write_metadata(
        self,
        backup: Backup,
        *,
        sha256: str | None = None,
        server: MySQLServer | None = None,
        mac: hmac.HMAC | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "format": METADATA_FORMAT,
            "id": backup.id,
            "status": backup.status,
            "size": backup.size,
            "started_at": backup.started_at,
            "finished_at": backup.finished_at,
            "databases": list(backup.databases),
            "error": backup.error,
            "compression": "gzip",
        }
        if sha256:
            data["sha256"] = sha256
        if server is not None:
            try:
                data["server_version"] = server.version()
            except WorkloadError:
                pass
        if self._key is not None:
            data["authentication"] = MAC_SCHEME
            data["key_id"] = key_id(self._key)
            data["mac"] = finish_mac(mac or new_mac(self._key), data, backup.size)
        body = json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
        self._put(
            self.key(backup.id, METADATA_OBJECT), body, "application/json", "writing metadata"
        )

    # --- list

    def list(self) -> list[Backup]:
        """Return every backup, newest first; one without metadata counts as failed."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        start = len(self.prefix) + 1
        with _S3Calls("listing backups"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
                for obj in page.get("Contents", []):
                    backup_id, _, name = obj["Key"][start:].partition("/")
                    if is_valid_backup_id(backup_id) and name in (
                        DUMP_OBJECT,
                        METADATA_OBJECT,
                        CHECKSUM_OBJECT,
                    ):
                        found.setdefault(backup_id, {})[name] = obj
        backups = []
        for backup_id, objects in found.items():
            if METADATA_OBJECT not in objects and DUMP_OBJECT not in objects:
                continue
            backups.append(self._describe_backup(backup_id, objects))
        backups.sort(key=lambda b: _id_order(b.id), reverse=True)
        return backups

    def _describe_backup(self, backup_id: str, objects: dict[str, dict[str, Any]]) -> Backup:
        dump = objects.get(DUMP_OBJECT)
        if METADATA_OBJECT not in objects:
            return Backup(
                id=backup_id,
                status="failed",
                size=int(dump["Size"]) if dump else 0,
                started_at=_started_from_id(backup_id),
                finished_at=None,
                databases=(),
                error="no metadata: the backup never finished",
            )
        raw = self._get(self.key(backup_id, METADATA_OBJECT), "reading metadata")
        backup = _parse_metadata(backup_id, raw)
        if backup.status == "completed" and dump is None:
            return dataclasses.replace(backup, status="failed", error="the dump is missing")
        return backup

    # --- restore

    def restore(self, server: MySQLServer, backup_id: str) -> Backup:
        """Put the databases of backup `backup_id` back into `server`.

        The whole backup is downloaded to `workdir` and its MAC verified over
        the dump and the metadata; the dump is decompressed and its SQL
        checked; only then is it fed to the server, as a restore account
        with rights on the backup's databases only. Each database in it is
        dropped and recreated as it was; databases not in the backup are left
        alone. Raises BackupError, with the server untouched if the backup is
        missing, failed, damaged, unauthenticated, forged or refused.
        """
        if not is_valid_backup_id(backup_id):
            raise BackupError(
                f"invalid backup id {backup_id!r}: expected the form 2024-05-01T12-00-00Z"
            )
        raw = self._get(self.key(backup_id, METADATA_OBJECT), "reading metadata")
        if raw is None:
            if self._get_size(self.key(backup_id, DUMP_OBJECT)) is not None:
                raise BackupError(f"backup {backup_id} never finished and cannot be restored")
            raise BackupError(f"backup {backup_id} not found in s3://{self.bucket}/{self.prefix}")
        backup = _parse_metadata(backup_id, raw)
        if backup.status != "completed":
            reason = f": {backup.error}" if backup.error else ""
            raise BackupError(f"backup {backup_id} failed{reason}; it cannot be restored")
        metadata = json.loads(raw)
        key = self._check_signature_fields(backup_id, metadata)
        for name in backup.databases:
            if not is_valid_database_name(name):
                raise BackupError(f"backup {backup_id} names an invalid database {name!r}")

        try:
            workspace = tempfile.TemporaryDirectory(prefix="mysql-restore-", dir=self._workdir)
        except OSError as e:
            raise BackupError(f"cannot use {self._workdir} for the download: {e}") from e
        with workspace as tmp:
            compressed_path = os.path.join(tmp, DUMP_OBJECT)
            sql_path = os.path.join(tmp, "dump.sql")
            size, mac = self._download(self.key(backup_id, DUMP_OBJECT), compressed_path, key)
            if size != backup.size:
                raise BackupError(
                    f"backup {backup_id} is damaged or forged: the dump is {size} bytes, "
                    f"{backup.size} expected"
                )
            if not hmac.compare_digest(finish_mac(mac, metadata, size), str(metadata["mac"])):
                raise BackupError(
                    f"backup {backup_id} does not verify: its dump or its metadata changed "
                    "after it was made; refused, the server is untouched"
                )
            _decompress(backup_id, compressed_path, sql_path)
            os.remove(compressed_path)
            try:
                statements = scan_dump(sql_path, backup.databases)
            except DumpRefusedError as e:
                raise BackupError(
                    f"backup {backup_id} is refused: {e}; the server is untouched"
                ) from e
            logger.info(
                "restoring backup %s (%s, %d statements)",
                backup_id,
                ", ".join(backup.databases),
                statements,
            )
            self._run_as_restore_account(server, backup, sql_path)
        logger.info("backup %s restored", backup_id)
        return backup

    def _check_signature_fields(self, backup_id: str, metadata: dict[str, Any]) -> bytes:
        """Refuse a backup that cannot be verified; return the key that verifies it.

        That is the application's own key or a trusted one, whichever has the
        key id the backup records (a forged id only picks a key that then
        fails to verify).
        """
        if not metadata.get("mac"):
            raise BackupError(
                f"backup {backup_id} is not authenticated (it has no MAC: made before "
                "backups were signed, or the MAC was removed); it is refused. If you trust "
                "it, restore it by hand as the README says"
            )
        if metadata.get("authentication") != MAC_SCHEME:
            raise BackupError(
                f"backup {backup_id} uses an unknown authentication scheme "
                f"{str(metadata.get('authentication'))[:40]!r}; refused"
            )
        signer = str(metadata.get("key_id") or "")[:40]
        if self._own_key_id is not None and signer == self._own_key_id:
            assert self._key is not None
            return self._key
        if signer in self._trusted:
            return self._trusted[signer]
        if self._key is None and not self._trusted:
            raise UnknownKeyError(
                f"backup {backup_id} was signed with key {signer!r}, but this application "
                "holds no backup key yet and trusts none; refused",
                signer,
            )
        raise UnknownKeyError(
            f"backup {backup_id} was signed with another key than this application's "
            f"or a trusted one (key {signer!r}); refused",
            signer,
        )

    def _run_as_restore_account(self, server: MySQLServer, backup: Backup, sql_path: str) -> None:
        """Feed the dump to the server as a restore account made for this restore alone.

        The account holds ALL PRIVILEGES (without GRANT OPTION) on each of the
        backup's databases, which covers what a dump runs: DROP/CREATE
        DATABASE, tables, data, LOCK TABLES, views, triggers, routines and
        events. To recreate objects owned by the relation users it also
        holds the right to name another DEFINER: MySQL 8.4's SET_ANY_DEFINER
        and ALLOW_NONEXISTENT_DEFINER (the relation may be gone), MariaDB's
        SET USER. `dump_scanner` lets only relation users through as
        DEFINERs. Nothing else: no rights on other databases, on `mysql.*`,
        on accounts, or global settings.
        """
        account = _account_sql(server)
        password = secrets.token_hex(24)
        options = posixpath.join(posixpath.dirname(server.options_file), RESTORE_OPTIONS_FILE)
        restorer = MySQLServer(
            server.executor,
            user=RESTORE_USER,
            password=password,
            socket=server.socket,
            host=server.host,
            port=server.port,
            options_file=options,
            client=server.restore_argv()[0],
        )
        try:
            mariadb = "mariadb" in server.version().lower()
            definer = MARIADB_DEFINER_PRIVILEGE if mariadb else ", ".join(MYSQL_DEFINER_PRIVILEGES)
            server.execute(
                "\n".join(
                    [
                        f"DROP USER IF EXISTS {account};",
                        f"CREATE USER {account} IDENTIFIED BY {quote_string(password)};",
                        *(
                            f"GRANT ALL PRIVILEGES ON {_grant_level(name)} TO {account};"
                            for name in backup.databases
                        ),
                        f"GRANT {definer} ON *.* TO {account};",
                    ]
                )
            )
            restorer.write_client_options()
        except WorkloadError as e:
            self._drop_restore_account(server, account, options)
            raise BackupError(f"cannot set up the restore account: {_describe(e)}") from e
        try:
            with open(sql_path, "rb") as sql:
                server.executor.feed_input(restorer.restore_argv(), sql)
        except WorkloadError as e:
            self._drop_restore_account(server, account, options)
            raise BackupError(f"restore of backup {backup.id} failed: {_describe(e)}") from e
        if error := self._drop_restore_account(server, account, options):
            raise BackupError(
                f"backup {backup.id} was restored, but the restore account {RESTORE_USER} "
                f"could not be dropped: {error}"
            )

    @staticmethod
    def _drop_restore_account(server: MySQLServer, account: str, options: str) -> str | None:
        error = None
        try:
            server.execute(f"DROP USER IF EXISTS {account};")
        except WorkloadError as e:
            error = _describe(e)
            logger.error("cannot drop the restore account: %s", error)
        try:
            server.executor.remove(options)
        except WorkloadError as e:
            logger.warning("cannot remove %s: %s", options, _describe(e))
        return error

    def _get_size(self, key: str) -> int | None:
        with _S3Calls("looking up a backup"):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        for obj in page.get("Contents", []):
            if obj["Key"] == key:
                return int(obj["Size"])
        return None

    def _download(self, key: str, path: str, mac_key: bytes) -> tuple[int, hmac.HMAC]:
        mac = new_mac(mac_key)
        size = 0
        with _S3Calls("downloading the backup"), open(path, "wb") as out:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except Exception as e:
                if _is_missing(e):
                    raise BackupError("the dump of this backup is missing") from e
                raise
            for chunk in response["Body"].iter_chunks(READ_CHUNK):
                mac.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return size, mac


def _account_sql(server: MySQLServer) -> str:
    """The restore account, on the host the server's own client connects from."""
    host = "%" if server.host else "localhost"
    return f"{quote_string(RESTORE_USER)}@{quote_string(host)}"


def _grant_level(database: str) -> str:
    """`db`.* matching that database only (`_` and `%` are wildcards in a GRANT)."""
    pattern = database.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return f"{quote_identifier(pattern)}.*"


def _decompress(backup_id: str, source: str, target: str) -> None:
    """Unpack the gzip stream to a file, checking it is whole and ends where it should."""
    decompressor = zlib.decompressobj(_GZIP)
    tail = b""
    try:
        with open(source, "rb") as compressed, open(target, "wb") as out:
            while chunk := compressed.read(READ_CHUNK):
                if decompressor.eof:
                    raise BackupError(f"backup {backup_id} is damaged: data after the dump")
                data = chunk
                while data and not decompressor.eof:
                    plain = decompressor.decompress(data, READ_CHUNK)
                    out.write(plain)
                    tail = (tail + plain[-_TAIL:])[-_TAIL:]
                    data = decompressor.unconsumed_tail
                if decompressor.unused_data:
                    raise BackupError(f"backup {backup_id} is damaged: data after the dump")
            plain = decompressor.flush()
            out.write(plain)
            tail = (tail + plain[-_TAIL:])[-_TAIL:]
    except zlib.error as e:
        raise BackupError(f"backup {backup_id} is damaged: {e}") from e
    if not decompressor.eof:
        raise BackupError(f"backup {backup_id} is damaged: the compressed dump is truncated")
    if _DUMP_TRAILER not in tail:
        raise BackupError(f"backup {backup_id} is damaged: the dump inside it is incomplete")


def _parse_metadata(backup_id: str, raw: bytes | None) -> Backup:
    try:
        data = json.loads(raw or b"")
        return Backup(
            id=backup_id,
            status="completed" if data["status"] == "completed" else "failed",
            size=int(data.get("size") or 0),
            started_at=str(data.get("started_at") or _started_from_id(backup_id)),
            finished_at=data.get("finished_at"),
            databases=tuple(str(d) for d in data.get("databases") or ()),
            error=data.get("error"),
            signed=bool(data.get("mac")),
            key_id=str(data["key_id"])[:40] if data.get("key_id") else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return Backup(
            id=backup_id,
            status="failed",
            size=0,
            started_at=_started_from_id(backup_id),
            finished_at=None,
            databases=(),
            error="unreadable metadata",
        )


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
