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

import minio_users  # noqa: E402, F401 - the minio charm's, for the conftest

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


@dataclass(frozen=True)
class Database:
    """Where mlflow's database is and the account the mysql charm made for it."""

    host: str
    port: int
    name: str
    user: str
    password: str = field(repr=False)
