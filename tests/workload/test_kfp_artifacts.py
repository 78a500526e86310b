"""A profile's run artifacts, with the keys that profile gets, on an S3 server that enforces them.

Each profile holds the policy the minio charm gives its keys
(`minio_users.profile_policy`), on moto with IAM checks on (see
`servers.s3_server_enforcing_iam`). What a run writes and where comes from the
kfp charm's own code: the profile's `kfp-launcher` ConfigMap (its
`defaultPipelineRoot` and `providers`: endpoint, path style, which Secret and
keys hold the credentials) and Argo's ConfigMap (the artifact repository's
endpoint, bucket, `keyFormat` and the Secret its keys are read from in the
workflow's namespace: where and with what each step pod's log is archived). The output
URIs and log keys are made as the KFP 2.4.1 driver and Argo v3.4.17 make them
(`pipelines/kfp_runtime.py` says where each was read).
"""

from __future__ import annotations

import datetime
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from pipelines import kfp_runtime as rt
from workload.servers import s3_server_enforcing_iam
from workload.test_minio_policies import Store, _client, _reset_auth

from kubeflow_interfaces.s3 import S3Credentials

MINIO_SRC = Path(__file__).resolve().parents[2] / "charms" / "minio" / "src"
if str(MINIO_SRC) not in sys.path:
    sys.path.insert(0, str(MINIO_SRC))

import minio_users  # noqa: E402
import profile_manifests  # noqa: E402

PROFILES = ("alice", "bob")
PIPELINE = "a-pipeline"
TASKS = {"make-dataset": "dataset", "train": "model"}


class Profiles:
    """The server, each profile's keys as its Secret holds them, the charm's config."""

    def __init__(self, url: str, store: Store, secrets: dict[str, dict[str, str]]):
        self.url = url
        self.store = store
        self.secrets = secrets
        split = urlsplit(url)
        assert split.hostname and split.port
        # The object store as the object-storage relation gives it to kfp.
        self.object_store = rt.object_store(split.hostname, split.port)
        self.config = rt.config_from_options({})

    def launcher(self, namespace: str) -> dict[str, Any]:
        return rt.launcher_config(self.config, self.object_store, namespace)

    def launcher_client(self, namespace: str) -> Any:
        """An S3 client as the launcher makes one from the profile's providers and Secret."""
        launcher = self.launcher(namespace)
        scheme = launcher["defaultPipelineRoot"].partition("://")[0]
        provider = yaml.safe_load(launcher["providers"])[scheme]["default"]
        credentials = provider["credentials"]
        assert credentials["fromEnv"] is False
        ref = credentials["secretRef"]
        assert ref["secretName"] == profile_manifests.SECRET_NAME
        secret = self.secrets[namespace]
        http = "http" if provider["disableSSL"] else "https"
        return boto3.session.Session().client(
            "s3",
            endpoint_url=f"{http}://{provider['endpoint']}",
            region_name="us-east-1",  # moto signs for any region; MinIO's own is in `region`
            aws_access_key_id=secret[ref["accessKeyKey"]],
            aws_secret_access_key=secret[ref["secretKeyKey"]],
            config=Config(
                retries={"max_attempts": 1},
                s3={"addressing_style": "path" if provider["forcePathStyle"] else "auto"},
            ),
        )

    def run_outputs(self, namespace: str, run_id: str) -> dict[str, tuple[str, str]]:
        """Each task's output artifact as (bucket, key), from the profile's pipeline root."""
        root = rt.pipeline_root(None, self.launcher(namespace))
        outputs = {}
        for task, output in TASKS.items():
            uri = rt.output_uri(root, PIPELINE, run_id, task, str(uuid.uuid4()), output)
            outputs[task] = rt.bucket_and_key(uri)
        return outputs

    def argo(self) -> dict[str, Any]:
        repository = rt.argo_config(self.config, self.object_store)["artifactRepository"]
        assert repository["archiveLogs"] is True
        return repository["s3"]

    def archived_log(self, namespace: str) -> tuple[str, str]:
        """Where Argo archives a step pod's log in `namespace`, as (bucket, key)."""
        s3 = self.argo()
        key = rt.archived_log_key(
            s3["keyFormat"],
            workflow=f"{PIPELINE}-x7k2p",
            namespace=namespace,
            pod=f"{PIPELINE}-x7k2p-system-container-impl-1234567890",
            created=datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc),
        )
        return s3["bucket"], key

    def argo_client(self, namespace: str) -> Any:
        """An S3 client as Argo's executor makes one in a pod of `namespace`.

        The repository names a Secret and its keys, read in the workflow's
        namespace: the profile must have that Secret (the minio charm hands it
        only `minio-credentials`).
        """
        s3 = self.argo()
        secret_name = s3["accessKeySecret"]["name"]
        assert s3["secretKeySecret"]["name"] == secret_name
        assert secret_name == profile_manifests.SECRET_NAME, (
            f"Argo reads the keys from Secret {secret_name!r}, which no profile namespace has"
        )
        secret = self.secrets[namespace]
        http = "http" if s3["insecure"] else "https"
        return boto3.session.Session().client(
            "s3",
            endpoint_url=f"{http}://{s3['endpoint']}",
            region_name="us-east-1",
            aws_access_key_id=secret[s3["accessKeySecret"]["key"]],
            aws_secret_access_key=secret[s3["secretKeySecret"]["key"]],
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="module")
def profiles() -> Iterator[Profiles]:
    with s3_server_enforcing_iam() as url:
        _client(url, "setup", "setup-secret").create_bucket(Bucket=minio_users.PROFILE_BUCKET)
        store = Store(url)
        secrets = {}
        for namespace in PROFILES:
            store.add_user(namespace, minio_users.profile_policy(namespace))
            client = store.users[namespace]
            keys = client._request_signer._credentials  # the keys add_user made
            # The Secret the minio charm hands the profile, built by its own code.
            secret = profile_manifests.credentials_secret(
                S3Credentials(access_key=keys.access_key, secret_key=keys.secret_key), namespace
            )
            secrets[namespace] = secret["stringData"]
        _reset_auth(url, "0")
        yield Profiles(url, store, secrets)


