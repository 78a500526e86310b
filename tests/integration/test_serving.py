"""MLflow and KServe on a real Juju model (MicroK8s in the GitHub workflow).

It runs after test_bundle.py on the same model and reuses the bundle that
module deployed (it deploys the bundle itself when run alone on an empty
model). In order:

1. mlflow and kserve are active with their relations;
2. a profile is made for Dex's admin user; the dispatcher hands its
   namespace mlflow's Secret and PodDefault, minio's scoped keys and
   kserve's ServiceAccount;
3. a pod in the profile that selects the `access-mlflow` PodDefault trains a
   scikit-learn model, logs it through MLflow's artifact proxy (the pod has
   the tracking URI from the PodDefault and needs no keys to log) and
   registers it, then prints the registered version's source and the S3
   URI KServe reads it from;
4. an InferenceService (sklearn runtime, RawDeployment, the profile's
   `kserve-models` ServiceAccount) serves that URI: its storage initializer
   downloads the model with the profile's own keys;
5. a prediction through the gateway: the InferenceService's host on the
   gateway, behind the login (refused without it, answered with the login's
   session cookie).

The training pod pulls python:3.11-slim (as test_kfp.py) and installs MLflow's
client and scikit-learn from PyPI; the predictor pulls KServe's sklearn server.
Pods that run to completion opt out of the profile's sidecar injection.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from integration.test_bundle import (
    APPS,
    BUNDLE,
    SETTLE_BUNDLE,
    deploy_bundle,
    gateway_address,
    leader,
    log_in_at_dex,
    run_action,
    wait_for,
)
from pytest_operator.plugin import OpsTest

logger = logging.getLogger(__name__)

MLFLOW = "mlflow"
KSERVE = "kserve"
PROFILE = "serving-user"
MODEL_NAME = "iris-classifier"
ISVC = "iris"
# The images this module's pods pull, named for the job's image check
# (tools/check_images.py reads this module's string constants).
STEP_IMAGE = "docker.io/library/python:3.11-slim"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}
# KServe v0.14.1's sklearn server runs scikit-learn ~1.5.1 (kserve/kserve v0.14.1
# python/sklearnserver/pyproject.toml): the model is pickled with the same minor release.
CLIENT_PACKAGES = ["mlflow-skinny==2.22.0", "scikit-learn==1.5.2", "cloudpickle"]
# What the training pod runs: the PodDefault gave it MLFLOW_TRACKING_URI and
# MLFLOW_ARTIFACTS_S3_ROOT; the source of the registered version is
# mlflow-artifacts:/<experiment>/<run>/artifacts/model, which the server keeps
# under the S3 root.
TRAIN_SCRIPT = f"""
import json, os
import mlflow, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]] * 10
labels = [0, 1, 2] * 10
model = LogisticRegression(max_iter=500).fit(rows, labels)
mlflow.set_experiment("serving-check")
with mlflow.start_run() as run:
    mlflow.log_param("max_iter", 500)
    mlflow.log_metric("train_accuracy", model.score(rows, labels))
    mlflow.sklearn.log_model(model, "model", registered_model_name="{MODEL_NAME}")
