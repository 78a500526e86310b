"""Fixtures for the minio charm's unit tests: the charm, states, a real S3 server."""

from __future__ import annotations

import urllib.request
from types import ModuleType
from typing import Any

import pytest
from charm_loader import load_charm
from ops import testing
from unit.minio.helpers import FakeMinioAdmin
from workload.servers import free_port

CHARM = load_charm("minio")
# The charm's workload module, as the charm imported it.
import minio_server  # noqa: E402
import minio_users  # noqa: E402


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.MinioCharm)


class S3Server:
    """The test S3 server, as the charm's "local MinIO"."""

    def __init__(self, url: str):
        self.url = url

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test-secret",
        )

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.client().list_buckets().get("Buckets", [])}


@pytest.fixture
def local_minio(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the charm's bucket making at the S3 server, emptied for this test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(minio_server, "LOCAL_ENDPOINT", s3_endpoint)
    reset = f"{s3_endpoint}/moto-api/reset"
    request = urllib.request.Request(reset, method="POST")  # noqa: S310 - local test server
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
    return S3Server(s3_endpoint)


@pytest.fixture
def unreachable_minio(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the charm's bucket making at a port nothing listens on."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(minio_server, "LOCAL_ENDPOINT", url)
    return url


@pytest.fixture(autouse=True)
def minio_admin(monkeypatch: pytest.MonkeyPatch) -> FakeMinioAdmin:
    """Every admin client the charm makes talks to this fake, whatever the test."""
    fake = FakeMinioAdmin()

    def connect(root: Any, endpoint: str) -> FakeMinioAdmin:
        fake.connected_as.append(root.access_key)
        return fake

    monkeypatch.setattr(minio_users, "connect", connect)
    return fake
