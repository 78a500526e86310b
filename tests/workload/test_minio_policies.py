"""The minio charm's policies, enforced by a real S3 server.

Each user here holds exactly the policy document the charm gives MinIO
(rendered by the charm's own `minio_users` module), on an S3 server that
checks every request against it: moto with IAM auth on (see
`servers.s3_server_enforcing_iam`). A profile reaches its own prefixes and
reads the shared one; it cannot list or read another profile's prefix, nor
the backup bucket. A relation's keys reach its bucket (or path) only. A
profile also reads, and only reads, the path of a relation whose requirer
asked for it (`profiles-read`, as mlflow does for its artifacts).
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from workload.servers import s3_server_enforcing_iam

SRC = Path(__file__).resolve().parents[2] / "charms" / "minio" / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import minio_users  # noqa: E402

PIPELINES = minio_users.PROFILE_BUCKET
BACKUPS = "mysql-backups"
MLFLOW = "mlflow"
SHARED_OBJECT = "shared/dataset.csv"
# A registered model under the artifacts path mlflow's relation opens to every profile.
OPENED = minio_users.ReadGrant(MLFLOW, "artifacts")
MODEL_KEY = "artifacts/1/abc123/artifacts/model/model.pkl"


def _client(url: str, access_key: str, secret_key: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 1}),
    )


def _reset_auth(url: str, count: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - the local test server
        f"{url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would not reach moto as data
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


class Store:
    """The server, and a client per user, each holding the charm's policy for it."""

    def __init__(self, url: str):
        self.url = url
        self.users: dict[str, Any] = {}
        self._iam = boto3.session.Session().client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup-secret",
        )

    def add_user(self, name: str, policy: dict[str, Any]) -> None:
        import json

        self._iam.create_user(UserName=name)
        self._iam.put_user_policy(
            UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy)
        )
        key = self._iam.create_access_key(UserName=name)["AccessKey"]
        self.users[name] = _client(self.url, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with s3_server_enforcing_iam() as url:
        setup = _client(url, "setup", "setup-secret")
        for bucket in (PIPELINES, BACKUPS, MLFLOW):
            setup.create_bucket(Bucket=bucket)
        for key in (
            "private-artifacts/alice/v2/artifacts/run/out",
            "private/alice/notes.txt",
            "private-artifacts/bob/v2/artifacts/run/out",
            "private/bob/notes.txt",
            "private-artifacts/alice-team/x",  # a namespace whose name starts like alice's
            SHARED_OBJECT,
        ):
            setup.put_object(Bucket=PIPELINES, Key=key, Body=b"data")
        setup.put_object(Bucket=BACKUPS, Key="kubeflow/db/dump.sql.gz", Body=b"dump")
        setup.put_object(Bucket=MLFLOW, Key="runs/1/model.pkl", Body=b"model")
        setup.put_object(Bucket=MLFLOW, Key="other/secret.txt", Body=b"x")
        setup.put_object(Bucket=MLFLOW, Key=MODEL_KEY, Body=b"weights")
        data = Store(url)
        for namespace in ("alice", "bob"):
            data.add_user(namespace, minio_users.profile_policy(namespace))
        data.add_user("carol", minio_users.profile_policy("carol", [OPENED]))
        data.add_user("mysql", minio_users.relation_policy(BACKUPS, None))
        data.add_user("mlflow-runs", minio_users.relation_policy(MLFLOW, "runs/"))
        _reset_auth(url, "0")  # from here on, every request is checked against its user
        yield data


def _denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"] == "AccessDenied"
    return False


def _keys(client: Any, bucket: str, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for o in listed.get("Contents", [])}


# --- a profile ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["private-artifacts/alice/", "private/alice/"])
def test_a_profile_lists_reads_writes_and_deletes_its_own_prefixes(store: Store, prefix: str):
    alice = store.users["alice"]
    key = f"{prefix}new/object.txt"

    alice.put_object(Bucket=PIPELINES, Key=key, Body=b"mine")

    assert alice.get_object(Bucket=PIPELINES, Key=key)["Body"].read() == b"mine"
    assert key in _keys(alice, PIPELINES, prefix)
    alice.delete_object(Bucket=PIPELINES, Key=key)
    assert key not in _keys(alice, PIPELINES, prefix)


def test_a_profile_writes_its_pipeline_root_in_parts(store: Store):
    # KFP's launcher uploads large artifacts in parts.
    alice = store.users["alice"]
    key = "private-artifacts/alice/v2/artifacts/big"
    upload = alice.create_multipart_upload(Bucket=PIPELINES, Key=key)
    part = alice.upload_part(
        Bucket=PIPELINES, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 10
    )
    alice.complete_multipart_upload(
        Bucket=PIPELINES,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert alice.get_object(Bucket=PIPELINES, Key=key)["Body"].read() == b"x" * 10


def test_a_profile_reads_the_shared_prefix_but_cannot_write_it(store: Store):
    alice = store.users["alice"]

    assert alice.get_object(Bucket=PIPELINES, Key=SHARED_OBJECT)["Body"].read() == b"data"
    assert SHARED_OBJECT in _keys(alice, PIPELINES, "shared/")
    assert _denied(alice.put_object, Bucket=PIPELINES, Key="shared/planted.csv", Body=b"x")
    assert _denied(alice.delete_object, Bucket=PIPELINES, Key=SHARED_OBJECT)


@pytest.mark.parametrize(
    "prefix", ["private-artifacts/bob/", "private/bob/", "private-artifacts/alice-team/"]
)
def test_a_profile_cannot_list_another_profiles_prefix(store: Store, prefix: str):
    assert _denied(store.users["alice"].list_objects_v2, Bucket=PIPELINES, Prefix=prefix)


@pytest.mark.parametrize(
    "key",
    [
        "private-artifacts/bob/v2/artifacts/run/out",
        "private/bob/notes.txt",
        "private-artifacts/alice-team/x",
    ],
)
def test_a_profile_cannot_read_overwrite_or_delete_another_profiles_objects(
    store: Store, key: str
):
    alice = store.users["alice"]

    assert _denied(alice.get_object, Bucket=PIPELINES, Key=key)
    assert _denied(alice.put_object, Bucket=PIPELINES, Key=key, Body=b"forged")
    assert _denied(alice.delete_object, Bucket=PIPELINES, Key=key)


@pytest.mark.parametrize("prefix", ["", "private-artifacts/", "private/", "private-artifacts/al"])
def test_a_profile_cannot_list_the_bucket_beyond_its_prefixes(store: Store, prefix: str):
    assert _denied(store.users["alice"].list_objects_v2, Bucket=PIPELINES, Prefix=prefix)


def test_a_profile_cannot_touch_the_backup_bucket(store: Store):
    alice = store.users["alice"]

    assert _denied(alice.list_objects_v2, Bucket=BACKUPS)
    assert _denied(alice.list_objects_v2, Bucket=BACKUPS, Prefix="kubeflow/")
    assert _denied(alice.get_object, Bucket=BACKUPS, Key="kubeflow/db/dump.sql.gz")
    assert _denied(alice.put_object, Bucket=BACKUPS, Key="kubeflow/db/dump.sql.gz", Body=b"x")


def test_a_profile_cannot_reach_other_buckets_or_make_any(store: Store):
    alice = store.users["alice"]

    assert _denied(alice.get_object, Bucket=MLFLOW, Key="runs/1/model.pkl")
    assert _denied(alice.list_buckets)
    assert _denied(alice.create_bucket, Bucket="alice-own-bucket")


# --- a profile reading what a relation opens (profiles-read) ---------------------------


def test_a_profile_reads_and_lists_what_a_relation_opens(store: Store):
    carol = store.users["carol"]

    assert carol.get_object(Bucket=MLFLOW, Key=MODEL_KEY)["Body"].read() == b"weights"
    # What KServe's storage initializer does with an s3:// URI: list under it, then get.
    prefix = "artifacts/1/abc123/artifacts/model/"
    assert _keys(carol, MLFLOW, prefix) == {MODEL_KEY}
    assert MODEL_KEY in _keys(carol, MLFLOW, "artifacts/")


def test_a_profile_cannot_write_or_delete_what_a_relation_opens(store: Store):
    carol = store.users["carol"]

    assert _denied(carol.put_object, Bucket=MLFLOW, Key=MODEL_KEY, Body=b"forged")
    assert _denied(carol.put_object, Bucket=MLFLOW, Key="artifacts/new.pkl", Body=b"x")
    assert _denied(carol.delete_object, Bucket=MLFLOW, Key=MODEL_KEY)
    assert _denied(carol.create_multipart_upload, Bucket=MLFLOW, Key="artifacts/big")
    # Still there, as it was.
    assert carol.get_object(Bucket=MLFLOW, Key=MODEL_KEY)["Body"].read() == b"weights"


def test_a_profile_reads_nothing_beyond_what_a_relation_opens(store: Store):
    carol = store.users["carol"]

    assert _denied(carol.get_object, Bucket=MLFLOW, Key="runs/1/model.pkl")
    assert _denied(carol.get_object, Bucket=MLFLOW, Key="other/secret.txt")
    assert _denied(carol.list_objects_v2, Bucket=MLFLOW, Prefix="")
    assert _denied(carol.list_objects_v2, Bucket=MLFLOW, Prefix="runs/")
    assert _denied(carol.list_objects_v2, Bucket=MLFLOW, Prefix="artifact")
    assert _denied(carol.get_object, Bucket=BACKUPS, Key="kubeflow/db/dump.sql.gz")
    assert _denied(carol.list_objects_v2, Bucket=BACKUPS)
    # Its own prefixes are as before; another profile's are not opened.
    assert _denied(carol.get_object, Bucket=PIPELINES, Key="private/alice/notes.txt")
    carol.put_object(Bucket=PIPELINES, Key="private/carol/notes.txt", Body=b"mine")


def test_a_profile_without_the_grant_reads_nothing_there(store: Store):
    assert _denied(store.users["alice"].get_object, Bucket=MLFLOW, Key=MODEL_KEY)
    assert _denied(store.users["alice"].list_objects_v2, Bucket=MLFLOW, Prefix="artifacts/")


# --- a relation ------------------------------------------------------------------------


def test_a_relation_reaches_its_whole_bucket(store: Store):
    mysql = store.users["mysql"]

    mysql.put_object(Bucket=BACKUPS, Key="kubeflow/db/next.sql.gz", Body=b"dump2")
    assert {"kubeflow/db/dump.sql.gz", "kubeflow/db/next.sql.gz"} <= _keys(mysql, BACKUPS, "")
    assert mysql.get_object(Bucket=BACKUPS, Key="kubeflow/db/next.sql.gz")["Body"].read() == (
        b"dump2"
    )


def test_a_relation_reaches_no_other_bucket(store: Store):
    mysql = store.users["mysql"]

    assert _denied(mysql.list_objects_v2, Bucket=PIPELINES, Prefix="private/alice/")
    assert _denied(mysql.get_object, Bucket=PIPELINES, Key="private/alice/notes.txt")
    assert _denied(mysql.put_object, Bucket=MLFLOW, Key="runs/x", Body=b"x")


def test_a_relation_with_a_path_reaches_only_that_path(store: Store):
    runs = store.users["mlflow-runs"]

    assert runs.get_object(Bucket=MLFLOW, Key="runs/1/model.pkl")["Body"].read() == b"model"
    runs.put_object(Bucket=MLFLOW, Key="runs/2/model.pkl", Body=b"m2")
    assert "runs/2/model.pkl" in _keys(runs, MLFLOW, "runs/")
    assert _denied(runs.get_object, Bucket=MLFLOW, Key="other/secret.txt")
    assert _denied(runs.put_object, Bucket=MLFLOW, Key="other/planted", Body=b"x")
    assert _denied(runs.list_objects_v2, Bucket=MLFLOW, Prefix="")
    assert _denied(runs.list_objects_v2, Bucket=MLFLOW, Prefix="other/")


def test_the_server_refuses_what_no_policy_allows(store: Store):
    # The control: the server checks keys at all (an unknown key is refused).
    stranger = _client(store.url, "AKIAUNKNOWN00000000", "not-a-real-secret")
    with pytest.raises(ClientError) as refused:
        stranger.get_object(Bucket=PIPELINES, Key=SHARED_OBJECT)
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
