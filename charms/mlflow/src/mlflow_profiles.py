"""What every Kubeflow profile namespace gets to use MLflow, through the resource dispatcher.

- over `secrets`: the Secret `mlflow-tracking`, holding the server's
  in-cluster URI as `MLFLOW_TRACKING_URI` (the same in every namespace);
- over `pod-defaults`: the PodDefault `access-mlflow`, which gives pods
  labelled `access-mlflow: "true"` that URI (from the Secret), the object
  store's endpoint in clear (`MLFLOW_S3_ENDPOINT_URL`, `AWS_ENDPOINT_URL`),
  `MLFLOW_ARTIFACTS_S3_ROOT` (where the server writes artifacts, to build a
  registered model's S3 URI for KServe), `MLFLOW_EXPERIMENT_NAME` when the
  charm's default experiment is set, and the profile's own read keys from
  minio's per-profile Secret `minio-credentials` (`optional`: a profile
  without it still gets the rest).

Clients log through the server's artifact proxy and need no keys; the keys
are for reading models straight from the bucket, as KServe's storage
initializer does. Nothing secret is in either object: the URI is not a
secret, and the keys stay in minio's Secret.
"""

from __future__ import annotations

from typing import Any

TRACKING_SECRET = "mlflow-tracking"  # noqa: S105 - an object name
POD_DEFAULT = "access-mlflow"
SELECTOR_LABEL = "access-mlflow"
# minio's per-profile Secret (charms/minio/src/profile_manifests.py).
STORAGE_SECRET = "minio-credentials"  # noqa: S105 - an object name
ARTIFACTS_ROOT_ENV = "MLFLOW_ARTIFACTS_S3_ROOT"


def tracking_secret(tracking_uri: str) -> dict[str, Any]:
    """The Secret with the tracking URI, under the name MLflow's client reads."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TRACKING_SECRET},
        "type": "Opaque",
        "stringData": {"MLFLOW_TRACKING_URI": tracking_uri},
    }


def pod_default(
    *, s3_endpoint: str | None, artifacts_root: str, default_experiment: str = ""
) -> dict[str, Any]:
    """The PodDefault: the URI from the Secret, the endpoint and roots in clear, the keys."""
    env: dict[str, str] = {}
    if s3_endpoint:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3_endpoint
        env["AWS_ENDPOINT_URL"] = s3_endpoint
    env[ARTIFACTS_ROOT_ENV] = artifacts_root
    if default_experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = default_experiment
    return {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": POD_DEFAULT},
        "spec": {
            "desc": "Track runs and register models in MLflow",
            "selector": {"matchLabels": {SELECTOR_LABEL: "true"}},
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "envFrom": [
                {"secretRef": {"name": TRACKING_SECRET}},
                {"secretRef": {"name": STORAGE_SECRET, "optional": True}},
            ],
        },
    }