client = mlflow.MlflowClient()
version = client.get_latest_versions("{MODEL_NAME}")[0]
source = version.source
assert source.startswith("mlflow-artifacts:/"), source
root = os.environ["MLFLOW_ARTIFACTS_S3_ROOT"].rstrip("/")
print("RESULT " + json.dumps({{
    "source": source,
    "storage_uri": root + "/" + source[len("mlflow-artifacts:/"):],
    "prediction": [int(p) for p in model.predict(rows[:3])],
}}))
"""

# --- how long each wait may take ---------------------------------------------------
# These add up to 35 minutes (10 + 3 + 10 + 10 + 2) after test_bundle.py, or 55
# with the bundle's own first settle (test_bundle.SETTLE_BUNDLE) when this module
# deploys it.
SETTLE_SERVING = 10 * 60  # mlflow and kserve, their images pulled
PROFILE_WAIT = 3 * 60  # the profile's namespace and what the dispatcher puts there
TRAIN_WAIT = 10 * 60  # pull, pip install, train, log, register
SERVE_WAIT = 10 * 60  # the sklearn server's image, the download, ready
PREDICT_WAIT = 2 * 60  # the gateway serves the InferenceService's Ingress


def _ready(obj: Any) -> bool:
    status = (obj.status or {}) if not isinstance(obj, dict) else obj.get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


@pytest.mark.abort_on_fail
async def test_mlflow_and_kserve_are_deployed_and_active(ops_test: OpsTest):
    assert ops_test.model is not None
    settle = SETTLE_SERVING
    if not ops_test.model.applications:  # run alone: deploy the bundle as test_bundle does
        await deploy_bundle(ops_test)
        settle = SETTLE_BUNDLE
    for app in (MLFLOW, KSERVE):
        if app not in ops_test.model.applications:
            pytest.fail(f"{BUNDLE.name} deploys no {app} application")
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=settle
    )


@pytest.mark.abort_on_fail
async def test_a_profile_gets_what_serving_needs(ops_test: OpsTest):
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.core_v1 import Namespace, Secret, ServiceAccount

    admin = await run_action(ops_test, await leader(ops_test, "dex"), "get-admin-password")
    await run_action(
        ops_test,
        await leader(ops_test, "kubeflow-dashboard"),
        "create-profile",
        name=PROFILE,
        owner=admin["email"],
    )
    client = Client()
    await wait_for("the profile namespace", PROFILE_WAIT, lambda: client.get(Namespace, PROFILE))
    for name in ("mlflow-tracking", "minio-credentials"):
        await wait_for(
            f"the Secret {name}",
            PROFILE_WAIT,
            lambda name=name: client.get(Secret, name, namespace=PROFILE),
        )
    account = await wait_for(
        "kserve's ServiceAccount",
        PROFILE_WAIT,
        lambda: client.get(ServiceAccount, "kserve-models", namespace=PROFILE),
    )
    assert [s.name for s in account.secrets or []] == ["minio-credentials"]
    pod_default = create_namespaced_resource(
        "kubeflow.org", "v1alpha1", "PodDefault", "poddefaults"
    )
    await wait_for(
        "the access-mlflow PodDefault",
        PROFILE_WAIT,
        lambda: client.get(pod_default, "access-mlflow", namespace=PROFILE),
    )


async def _train_and_register() -> dict[str, Any]:
    from lightkube import Client
    from lightkube.models.core_v1 import Container, PodSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Pod

    client = Client(field_manager="integration-test")
    name = "register-iris"
    command = (
        f"pip install --quiet {' '.join(CLIENT_PACKAGES)} && python3 -c {_quote(TRAIN_SCRIPT)}"
    )
    client.create(
        Pod(
            metadata=ObjectMeta(
                name=name,
                namespace=PROFILE,
                labels={"access-mlflow": "true"},
                annotations=NO_SIDECAR,
            ),
            spec=PodSpec(
                restartPolicy="Never",
                containers=[
                    Container(name="train", image=STEP_IMAGE, command=["sh", "-c", command])
                ],
            ),
        )
    )

    def finished():
        pod = client.get(Pod, name, namespace=PROFILE)
        phase = pod.status.phase if pod.status else None
        if phase == "Failed":
            logs = "\n".join(client.log(name, namespace=PROFILE))
            pytest.fail(f"the training pod failed:\n{logs}")
        return pod if phase == "Succeeded" else None

    await wait_for("the model's registration", TRAIN_WAIT, finished)
    logs = list(client.log(name, namespace=PROFILE))
    lines = [line for line in logs if line.startswith("RESULT ")]
    assert lines, "the training pod printed no result:\n" + "\n".join(logs)
    return json.loads(lines[-1][len("RESULT ") :])


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


async def test_a_registered_model_is_served_and_answers_through_the_gateway(ops_test: OpsTest):
    import requests
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource

    assert ops_test.model is not None
    result = await _train_and_register()
    logger.info("registered: %s", result)
    storage_uri = result["storage_uri"]
    assert storage_uri.startswith("s3://"), storage_uri

    isvc_kind = create_namespaced_resource(
        "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
    )
    body = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": ISVC,
            "namespace": PROFILE,
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment", **NO_SIDECAR},
        },
        "spec": {
            "predictor": {
                "serviceAccountName": "kserve-models",
                "minReplicas": 1,
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri},
            }
        },
    }
    client = Client(field_manager="integration-test")
    client.create(isvc_kind.from_dict(body))
    isvc = await wait_for(
        "the InferenceService's readiness",
        SERVE_WAIT,
        lambda: (
            (found := client.get(isvc_kind, ISVC, namespace=PROFILE)) and _ready(found) and found
        ),
    )
    url = (isvc.status or {}).get("url", "")
    host = re.sub(r"^https?://", "", url).split("/")[0]
    assert host.startswith(f"{ISVC}-{PROFILE}."), url

    address = gateway_address(ops_test.model.name)
    await ops_test.model.applications["istio"].set_config({"external-hostname": address})
    predict = f"http://{address}/v1/models/{ISVC}:predict"
    payload = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]}

    refused = requests.post(
        predict, json=payload, headers={"Host": host}, allow_redirects=False, timeout=30
    )
    assert refused.status_code in (302, 401, 403), (
        f"without a login the prediction answered {refused.status_code}"
    )

    admin = await run_action(ops_test, await leader(ops_test, "dex"), "get-admin-password")
    session = requests.Session()
    log_in_at_dex(session, f"http://{address}/", admin)
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)

    answer = await wait_for(
        "a prediction through the gateway",
        PREDICT_WAIT,
        lambda: (
            (
                r := requests.post(
                    predict, json=payload, headers={"Host": host, "Cookie": cookies}, timeout=30
                )
            ).status_code
            == 200
            and r
        ),
    )
    assert answer.json()["predictions"] == result["prediction"], answer.text
