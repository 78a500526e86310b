"""Who can sign in to Dex: connectors, static users and the admin user.

This module parses and checks what the operator configured. It reads no
config or secret itself, sets no status and leaves the workload alone.
Errors are `ValueError`s that say what is wrong without quoting any secret
value, password or hash: the charm prefixes them with the option's name.
bcrypt is imported only to hash a newly generated admin password.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

import yaml

# Connector types the pinned Dex release knows, less its test-only mocks and
# the deprecated alias of saml.
CONNECTOR_TYPES = frozenset(
    {
        "atlassian-crowd",
        "authproxy",
        "bitbucket-cloud",
        "gitea",
        "github",
        "gitlab",
        "google",
        "keystone",
        "ldap",
        "linkedin",
        "microsoft",
        "oauth",
        "oidc",
        "openshift",
        "saml",
    }
)
# Connectors that send the browser to the upstream provider and take it back
# at Dex's callback: without a redirectURI of their own, they get that one.
REDIRECT_CONNECTOR_TYPES = frozenset(
    {
        "bitbucket-cloud",
        "gitea",
        "github",
        "gitlab",
        "google",
        "linkedin",
        "microsoft",
        "oauth",
        "oidc",
        "openshift",
        "saml",
    }
)
# Dex names its password database's connector `local`.
RESERVED_CONNECTOR_IDS = frozenset({"local"})
_CONNECTOR_KEYS = frozenset({"type", "id", "name", "config"})
_CONNECTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# `${key}` is a placeholder for a key of the connectors secret; `$${key}` is
# the literal text `${key}`.
_PLACEHOLDER = re.compile(r"(\$?)\$\{([a-z](?:-?[a-z0-9])*)\}")

# A bcrypt hash as Dex reads it; Dex refuses to log in with a cost outside
# 10..16.
_BCRYPT = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
MIN_COST = 10
MAX_COST = 16
# What the admin password is hashed with: Dex's recommended cost.
ADMIN_HASH_COST = 12
ADMIN_PASSWORD_LENGTH = 24
# The admin's email when admin-username is a plain name.
ADMIN_DOMAIN = "kubeflow.local"
USERS_KEY = "users"
_USER_KEYS = frozenset({"email", "hash", "username", "userID", "groups"})
_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ALPHABET = string.ascii_letters + string.digits
# Static users without a userID get one derived from their email, so every
# unit renders the same one.
_USER_ID_NAMESPACE = uuid.UUID("5b0d4c1e-7f3a-4c2b-9d6e-2a8f1e4b7c90")


def _yaml_error(e: yaml.YAMLError) -> str:
    """Where the YAML broke, without quoting the text (it may hold hashes)."""
    mark = getattr(e, "problem_mark", None)
    if mark is None:
        return "not valid YAML"
    return f"not valid YAML (line {mark.line + 1}, column {mark.column + 1})"


# --- connectors -----------------------------------------------------------------------


def _placeholders_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(2) for m in _PLACEHOLDER.finditer(value) if not m.group(1)}
    if isinstance(value, Mapping):
        return set().union(*(_placeholders_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholders_in(v) for v in value))
    return set()


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1):  # `$${key}`: the literal `${key}`
                return match.group(0)[1:]
            return values[match.group(2)]

        return _PLACEHOLDER.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Connector:
    """One Dex connector; `config` may hold `${key}` placeholders until resolved."""

    type: str
    id: str
    name: str
    config: dict[str, Any] = dataclasses.field(repr=False)

    @property
    def placeholders(self) -> set[str]:
        """The secret keys this connector's config refers to."""
        return _placeholders_in(self.config)

    def resolved(self, values: Mapping[str, str]) -> Connector:
        """The connector with every placeholder replaced from `values` (all present)."""
        return dataclasses.replace(self, config=_substitute(self.config, values))

    def to_dex(self, issuer: str) -> dict[str, Any]:
        """The connector as Dex's config lists it."""
        config = dict(self.config)
        if self.type in REDIRECT_CONNECTOR_TYPES and "redirectURI" not in config:
            config["redirectURI"] = f"{issuer}/callback"
        return {"type": self.type, "id": self.id, "name": self.name, "config": config}


def _connector(index: int, entry: Any) -> Connector:
    where = f"entry {index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping with type, id, name and config")
    unknown = sorted(str(k) for k in entry if k not in _CONNECTOR_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(unknown)}")
    connector_id = entry.get("id")
    if not isinstance(connector_id, str) or not _CONNECTOR_ID.match(connector_id):
        raise ValueError(f"{where} needs an id of letters, digits, '.', '_' or '-'")
    where = f"connector {connector_id!r}"
    if connector_id in RESERVED_CONNECTOR_IDS:
        raise ValueError(f"{where}: the id is reserved for Dex's password database")
    kind = entry.get("type")
    if kind not in CONNECTOR_TYPES:
        raise ValueError(
            f"{where}: unknown type {kind!r}; use one of {', '.join(sorted(CONNECTOR_TYPES))}"
        )
    name = entry.get("name", connector_id)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: name must be a non-empty string")
    config = entry.get("config", {})
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ValueError(f"{where}: config must be a mapping")
    return Connector(type=str(kind), id=connector_id, name=name, config=config)


