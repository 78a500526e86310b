"""Profiles and their contributors, as the actions manage them with lightkube.

A Profile (kubeflow.org/v1, cluster-scoped) names its owner; the profile
controller makes its namespace, of the same name, with the owner as admin.
A contributor is a RoleBinding in that namespace to `kubeflow-edit` or
`kubeflow-view` and an Istio AuthorizationPolicy, both named and annotated
(`user`, `role`) as KFAM names its own, so the dashboard's "Manage
contributors" page and these actions see, and can remove, the same members.
A user's bindings and policies are found by their `user` annotation, as
KFAM finds them.

A user id goes into an AuthorizationPolicy's header match, where Istio reads
a leading or trailing `*` as a wildcard, and into the header the gateway
sets: `check_user` takes only an e-mail address or a plain user name, in
ASCII (see its docstring).

Every function checks everything first and then writes: a failed check
changes nothing. lightkube is imported here only, when an action runs.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
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
# What the profile controller makes for the owner in each profile namespace,
# annotated with the owner's id and role `admin` (kubeflow/kubeflow v1.10.0,
# components/profile-controller/controllers/profile_controller.go): not a
# contributor's, never removed here.
CONTROLLER_BINDING = "namespaceAdmin"
CONTROLLER_POLICY = "ns-owner-access-istio"
# The roles KFAM names in a binding's `role` annotation (kfam/bindings.go's
# roleBindingNameMap): a contributor made by KFAM may hold any of them.
KFAM_ROLES = ("admin", "edit", "view")
# User ids: see check_user.
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LOCAL_PART = re.compile(r"[A-Za-z0-9_'+-]+(\.[A-Za-z0-9_'+-]+)*")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "GREEK", "CYRILLIC"})
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
    """A user id the login can put in the user-id header: an e-mail address or a user name.

    - An e-mail address, `local@domain`, at most 254 characters: the local
      part is at most 64 ASCII letters, digits and `_ ' + -`, in dot-separated
      runs (RFC 5321's dot-string without the rarer symbols); the domain is
      one or more labels of ASCII letters, digits and inner hyphens, 1 to 63
      each, the last not all digits (no address literals; `localhost` and
      `kubeflow.local` are names Dex's users may have). An internationalised domain is given in
      its `xn--` form, which must be valid IDNA 2008 and not mix Latin, Greek
      and Cyrillic letters in one label.
    - A user name (a `preferred_username` claim, say): 1 to 64 ASCII letters,
      digits, `.`, `_` and `-`, starting with a letter or digit.

    Everything else is refused: `*` (a wildcard to Istio), spaces, control,
    invisible and other non-ASCII characters (names that look alike, or
    break a header).
    """
    reason = _user_problem(user) if isinstance(user, str) else "it is not text"
    if reason is not None:
        text = user if isinstance(user, str) else str(user)
        shown = repr(text if len(text) <= 60 else text[:60] + "...")
        raise ProfileError(f"{what}: {shown} is not a user id: {reason}")


def _user_problem(user: str) -> str | None:
    """Why `user` is not a user id, or None when it is one."""
    if not user:
        return "give an e-mail address or a user name"
    if "*" in user:
        return (
            "'*' is a wildcard in the mesh's policies and would let anyone in; "
            "give one user's e-mail address or user name"
        )
    for char in user:
        if char.isspace() or unicodedata.category(char)[0] in "CZ":
            return f"it holds U+{ord(char):04X}, a space, control or invisible character"
    for char in user:
        if not char.isascii():
            return (
                f"it holds {char!r} (U+{ord(char):04X}): user ids are ASCII, so that "
                "two cannot look alike; give an internationalised domain in its xn-- form"
            )
    if "@" not in user:
        if _USER_NAME.fullmatch(user):
            return None
        return (
            "a user name is 1 to 64 ASCII letters, digits, '.', '_' and '-', "
            "starting with a letter or digit; or give an e-mail address"
        )
    return _email_problem(user)


def _email_problem(address: str) -> str | None:
    local, _, domain = address.rpartition("@")
    if len(address) > 254:
        return "an e-mail address is at most 254 characters"
    if not _LOCAL_PART.fullmatch(local) or len(local) > 64:
        return (
            "before the @, an e-mail address has 1 to 64 ASCII letters, digits and "
            "_ ' + -, in runs joined by single dots"
        )
    labels = domain.split(".")
    if len(domain) > 253 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return (
            f"{domain!r} is not a domain: labels of 1 to 63 ASCII letters, digits "
            "and inner hyphens, joined by dots"
        )
    if labels[-1].isdigit():
        return f"{domain!r} is not a domain name: its last label is a number"
    for label in labels:
        problem = _label_problem(label)
        if problem is not None:
            return problem
    return None


def _label_problem(label: str) -> str | None:
    """An internationalised (xn--) label must be valid IDNA 2008 in one lookalike script."""
    if label[2:4] != "--":
        return None
    if label[:4].lower() != "xn--":
        return f"{label!r}: '--' in the third and fourth places is reserved for xn-- labels"
    import idna

    try:
        text = idna.decode(label)
    except (idna.IDNAError, UnicodeError, ValueError) as e:
        return f"{label!r} is not a valid internationalised domain label ({e})"
    scripts = {
        unicodedata.name(c, "").split(" ", 1)[0] for c in text if unicodedata.category(c)[0] == "L"
    }
    mixed = sorted(scripts & _LOOKALIKE_SCRIPTS)
    if len(mixed) > 1:
        return (
            f"{label!r} ({text}) mixes {' and '.join(s.title() for s in mixed)} letters, "
            "which look alike"
        )
    return None


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


class _LazyClient:
    """A lightkube Client made on first use: input refused before that needs no API."""

    def __init__(self, field_manager: str, namespace: str):
        self._field_manager = field_manager
        self._namespace = namespace
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            from lightkube import Client

            self._client = Client(field_manager=self._field_manager, namespace=self._namespace)
        return getattr(self._client, name)


def client(field_manager: str, namespace: str) -> Any:
    """A lightkube Client, made (and its credentials read) when first called."""
    return _LazyClient(field_manager, namespace)


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


def _policy_type() -> Any:
    from lightkube.generic_resource import create_namespaced_resource

    return create_namespaced_resource(
        "security.istio.io", "v1", "AuthorizationPolicy", "authorizationpolicies"
    )


def _user_of(obj: Any) -> tuple[str | None, str | None]:
    """The (user, role) annotations KFAM puts on a contributor's binding and policy."""
    annotations = obj.metadata.annotations or {}
    return annotations.get("user"), annotations.get("role")


def _members(api: Any, namespace: str) -> dict[str, list[tuple[str, str]]]:
    """Contributors of a profile namespace: user -> [(role, RoleBinding name)], sorted.

    Every RoleBinding KFAM would list (a `user` annotation and a `role` it
    names) but the profile controller's own for the owner.
    """
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    members: dict[str, list[tuple[str, str]]] = {}
    for binding in api.list(RoleBinding, namespace=namespace):
        user, role = _user_of(binding)
        if user and role in KFAM_ROLES and binding.metadata.name != CONTROLLER_BINDING:
            members.setdefault(user, []).append((role, binding.metadata.name))
    return {user: sorted(found) for user, found in members.items()}


def _policies_of(api: Any, namespace: str, user: str, names: Sequence[str]) -> list[str]:
    """The AuthorizationPolicies of a user: annotated with them, or named as their bindings.

    The names catch the policies earlier versions of the charm annotated with
    the prefixed user id. None when Istio's kind is not installed.
    """
    from lightkube.core.exceptions import ApiError

    try:
        policies = list(api.list(_policy_type(), namespace=namespace))
    except ApiError as e:
        if e.status.code == 404:
            return []
        raise
    found = set()
    for policy in policies:
        name = policy.metadata.name
        if name == CONTROLLER_POLICY:
            continue
        if _user_of(policy)[0] == user or name in names:
            found.add(name)
    return sorted(found)


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
    name: str,
    profile: str,
    user: str,
    role: str,
    userid: str,
    userid_prefix: str,
    principals: Sequence[str],
) -> Any:
    """An AuthorizationPolicy letting the contributor's requests reach the profile's workloads.

    As KFAM's: the sidecars in a profile namespace let through requests
    whose user-id header (set by the OIDC gateway) names the contributor,
    coming from the ingress gateway or the pipelines UI (their mesh
    identities): no other workload can claim to be the user. Annotated with
    the bare user id, as the binding (KFAM's too): the header carries it
    after the prefix.
    """
    return _policy_type().from_dict(
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
                        "when": [{"key": userid, "values": [f"{userid_prefix}{user}"]}],
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
        if e.status.code == 404:  # the kind is not served: no Istio
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
    if "*" in userid_prefix:
        # Istio would read the policy's `<prefix><user>` as a wildcard match.
        raise ProfileError(
            f"the user-id prefix {userid_prefix!r} the mesh passes on holds '*', "
            "which the mesh's policies read as a wildcard: set another userid-prefix"
        )
    owner = _owner(_profile(api, profile))
    if user == owner:
        raise ProfileError(f"{user} owns profile {profile!r} already")
    members = _members(api, profile) if _get(api, Namespace, profile) else None
    if members is None:
        raise ProfileError(
            f"the namespace of profile {profile!r} does not exist yet: try again shortly"
        )
    if user in members:
        roles = ", ".join(role for role, _ in members[user])
        raise ProfileError(f"{user} is a contributor of {profile!r} already ({roles})")
    name = binding_name(user, role)
    if _policies_of(api, profile, user, [name]):
        raise ProfileError(
            f"{user} has mesh access to {profile!r} left without a binding: "
            "run remove-contributor first"
        )
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
        api, _mesh_policy(name, profile, user, role, userid, userid_prefix, principals)
    )
    return name, mesh


@dataclasses.dataclass(frozen=True)
class Removed:
    """What remove_contributor deleted."""

    roles: tuple[str, ...]
    bindings: tuple[str, ...]
    policies: tuple[str, ...]


def remove_contributor(api: Any, profile: str, user: str, model: str) -> Removed:
    """Delete every RoleBinding and AuthorizationPolicy of a contributor in a profile.

    Found by their `user` annotation, whatever their name or role, as KFAM
    lists them; policies are also found by their bindings' names. An id that
    is not a valid user id is refused, unless bindings or policies carry it
    exactly (made before ids were checked): those are removed.
    """
    from lightkube.resources.rbac_authorization_v1 import RoleBinding

    check_name(profile, model)
    try:
        check_user(user)
        invalid = None
    except ProfileError as e:
        invalid = e
    owner = _owner(_profile(api, profile))
    if user == owner:
        raise ProfileError(f"{user} owns profile {profile!r}: an owner cannot be removed")
    bindings = _members(api, profile).get(user, [])
    names = [name for _, name in bindings]
    policies = _policies_of(api, profile, user, names)
    if not bindings and not policies:
        raise invalid or ProfileError(f"{user} is not a contributor of {profile!r}")
    if invalid is not None:
        logger.warning("removing the bindings of an invalid user id from %s", profile)
    for name in names:
        _delete(api, RoleBinding, name, profile)
    for name in policies:
        _delete(api, _policy_type(), name, profile)
    roles = tuple(sorted({role for role, _ in bindings}))
    return Removed(roles=roles, bindings=tuple(names), policies=tuple(policies))


def _delete(api: Any, kind: Any, name: str, namespace: str) -> None:
    """Delete an object; one already gone is fine."""
    from lightkube.core.exceptions import ApiError

    try:
        api.delete(kind, name, namespace=namespace)
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
                    {"user": user, "role": role}
                    for user in sorted(members)
                    for role in sorted({role for role, _ in members[user]})
                ],
                "quota": dict((spec.get("resourceQuotaSpec") or {}).get("hard") or {}),
            }
        )
    return out


def dump(profiles: list[dict[str, Any]]) -> str:
    """Profiles as YAML for the action's output."""
    return yaml.safe_dump(profiles, sort_keys=False) if profiles else "[]\n"
