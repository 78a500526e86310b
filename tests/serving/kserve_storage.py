"""What KServe v0.14.1 gives a predictor's storage initializer, from a profile's objects.

The webhook reads the predictor's ServiceAccount, takes each Secret it lists
that holds the configured secret-key entry as S3 credentials, and gives the
init container the keys (by reference) and env derived from the Secret's
`serving.kserve.io/s3-*` annotations. The rules are the facts in
`tests/conformance/facts/kserve-storage.yaml` (each with where it was read);
this module applies them to plain manifests, with the Secret's values
resolved as the kubelet resolves a secretKeyRef.
"""

from __future__ import annotations

from typing import Any

from conformance import facts

FACTS = facts.load("kserve-storage")
STORAGE = {name: fact.value for name, fact in FACTS["storage-initializer"].items()}
SKLEARN = {name: fact.value for name, fact in FACTS["sklearnserver"].items()}
MODEL_SERVER = {name: fact.value for name, fact in FACTS["model-server"].items()}

ENDPOINT_ANNOTATION = "serving.kserve.io/s3-endpoint"
HTTPS_ANNOTATION = "serving.kserve.io/s3-usehttps"


def _secret_values(secret: dict[str, Any]) -> dict[str, str]:
    """The Secret's entries as the pod sees them (`stringData` as the API server stores it)."""
    import base64

    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def _s3_envs(secret: dict[str, Any]) -> dict[str, str]:
    values = _secret_values(secret)
    env = {name: values[key] for name, key in STORAGE["secret-key-envs"].items()}
    annotations = secret["metadata"].get("annotations") or {}
    endpoint = annotations.get(ENDPOINT_ANNOTATION)
    endpoint_url = STORAGE["endpoint-url"]
    for annotation, name in STORAGE["annotation-envs"].items():
        if annotation not in annotations:
            continue  # Kubeflow's configmap leaves every fallback empty: no env
        if annotation == HTTPS_ANNOTATION and endpoint is None:
            continue  # read only together with an endpoint
        env[name] = annotations[annotation]
    if endpoint is not None:
        template = endpoint_url["https"]
        if annotations.get(HTTPS_ANNOTATION) == "0":
            template = endpoint_url["when-usehttps-is-0"]
        env[endpoint_url["env"]] = template.format(endpoint=endpoint)
    return env


def storage_initializer_env(
    service_account: dict[str, Any], secrets: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """The env the webhook gives the init container of a pod run as `service_account`.

    `secrets`: the namespace's Secrets by name. A listed Secret that is
    missing is an error, as it is for the webhook.
    """
    env: dict[str, str] = {}
    for ref in service_account.get(STORAGE["service-account"]["secrets-from"]) or []:
        secret = secrets[ref["name"]]
        if STORAGE["s3-secret-detected-by"] in _secret_values(secret):
            env.update(_s3_envs(secret))
    return env
