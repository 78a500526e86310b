"""Fixtures for the minio charm's unit tests: the charm, states, a real S3 server."""

from __future__ import annotations

import urllib.request
from types import ModuleType
from typing import Any

import pytest
from charm_loader import load_charm
from ops import testing
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


class FakeMinioAdmin:
    """MinIO's admin API as the charm uses it: users, policies and what is attached.

    Records every call (name and the user or policy it names, never a key).
    With `down` set, every call fails as an unreachable MinIO does.
    """

    def __init__(self) -> None:
        self.users: dict[str, str] = {}  # access key -> secret key
        self.policies: dict[str, dict[str, Any]] = {}
        self.attached: dict[str, str] = {}  # user -> policy
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.fail_after: int | None = None  # calls that succeed before MinIO goes down
        self.connected_as: list[str] = []

    def _enter(self, name: str, subject: str) -> None:
        import urllib3

        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            self.down = True
        if self.down:
            raise urllib3.exceptions.MaxRetryError(None, "/minio/admin/v3", None)  # type: ignore[arg-type]
        self.calls.append((name, subject))

    def user_add(self, access_key: str, secret_key: str) -> str:
        self._enter("user_add", access_key)
        self.users[access_key] = secret_key
        return ""

    def user_remove(self, access_key: str) -> str:
        from minio.error import MinioAdminException

        self._enter("user_remove", access_key)
        if access_key not in self.users:
            raise MinioAdminException("404", '{"Code":"XMinioAdminNoSuchUser"}')
        del self.users[access_key]
        self.attached.pop(access_key, None)
        return ""

    def policy_add(self, policy_name: str, policy_file: Any = None, policy: Any = None) -> str:
        self._enter("policy_add", policy_name)
        self.policies[policy_name] = policy
        return ""

    def policy_remove(self, policy_name: str) -> str:
        from minio.error import MinioAdminException

        self._enter("policy_remove", policy_name)
        if policy_name in self.attached.values():
            raise MinioAdminException("400", '{"Code":"XMinioIAMPolicyInUse"}')
        self.policies.pop(policy_name, None)
        return ""

    def policy_set(self, policy_name: str, user: Any = None, group: Any = None) -> str:
        self._enter("policy_set", f"{policy_name}->{user}")
        self.attached[user] = policy_name
        return ""

    def policy_of(self, user: str) -> dict[str, Any]:
        return self.policies[self.attached[user]]


@pytest.fixture(autouse=True)
def minio_admin(monkeypatch: pytest.MonkeyPatch) -> FakeMinioAdmin:
    """Every admin client the charm makes talks to this fake, whatever the test."""
    fake = FakeMinioAdmin()

    def connect(root: Any, endpoint: str) -> FakeMinioAdmin:
        fake.connected_as.append(root.access_key)
        return fake

    monkeypatch.setattr(minio_users, "connect", connect)
    return fake
