"""What every Kubeflow profile namespace gets to reach the object store.

A Secret holding the keys (the only place they travel) and a PodDefault that
gives pods labelled `access-minio: "true"` the endpoint in clear and the keys
from that Secret. The resource dispatcher copies the PodDefault into each
profile namespace. In server mode each profile has keys of its own: the
Secret is pinned to its namespace (`metadata.namespace`), one per profile,
all under the same name, so the one PodDefault finds each profile's own.

The Secret also tells KServe where the store is. KServe v0.14.1 takes a
Secret listed by an InferenceService's ServiceAccount for S3 credentials
when it holds the key its config names (`AWS_SECRET_ACCESS_KEY` in
Kubeflow's config), and reads the store from the Secret's annotations
(kserve/kserve v0.14.1 pkg/credentials/s3/s3_secret.go, the
`InferenceServiceS3*Annotation` names; pkg/credentials/s3/utils.go,
`BuildS3EnvVars`): `serving.kserve.io/s3-endpoint` is host[:port], to which
it prefixes `https://` unless `serving.kserve.io/s3-usehttps` is "0";
`s3-region` becomes AWS_DEFAULT_REGION; `s3-verifyssl` becomes
S3_VERIFY_SSL, which the storage initializer reads as "verify" unless "0"
or "false" (python/kserve/kserve/storage/storage.py, `_download_s3`);
`s3-usevirtualbucket` "true" makes it address buckets by host name.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kubeflow_interfaces import s3

SECRET_NAME = "minio-credentials"  # noqa: S105 - an object name
POD_DEFAULT_NAME = "access-minio"
SELECTOR_LABEL = "access-minio"
# KServe v0.14.1's S3 Secret annotations (see the module's docstring).
KSERVE_ANNOTATION_PREFIX = "serving.kserve.io/"
KSERVE_S3_ENDPOINT = KSERVE_ANNOTATION_PREFIX + "s3-endpoint"
KSERVE_S3_USE_HTTPS = KSERVE_ANNOTATION_PREFIX + "s3-usehttps"
KSERVE_S3_REGION = KSERVE_ANNOTATION_PREFIX + "s3-region"
KSERVE_S3_VERIFY_SSL = KSERVE_ANNOTATION_PREFIX + "s3-verifyssl"
KSERVE_S3_USE_VIRTUAL_BUCKET = KSERVE_ANNOTATION_PREFIX + "s3-usevirtualbucket"


def kserve_annotations(
    endpoint: str, region: str, *, uri_style: str = "path", custom_ca: bool = False
) -> dict[str, str]:
    """KServe's S3 annotations for a store at `endpoint` (an http:// or https:// URL).

    `custom_ca`: the endpoint's certificate chains to a CA the operator gave
    (external-ca-chain). KServe's storage initializer verifies against its
    image's CA bundle or a CA bundle ConfigMap it mounts, neither of which
    holds that CA, so verification is turned off for that store
    (`s3-verifyssl: "0"`); other https stores are verified ("1").
    """
    parts = urlsplit(endpoint)
    https = parts.scheme == "https"
    annotations = {
        KSERVE_S3_ENDPOINT: parts.netloc + parts.path.rstrip("/"),
        KSERVE_S3_USE_HTTPS: "1" if https else "0",
        KSERVE_S3_REGION: region,
    }
    if https:
        annotations[KSERVE_S3_VERIFY_SSL] = "0" if custom_ca else "1"
    if uri_style == "host":
        annotations[KSERVE_S3_USE_VIRTUAL_BUCKET] = "true"
    return annotations


def credentials_secret(
    credentials: s3.S3Credentials,
    namespace: str | None = None,
    *,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Secret with the access and secret key under the names S3 clients look for.

    With `namespace`, the Secret is pinned there: the dispatcher puts it in
    that profile namespace only. `annotations`: KServe's, from
    `kserve_annotations`.
    """
    metadata: dict[str, Any] = {"name": SECRET_NAME}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = dict(annotations)
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
