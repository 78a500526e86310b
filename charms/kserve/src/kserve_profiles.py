"""The ServiceAccount `kserve-models` every profile gets, handed over `service-accounts`.

KServe's storage initializer gets its credentials from the Secrets the
InferenceService's ServiceAccount lists in `secrets` (kserve/kserve v0.14.1
pkg/credentials/service_account_credentials.go): an S3 Secret is one with
AWS_SECRET_ACCESS_KEY, and its serving.kserve.io/s3-* annotations give the
endpoint. The minio charm keeps such a Secret in every profile namespace
(`storage-secret`, `minio-credentials` by default); this ServiceAccount
lists it, and the resource dispatcher keeps it in every profile namespace.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import ops

from kubeflow_interfaces.kubernetes_manifests import ManifestsRequirer

logger = logging.getLogger(__name__)

SERVICE_ACCOUNTS = "service-accounts"
NAME = "kserve-models"


def service_account(secret: str) -> dict[str, Any]:
    """The ServiceAccount an InferenceService names to read models with the profile's keys."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": NAME},
        "secrets": [{"name": secret}],
    }


def publish(
    charm: ops.CharmBase, secret: str, record: MutableMapping[str, str] | None = None
) -> None:
    """Leader: hand the dispatcher the ServiceAccount (only what changed is written)."""
    if not charm.unit.is_leader() or not charm.model.relations[SERVICE_ACCOUNTS]:
        return
    if ManifestsRequirer(charm, SERVICE_ACCOUNTS).publish([service_account(secret)], record):
        logger.info("handed the dispatcher the %s ServiceAccount", NAME)


def revoke(
    charm: ops.CharmBase,
    event: ops.RelationBrokenEvent,
    record: MutableMapping[str, str] | None = None,
) -> None:
    """Leader: remove the secret that held a departing relation's ServiceAccount."""
    if charm.unit.is_leader():
        ManifestsRequirer(charm, SERVICE_ACCOUNTS).revoke(event.relation, record)
