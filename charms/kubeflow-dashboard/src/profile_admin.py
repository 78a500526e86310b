"""Profiles and their contributors, as the actions manage them with lightkube.

A Profile (kubeflow.org/v1, cluster-scoped) names its owner; the profile
controller makes its namespace, of the same name, with the owner as admin.
A contributor is a RoleBinding in that namespace to `kubeflow-edit` or
`kubeflow-view` and an Istio AuthorizationPolicy, both named and annotated
(`user`, `role`) as KFAM names its own, so the dashboard's "Manage
contributors" page and these actions see, and can remove, the same members.

Every function checks everything first and then writes: a failed check
changes nothing. lightkube is imported here only, when an action runs.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import yaml

logger = logging.getLogger(__name__)

ROLES = ("edit", "view")
RESERVED = frozenset(
    {"default", "kubeflow", "kube-system", "kube-public", "kube-node-lease", "istio-system"}
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"([0-9]+(\.[0-9]+)?|\.[0-9]+)([mkMGTPE]|[KMGTPE]i)?")
_SUFFIXES = {
    "": 1,
    "m": Fraction(1, 1000),
    **{s: 1000**n for n, s in enumerate("kMGTPE", start=1)},
    **{f"{s}i": 1024**n for n, s in enumerate("KMGTPE", start=1)},
}
# A Kubernetes quantity holds at most 2^63-1 with at most 3 decimal places; the
# API server caps or rounds up anything else, silently.
MAX_QUANTITY = 2**63 - 1
_USER = re.compile(r"^\S{1,200}$")
_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


class ProfileError(Exception):
    """An action cannot do what it was asked; the message says why."""


@dataclasses.dataclass(frozen=True)
class Quota:
    """A profile's resource quota; None fields are not limited."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    storage: str | None = None

    def __post_init__(self):
        for field in ("cpu", "memory", "storage"):
            value = getattr(self, field)
            if value is not None:
                check_quantity(field, value)
        if self.gpu is not None and (
            not isinstance(self.gpu, int)
            or isinstance(self.gpu, bool)
            or not 0 <= self.gpu <= MAX_QUANTITY
        ):
            raise ProfileError(f"gpu: must be a count of GPUs, 0 to {MAX_QUANTITY}")

    def hard(self) -> dict[str, str]:
        """The ResourceQuota's `hard` limits."""
        hard = {
            "cpu": self.cpu,
            "memory": self.memory,
            "requests.nvidia.com/gpu": None if self.gpu is None else str(self.gpu),
            "requests.storage": self.storage,
        }
        return {k: v for k, v in hard.items() if v is not None}


def check_quantity(field: str, value: str) -> None:
    """A quota must be a Kubernetes quantity that Kubernetes keeps as given."""
    text = value if isinstance(value, str) else str(value)
    shown = repr(text if len(text) <= 40 else text[:40] + "...")
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ProfileError(f"{field}: {shown} is not a Kubernetes quantity (e.g. 4, 500m, 16Gi)")
    number, suffix = match.group(1), match.group(3) or ""
    # Anything longer is beyond the range or the precision below.
    exact = Fraction(number) * _SUFFIXES[suffix] if len(number) <= 40 else None
    if exact is None or exact > MAX_QUANTITY or (exact * 1000).denominator != 1:
        raise ProfileError(
            f"{field}: {shown} is beyond what Kubernetes keeps: at most {MAX_QUANTITY} (2^63-1), "
            "to 3 decimal places (1m)"
        )


