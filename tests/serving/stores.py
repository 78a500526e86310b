"""The object store and database the serving test runs against, as the charms set them up."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

MINIO_SRC = Path(__file__).resolve().parents[2] / "charms" / "minio" / "src"
if str(MINIO_SRC) not in sys.path:
    sys.path.insert(0, str(MINIO_SRC))

import minio_users  # noqa: E402

REGION = "us-east-1"
PROFILE = "alice"
# The mlflow charm's defaults: its artifacts go to s3://mlflow/artifacts
# (charms/mlflow config artifact-bucket, artifact-path).
BUCKET = "mlflow"
ARTIFACT_PATH = "artifacts"
MLFLOW_RELATION_ID = 7


@dataclass(frozen=True)
class Keys:
    """An access key and its secret."""

    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class ObjectStore:
    """The S3 server, and the keys of each of its users."""

    url: str
    admin: Keys  # every right, for the test's own checks (MinIO's root)
    mlflow: Keys  # the keys minio gives mlflow's `object-storage` relation
    profile: Keys  # the keys minio gives the profile (its `minio-credentials` Secret)

    def client(self, keys: Keys) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            config=Config(retries={"max_attempts": 1}),
        )


def profile_policy_reading(namespace: str, bucket: str, path: str) -> dict[str, Any]:
    """The profile's policy with read and list on a `profiles-read` relation's bucket/path.

    The cross-charm contract of issue 15 (point 1): the minio charm adds these
    to every profile's policy for each relation whose requirer asks for
    `profiles-read`, as mlflow's does. Built here on the charm's own
    `profile_policy` until the charm renders it.
    """
    policy = minio_users.profile_policy(namespace)
    prefix = path.strip("/") + "/"
    policy["Statement"] += [
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
        },
    ]
    return policy


@dataclass(frozen=True)
class Database:
    """Where mlflow's database is and the account the mysql charm made for it."""

    host: str
    port: int
    name: str
    user: str
    password: str = field(repr=False)
