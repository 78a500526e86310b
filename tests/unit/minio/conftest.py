"""Fixtures for the minio charm's unit tests: the charm, states, a real S3 server."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from charm_loader import load_charm
from ops import testing

CHARM = load_charm("minio")
# The charm's workload module, as the charm imported it.
import minio_server  # noqa: E402


@pytest.fixture
def charm() -> ModuleType:
    return CHARM


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(CHARM.MinioCharm)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Run a real S3 server (moto) on a free port of 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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
def local_minio(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Point the charm's bucket making at the S3 server, emptied for this test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(minio_server, "LOCAL_ENDPOINT", s3_server)
    reset = f"{s3_server}/moto-api/reset"
    request = urllib.request.Request(reset, method="POST")  # noqa: S310 - local test server
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
    return S3Server(s3_server)


@pytest.fixture
def unreachable_minio(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the charm's bucket making at a port nothing listens on."""
    url = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setattr(minio_server, "LOCAL_ENDPOINT", url)
    return url