def check_name(name: str, model: str) -> None:
    """A profile name must be a DNS-1123 label and not a reserved namespace."""
    if not _DNS_LABEL.match(name):
        raise ProfileError(
            f"{name!r} is not a valid profile name: use at most 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    if name in RESERVED or name == model or name.startswith("kube-"):
        raise ProfileError(f"{name!r} is a reserved namespace: choose another profile name")


def check_user(user: str, what: str = "user") -> None:
    """A user id: what the userid header carries, without spaces."""
    if not _USER.match(user):
        raise ProfileError(f"{what}: {user!r} is not a user id (1 to 200 characters, no spaces)")


def binding_name(user: str, role: str) -> str:
    """The RoleBinding (and AuthorizationPolicy) name KFAM gives a contributor.

    KFAM joins the subject's kind, its name with every run of characters
    other than ASCII letters and digits made '-', the role's kind and the
    role as the dashboard names it (`edit`, `view`), lower-cases that and
    makes '-' of those runs again. The dashboard's "Manage contributors"
    finds a contributor's binding by this name to remove it.
    """
    raw = "-".join(("User", _NOT_ALNUM.sub("-", user), "ClusterRole", role)).lower()
    return _NOT_ALNUM.sub("-", raw)


# --- lightkube from here on


def client(field_manager: str, namespace: str) -> Any:
    """A lightkube Client."""
    from lightkube import Client

    return Client(field_manager=field_manager, namespace=namespace)


def _profile_type() -> Any:
    from lightkube.generic_resource import create_global_resource

    return create_global_resource("kubeflow.org", "v1", "Profile", "profiles")


def _get(api: Any, kind: Any, name: str, namespace: str | None = None) -> Any:
    from lightkube.core.exceptions import ApiError

    try:
        return api.get(kind, name, namespace=namespace)
    except ApiError as e:
        if e.status.code == 404:
            return None
        raise


def _profile(api: Any, name: str) -> Any:
    profile = _get(api, _profile_type(), name)
    if profile is None:
        raise ProfileError(f"no profile named {name!r}")
    return profile


def _owner(profile: Any) -> str:
    return str(((profile.get("spec") or {}).get("owner") or {}).get("name", ""))


def _members(api: Any, namespace: str) -> dict[str, tuple[str, str]]:
    """Contributors of a profile namespace: user -> (role, RoleBinding name)."""
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    members = {}
    for binding in api.list(RoleBinding, namespace=namespace):
        annotations = binding.metadata.annotations or {}
        user, role = annotations.get("user"), annotations.get("role")
        if user and role in ROLES:
            members[user] = (role, binding.metadata.name)
    return members


def create_profile(api: Any, name: str, owner: str, quota: Quota, model: str) -> dict[str, Any]:
    """Create a Profile; its namespace follows from the profile controller."""
    from lightkube.resources.core_v1 import Namespace

    check_name(name, model)
    check_user(owner, "owner")
    if _get(api, _profile_type(), name) is not None:
        raise ProfileError(f"profile {name!r} exists already")
    if _get(api, Namespace, name) is not None:
        raise ProfileError(f"namespace {name!r} exists already and is not a profile")
    spec: dict[str, Any] = {"owner": {"kind": "User", "name": owner}}
    if quota.hard():
        spec["resourceQuotaSpec"] = {"hard": quota.hard()}
    profile = _profile_type()(metadata={"name": name}, spec=spec)
    api.create(profile)
    return spec


def _mesh_policy(
    name: str, profile: str, user: str, role: str, userid: str, principals: Sequence[str]
) -> Any:
    """An AuthorizationPolicy letting the contributor's requests reach the profile's workloads.

    As KFAM's: the sidecars in a profile namespace let through requests
    whose user-id header (set by the OIDC gateway) names the contributor,
    coming from the ingress gateway or the pipelines UI (their mesh
    identities): no other workload can claim to be the user.
    """
    from lightkube.generic_resource import create_namespaced_resource

    policy = create_namespaced_resource(
        "security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"
    )
    return policy.from_dict(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {
                "name": name,
                "namespace": profile,
                "annotations": {"user": user, "role": role},
            },
            "spec": {
                "rules": [
                    {
                        "from": [{"source": {"principals": list(principals)}}],
                        "when": [{"key": userid, "values": [user]}],
                    }
                ]
            },
        }
    )


