"""A fake of MinIO's admin API for the minio charm's tests (unit, interop, bundle)."""

from __future__ import annotations

from typing import Any

import pytest


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


def fake_minio_admin(monkeypatch: pytest.MonkeyPatch) -> FakeMinioAdmin:
    """Make every admin client the minio charm builds talk to a new fake; return it.

    The charm must be loaded first (its `minio_users` module on the path).
    """
    import minio_users

    fake = FakeMinioAdmin()

    def connect(root: Any, endpoint: str) -> FakeMinioAdmin:
        fake.connected_as.append(root.access_key)
        return fake

    monkeypatch.setattr(minio_users, "connect", connect)
    return fake
