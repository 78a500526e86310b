"""A narrow API token for the namespace watch, in place of the pod's own.

Kubernetes mounts the pod's service-account token into every container of
the pod, except one that already has a volume mounted at the token's
directory. The charm mounts its `watch-credentials` storage there in the
`namespace-watch` container, so the third-party kubectl image never sees the
pod's token, which with `juju trust` can write cluster objects. Instead the
charm asks the API (TokenRequest) for a short-lived token of its own service
account `<app>-namespace-watch`, whose ClusterRole allows get, list and watch
on namespaces and nothing else, and writes the three files kubectl's
in-cluster configuration reads there: `token`, `ca.crt` (the cluster CA, from
the charm container's own mount) and `namespace`.

The token is renewed when a third of its lifetime remains; the charm keeps
its expiry in the unit's stored state, so a settled hook compares two numbers
and checks the file is still there, and imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import ops

from kubeflow_charms.kubernetes import KubernetesError

logger = logging.getLogger(__name__)

STORAGE = "watch-credentials"
# Where the ServiceAccount admission plugin mounts a pod's token, and where
# kubectl's in-cluster configuration reads it.
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"  # noqa: S105 (a path)
TOKEN_FILE = f"{TOKEN_DIR}/token"
CA_FILE = f"{TOKEN_DIR}/ca.crt"
NAMESPACE_FILE = f"{TOKEN_DIR}/namespace"
# The cluster CA as the charm container has it (its own mount of the pod's token volume).
CHARM_CA = Path(TOKEN_DIR) / "ca.crt"
LIFETIME = 24 * 3600
# The image runs as root (its Dockerfile sets no USER, and the charm sets no uid).
OWNER = 0


@dataclasses.dataclass(frozen=True)
class Token:
    """A token as the API issued it; its value is never logged or shown."""

    value: str = dataclasses.field(repr=False)
    issued: float
    expires: float


def service_account(app: str) -> str:
    """The watch's own service account, in the model's namespace."""
    return f"{app}-namespace-watch"


def renewal_due(issued: float, expires: float, now: float) -> bool:
    """Whether a token issued and expiring then has less than a third of its life left."""
    if expires <= issued:
        return True
    return now >= issued + (expires - issued) * 2 / 3


def request_token(app: str, namespace: str, now: float, seconds: int = LIFETIME) -> Token:
    """A new token for the watch's service account (TokenRequest), valid `seconds` or less."""
    from kubeflow_charms.kubernetes import _api_errors

    with _api_errors():
        from lightkube import Client
        from lightkube.models.authentication_v1 import TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        request = ServiceAccount.Token(
            metadata=ObjectMeta(namespace=namespace),
            spec=TokenRequestSpec(expirationSeconds=seconds),
        )
        answer = Client(namespace=namespace).create(
            request, service_account(app), namespace=namespace
        )
    status = answer.status
    if status is None or not status.token or status.expirationTimestamp is None:
        raise KubernetesError("the API issued no token for the namespace watch")
    return Token(status.token, issued=now, expires=status.expirationTimestamp.timestamp())


class TokenFilesError(Exception):
    """The token files could not be written where kubectl reads them."""


def write_files(container: ops.Container, token: Token, ca: str, namespace: str) -> None:
    """Put the token, the CA and the namespace where kubectl's in-cluster config reads them."""
    files = {
        TOKEN_FILE: (token.value, 0o600),
        CA_FILE: (ca, 0o644),
        NAMESPACE_FILE: (namespace, 0o644),
    }
    try:
        for path, (content, mode) in files.items():
            container.push(
                path, content, make_dirs=True, permissions=mode, user_id=OWNER, group_id=OWNER
            )
    except (ops.pebble.PathError, ops.pebble.APIError) as e:
        # Without the storage mounted there, the directory is the pod's read-only token volume.
        raise TokenFilesError(
            f"cannot write the watch token to {TOKEN_DIR} in the namespace-watch container "
            f"(is the {STORAGE} storage attached?): {e.message}"
        ) from e


def files_present(container: ops.Container) -> bool:
    """Whether the token file is in the container (gone when the pod was replaced)."""
    try:
        return container.exists(TOKEN_FILE)
    except (ops.pebble.APIError, ops.pebble.ConnectionError):
        return False


def charm_ca() -> str | None:
    """The cluster CA from the charm container's own token volume, None when absent."""
    try:
        return CHARM_CA.read_text()
    except OSError:
        return None