def _grant_mesh_access(api: Any, policy: Any) -> str:
    """Create the policy; say so, or why not (no Istio in the cluster)."""
    from lightkube.core.exceptions import ApiError

    try:
        api.create(policy)
    except ApiError as e:
        if e.status.code in (404, 422):
            logger.warning("no mesh access policy for the contributor: %s", e.status.message)
            return "not granted: Istio's AuthorizationPolicy kind is not installed"
        raise
    return "granted"


def add_contributor(
    api: Any,
    profile: str,
    user: str,
    role: str,
    model: str,
    *,
    userid_header: str = "kubeflow-userid",
    userid_prefix: str = "",
    principals: Sequence[str],
) -> tuple[str, str]:
    """Bind a user to a profile's namespace as editor or viewer.

    Returns the binding's name and whether the mesh lets the user's requests
    through to the profile's workloads.
    """
    from lightkube.resources.core_v1 import Namespace
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    check_name(profile, model)
    check_user(user)
    if role not in ROLES:
        raise ProfileError(f"role: must be edit or view, not {role!r}")
    owner = _owner(_profile(api, profile))
    if user == owner:
        raise ProfileError(f"{user} owns profile {profile!r} already")
    members = _members(api, profile) if _get(api, Namespace, profile) else None
    if members is None:
        raise ProfileError(
            f"the namespace of profile {profile!r} does not exist yet: try again shortly"
        )
    if user in members:
        raise ProfileError(f"{user} is a contributor of {profile!r} already ({members[user][0]})")
    name = binding_name(user, role)
    api.create(
        RoleBinding.from_dict(
            {
                "metadata": {
                    "name": name,
                    "namespace": profile,
                    "annotations": {"user": user, "role": role},
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"kubeflow-{role}",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    )
    userid = f"request.headers[{userid_header}]"
    mesh = _grant_mesh_access(
        api, _mesh_policy(name, profile, f"{userid_prefix}{user}", role, userid, principals)
    )
    return name, mesh


def remove_contributor(api: Any, profile: str, user: str, model: str) -> str:
    """Remove a contributor's RoleBinding; the role they had."""
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    check_name(profile, model)
    check_user(user)
    owner = _owner(_profile(api, profile))
    if user == owner:
        raise ProfileError(f"{user} owns profile {profile!r}: an owner cannot be removed")
    members = _members(api, profile)
    if user not in members:
        raise ProfileError(f"{user} is not a contributor of {profile!r}")
    role, name = members[user]
    api.delete(RoleBinding, name, namespace=profile)
    _revoke_mesh_access(api, name, profile)
    return role


def _revoke_mesh_access(api: Any, name: str, profile: str) -> None:
    from lightkube.core.exceptions import ApiError
    from lightkube.generic_resource import create_namespaced_resource

    policy = create_namespaced_resource(
        "security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"
    )
    try:
        api.delete(policy, name, namespace=profile)
    except ApiError as e:
        if e.status.code != 404:
            raise


def list_profiles(api: Any) -> list[dict[str, Any]]:
    """Every profile: name, owner, contributors and their roles, quota."""
    out = []
    profiles = sorted(api.list(_profile_type()), key=lambda p: p.metadata.name)
    for profile in profiles:
        name = profile.metadata.name
        spec = profile.get("spec") or {}
        members = _members(api, name)
        out.append(
            {
                "name": name,
                "owner": _owner(profile),
                "contributors": [
                    {"user": user, "role": members[user][0]} for user in sorted(members)
                ],
                "quota": dict((spec.get("resourceQuotaSpec") or {}).get("hard") or {}),
            }
        )
    return out


def dump(profiles: list[dict[str, Any]]) -> str:
    """Profiles as YAML for the action's output."""
    return yaml.safe_dump(profiles, sort_keys=False) if profiles else "[]\n"