def parse_connectors(text: str) -> tuple[Connector, ...]:
    """The connectors in the `connectors` option (empty text: none)."""
    if not text.strip():
        return ()
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(_yaml_error(e)) from None
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ValueError("must be a YAML list of connectors")
    connectors = tuple(_connector(i, entry) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for connector in connectors:
        if connector.id in seen:
            raise ValueError(f"connector id {connector.id!r} is used twice")
        seen.add(connector.id)
    return connectors


def resolve_connectors(
    connectors: tuple[Connector, ...], values: Mapping[str, str] | None
) -> tuple[Connector, ...]:
    """Fill every placeholder from the secret's content (None: no secret configured)."""
    wanted = sorted(set().union(*(c.placeholders for c in connectors))) if connectors else []
    if not wanted:
        return connectors
    if values is None:
        names = ", ".join(f"${{{key}}}" for key in wanted)
        raise ValueError(f"{names} need a secret: set connectors-secret-id")
    missing = [key for key in wanted if key not in values]
    if missing:
        names = ", ".join(f"${{{key}}}" for key in missing)
        raise ValueError(f"{names} not found in the connectors-secret-id secret")
    return tuple(c.resolved(values) for c in connectors)


# --- static users and the admin -------------------------------------------------------


def user_id_for(email: str) -> str:
    """A stable user id for an email address."""
    return str(uuid.uuid5(_USER_ID_NAMESPACE, email.lower()))


def is_bcrypt_hash(value: str) -> bool:
    """Whether `value` is a bcrypt hash Dex accepts for logging in (cost 10 to 16)."""
    match = _BCRYPT.match(value)
    return bool(match) and MIN_COST <= int(match.group("cost")) <= MAX_COST


@dataclasses.dataclass(frozen=True)
class StaticUser:
    """A user of Dex's password database."""

    email: str
    username: str
    user_id: str
    hash: str = dataclasses.field(repr=False)
    groups: tuple[str, ...] = ()

    def to_dex(self) -> dict[str, Any]:
        """The user as Dex's staticPasswords lists it."""
        entry: dict[str, Any] = {
            "email": self.email,
            "hash": self.hash,
            "username": self.username,
            "userID": self.user_id,
        }
        if self.groups:
            entry["groups"] = list(self.groups)
        return entry


def _static_user(index: int, entry: Any) -> StaticUser:
    where = f"user {index + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping with email and hash")
    email = entry.get("email")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise ValueError(f"{where} needs an email address")
    where = f"user {email}"
    if "password" in entry:
        raise ValueError(f"{where}: plain passwords are refused; give a bcrypt hash in `hash`")
    unknown = sorted(str(k) for k in entry if k not in _USER_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(unknown)}")
    password_hash = entry.get("hash")
    if not isinstance(password_hash, str) or not is_bcrypt_hash(password_hash):
        raise ValueError(
            f"{where}: `hash` must be a bcrypt hash with cost {MIN_COST} to {MAX_COST} "
            "(e.g. from htpasswd -nbBC 12); plain passwords are refused"
        )
    username = entry.get("username", email.split("@", 1)[0])
    if not isinstance(username, str) or not username.strip():
        raise ValueError(f"{where}: username must be a non-empty string")
    user_id = entry.get("userID", user_id_for(email))
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError(f"{where}: userID must be a non-empty string")
    groups = entry.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        raise ValueError(f"{where}: groups must be a list of names")
    return StaticUser(
        email=email,
        username=username,
        user_id=user_id,
        hash=password_hash,
        groups=tuple(groups),
    )


def parse_static_users(content: Mapping[str, str]) -> tuple[StaticUser, ...]:
    """The users in a static-users secret's content."""
    if USERS_KEY not in content:
        raise ValueError(f"the secret needs the key `{USERS_KEY}`")
    unknown = sorted(k for k in content if k != USERS_KEY)
    if unknown:
        raise ValueError(f"the secret has unknown keys: {', '.join(unknown)}")
    try:
        entries = yaml.safe_load(content[USERS_KEY])
    except yaml.YAMLError as e:
        raise ValueError(f"`{USERS_KEY}` is {_yaml_error(e)}") from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"`{USERS_KEY}` must be a YAML list of at least one user")
    users = tuple(_static_user(i, entry) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for user in users:
        if user.email.lower() in seen:
            raise ValueError(f"user {user.email} is listed twice")
        seen.add(user.email.lower())
    return users


@dataclasses.dataclass(frozen=True)
class AdminLogin:
    """The admin user's names; its password lives in the app's secret."""

    username: str
    email: str

    def static_user(self, password_hash: str) -> StaticUser:
        """The admin as a user of the password database."""
        return StaticUser(
            email=self.email,
            username=self.username,
            user_id=user_id_for(self.email),
            hash=password_hash,
        )


def admin_login(admin_username: str) -> AdminLogin | None:
    """The admin's login for the admin-username option (empty: no admin user)."""
    name = admin_username.strip()
    if not name:
        return None
    if "@" in name:
        if not _EMAIL.match(name):
            raise ValueError(f"{name!r} is not a name or an email address")
        return AdminLogin(username=name.split("@", 1)[0], email=name)
    if not _USERNAME.match(name):
        raise ValueError(
            f"{name!r} is not a name (letters, digits, '.', '_', '-') or an email address"
        )
    return AdminLogin(username=name, email=f"{name}@{ADMIN_DOMAIN}")


def generate_password() -> str:
    """A random admin password of letters and digits."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(ADMIN_PASSWORD_LENGTH))


def hash_password(password: str) -> str:
    """The bcrypt hash of a password, as Dex reads it."""
    import bcrypt  # only when a password is generated: steady hooks never need it

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=ADMIN_HASH_COST)).decode()