def _denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"] == "AccessDenied"
    return False


def test_the_launcher_reads_the_secret_minio_hands_each_profile(profiles: Profiles):
    providers = yaml.safe_load(profiles.launcher("alice")["providers"])
    for scheme in ("minio", "s3"):
        ref = providers[scheme]["default"]["credentials"]["secretRef"]
        assert ref["secretName"] == profile_manifests.SECRET_NAME
        assert {ref["accessKeyKey"], ref["secretKeyKey"]} <= set(profiles.secrets["alice"])


@pytest.mark.parametrize("namespace", PROFILES)
def test_a_profile_writes_and_reads_its_runs_artifacts(profiles: Profiles, namespace: str):
    client = profiles.launcher_client(namespace)
    outputs = profiles.run_outputs(namespace, str(uuid.uuid4()))

    for task, (bucket, key) in outputs.items():
        assert bucket == minio_users.PROFILE_BUCKET
        assert key.startswith(f"private-artifacts/{namespace}/")
        client.put_object(Bucket=bucket, Key=key, Body=task.encode())
    # The second step reads what the first wrote.
    bucket, key = outputs["make-dataset"]
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"make-dataset"


def test_a_profile_cannot_read_or_write_another_profiles_run(profiles: Profiles):
    bobs = profiles.run_outputs("bob", str(uuid.uuid4()))
    bob = profiles.launcher_client("bob")
    for bucket, key in bobs.values():
        bob.put_object(Bucket=bucket, Key=key, Body=b"bob's")
    alice = profiles.launcher_client("alice")

    for bucket, key in bobs.values():
        assert _denied(alice.get_object, Bucket=bucket, Key=key)
        assert _denied(alice.put_object, Bucket=bucket, Key=key, Body=b"forged")
    bucket, key = bobs["train"]
    assert _denied(alice.list_objects_v2, Bucket=bucket, Prefix=key.rsplit("/", 3)[0])
    assert bob.get_object(Bucket=bucket, Key=key)["Body"].read() == b"bob's"


@pytest.mark.parametrize("namespace", PROFILES)
def test_argo_archives_a_step_log_where_the_profiles_keys_may_write(
    profiles: Profiles, namespace: str
):
    """The executor in the profile's pod uploads the log with the profile's keys."""
    bucket, key = profiles.archived_log(namespace)
    client = profiles.argo_client(namespace)

    client.put_object(Bucket=bucket, Key=key, Body=b"step log")
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"step log"
    other = next(p for p in PROFILES if p != namespace)
    assert _denied(profiles.argo_client(other).get_object, Bucket=bucket, Key=key)
