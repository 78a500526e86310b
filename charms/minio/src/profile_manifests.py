"""What every Kubeflow profile namespace gets to reach the object store.

A Secret holding the keys (the only place they travel) and a PodDefault that
gives pods labelled `access-minio: "true"` the endpoint in clear and the keys
from that Secret. The resource dispatcher copies the PodDefault into each
profile namespace. In server mode each profile has keys of its own: the
Secret is pinned to its namespace (`metadata.namespace`), one per profile,
all under the same name, so the one PodDefault finds each profile's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kubeflow_interfaces import s3

SECRET_NAME = "minio-credentials"  # noqa: S105 - an object name
POD_DEFAULT_NAME = "access-minio"
SELECTOR_LABEL = "access-minio"


def credentials_secret(
    credentials: s3.S3Credentials, namespace: str | None = None
) -> dict[str, Any]:
    """The Secret with the access and secret key under the names S3 clients look for.

    With `namespace`, the Secret is pinned there: the dispatcher puts it in
    that profile namespace only.
    """
    metadata = {"name": SECRET_NAME}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
            "MINIO_ACCESS_KEY": credentials.access_key,
            "MINIO_SECRET_KEY": credentials.secret_key,
        },
    }


def pod_default(endpoint: str, region: str) -> dict[str, Any]:
    """The PodDefault: the endpoint in clear, every key from the Secret."""
    parts = urlsplit(endpoint)
    https = parts.scheme == "https"
    env = {
        "MINIO_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        "S3_ENDPOINT": parts.netloc,
        "S3_USE_HTTPS": "1" if https else "0",
        "S3_VERIFY_SSL": "1" if https else "0",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": POD_DEFAULT_NAME},
        "spec": {
            "desc": "Access the platform's S3 object store",
            "selector": {"matchLabels": {SELECTOR_LABEL: "true"}},
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
        },
    }
