"""Kubeflow Pipelines on a real Juju model (MicroK8s in the GitHub workflow).

It runs after test_bundle.py on the same model and reuses the bundle that
module deployed (it deploys the bundle itself when run alone on an empty
model). In order:

1. kfp is active with its relations;
2. a profile is made for Dex's admin user, and its namespace gets what runs
   need from the dispatcher (the `kfp-launcher` ConfigMap, minio's Secret);
3. logged in through Dex, the test submits the pipeline of
   tests/pipelines/gpu_pipeline.py with the KFP SDK through the gateway
   (kfp 2.11.0 `kfp.Client(host=..., cookies=..., namespace=...)`: the
   session cookie goes with every request, so the gateway lets it through
   and sets the user header the API server authorises by), waits for
   SUCCEEDED, and finds both steps' artifacts in MinIO under the profile's
   prefix, read with the profile's own keys.

The runner has no GPU. The GPU step asks for the limit `nvidia.com/gpu: 1`
and the node selector `kubeflow.org/pool=gpu`; the test labels the node and
advertises one `nvidia.com/gpu` as an extended resource in the node's status,
the way Kubernetes documents for resources no device plugin manages
(kubernetes/website content/en/docs/tasks/administer-cluster/
extended-resource-node.md). The step's code uses no GPU, so it runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
import yaml
from integration.test_bundle import (
    APPS,
    BUNDLE,
    deploy_bundle,
    gateway_address,
    leader,
    log_in_at_dex,
    run_action,
    wait_for,
)
from pytest_operator.plugin import OpsTest

logger = logging.getLogger(__name__)

KFP = "kfp"
PROFILE = "pipelines-user"
EXPERIMENT = "integration"
POOL_LABEL = "kubeflow.org/pool"
GPU_RESOURCE = "nvidia.com/gpu"
# The images the run pulls, named here for the job's image check (tools/check_images.py
# reads this module's string constants): the steps' (gpu_pipeline.BASE_IMAGE), and the
# v2 driver's and launcher's, which the API server picks (kubeflow/pipelines 2.4.1
# backend/src/v2/compiler/argocompiler/container.go DefaultDriverImage, DefaultLauncherImage).
STEP_IMAGE = "docker.io/library/python:3.11-slim"
V2_IMAGES = ("ghcr.io/kubeflow/kfp-driver:2.4.1", "ghcr.io/kubeflow/kfp-launcher:2.4.1")

# --- how long each wait may take ---------------------------------------------------
# These add up to 45 minutes (10 + 5 + 5 + 25), on top of test_bundle.py's.
SETTLE_KFP = 10 * 60  # kfp and its relations, the bundle already up
PROFILE_WAIT = 5 * 60  # the namespace, then the dispatcher's objects in it
LOGIN_WAIT = 5 * 60  # the pipelines route answers behind the login
RUN_WAIT = 25 * 60  # pulls the driver, launcher and python images; two steps
POLL = 5


# --- helpers ------------------------------------------------------------------


def fake_gpu_node() -> str:
    """Label a node as the GPU pool and advertise one nvidia.com/gpu on it; its name."""
    from lightkube import Client
    from lightkube.resources.core_v1 import Node
    from lightkube.types import PatchType

    client = Client(field_manager="integration-test")
    node = next(iter(client.list(Node)))
    assert node.metadata and node.metadata.name
    name = node.metadata.name
    client.patch(Node, name, {"metadata": {"labels": {POOL_LABEL: "gpu"}}})
    client.patch(
        Node.Status,
        name,
        {"status": {"capacity": {GPU_RESOURCE: "1"}}},
        patch_type=PatchType.MERGE,
    )
    return name


def service_address(endpoint: str, default_namespace: str) -> str:
    """host:port reachable from the MicroK8s host for an in-cluster `service[.ns...]:port`."""
    from lightkube import Client
    from lightkube.resources.core_v1 import Service

    host, _, port = endpoint.rpartition(":")
    labels = host.split(".")
    if re.fullmatch(r"[0-9.]+", host):
        return endpoint
    namespace = labels[1] if len(labels) > 1 else default_namespace
    service = Client().get(Service, labels[0], namespace=namespace)
    assert service.spec and service.spec.clusterIP, f"Service {labels[0]} has no cluster IP"
    return f"{service.spec.clusterIP}:{port}"


def profile_store(namespace: str, model: str) -> tuple[Any, str, str]:
    """An S3 client with the profile's own keys, the bucket and the prefix of its root."""
    import base64

    import boto3
    from lightkube import Client
    from lightkube.resources.core_v1 import ConfigMap, Secret

    client = Client()
    launcher = client.get(ConfigMap, "kfp-launcher", namespace=namespace).data or {}
    root = launcher["defaultPipelineRoot"]
    scheme, _, rest = root.partition("://")
    bucket, _, prefix = rest.partition("/")
    provider = yaml.safe_load(launcher["providers"])[scheme]["default"]
    ref = provider["credentials"]["secretRef"]
    secret = client.get(Secret, ref["secretName"], namespace=namespace)
    data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    http = "http" if provider["disableSSL"] else "https"
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=f"{http}://{service_address(provider['endpoint'], model)}",
        region_name=provider.get("region") or "us-east-1",
        aws_access_key_id=data[ref["accessKeyKey"]],
        aws_secret_access_key=data[ref["secretKeyKey"]],
    )
    return s3, bucket, prefix


# --- tests --------------------------------------------------------------------


@pytest.mark.abort_on_fail
async def test_kfp_is_deployed_and_active(ops_test: OpsTest):
    assert ops_test.model is not None
    if not ops_test.model.applications:  # run alone: deploy the bundle as test_bundle does
        await deploy_bundle(ops_test)
    if KFP not in ops_test.model.applications:
        pytest.fail(f"{BUNDLE.name} deploys no {KFP} application")
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=SETTLE_KFP
    )


@pytest.mark.abort_on_fail
async def test_a_pipeline_submitted_through_the_gateway_succeeds(ops_test: OpsTest):
    import kfp
    import requests
    from lightkube import Client
    from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
    from pipelines.gpu_pipeline import (
        BASE_IMAGE,
        DATASET_OUTPUT,
        FIRST_TASK,
        MODEL_OUTPUT,
        PIPELINE_NAME,
        ROWS,
        SECOND_TASK,
        gpu_handover,
    )

    assert BASE_IMAGE == STEP_IMAGE  # the check covers what the steps pull
    assert ops_test.model is not None
    model = ops_test.model.name
    address = gateway_address(model)
    # The browser (this test) reaches the gateway at its cluster IP (see test_bundle.py).
    await ops_test.model.applications["istio"].set_config({"external-hostname": address})
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
    await wait_for(
        "the kfp-launcher ConfigMap",
        PROFILE_WAIT,
        lambda: client.get(ConfigMap, "kfp-launcher", namespace=PROFILE),
    )
    await wait_for(
        "minio's Secret",
        PROFILE_WAIT,
        lambda: client.get(Secret, "minio-credentials", namespace=PROFILE),
    )
    node = fake_gpu_node()
    logger.info("node %s stands in for the GPU pool", node)

    url = f"http://{address}/pipeline/"
    await wait_for(  # the route is served, behind the login
        "the /pipeline route",
        LOGIN_WAIT,
        lambda: requests.get(url, allow_redirects=False, timeout=30).is_redirect,
    )
    session = requests.Session()
    log_in_at_dex(session, url, admin)
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)

    sdk = kfp.Client(host=f"http://{address}/pipeline", cookies=cookies, namespace=PROFILE)
    submitted = sdk.create_run_from_pipeline_func(
        gpu_handover,
        arguments={"rows": ROWS},
        experiment_name=EXPERIMENT,
        namespace=PROFILE,
    )
    run_id = submitted.run_id
    logger.info("run %s submitted", run_id)
    run = await asyncio.to_thread(sdk.wait_for_run_completion, run_id, RUN_WAIT, POLL)
    assert run.state == "SUCCEEDED", f"run {run_id} ended {run.state}: {run.error}"

    s3, bucket, prefix = profile_store(PROFILE, model)
    assert prefix.startswith(f"private-artifacts/{PROFILE}/"), prefix
    run_root = f"{prefix.rstrip('/')}/{PIPELINE_NAME}/{run_id}/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=run_root)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    logger.info("the run's objects: %s", keys)
    dataset = [k for k in keys if k.startswith(f"{run_root}{FIRST_TASK}/")]
    model_keys = [k for k in keys if k.startswith(f"{run_root}{SECOND_TASK}/")]
    assert [k.rsplit("/", 1)[1] for k in dataset] == [DATASET_OUTPUT], keys
    assert [k.rsplit("/", 1)[1] for k in model_keys] == [MODEL_OUTPUT], keys
    body = s3.get_object(Bucket=bucket, Key=dataset[0])["Body"].read().decode()
    assert body.splitlines()[0] == "x,y" and len(body.splitlines()) == ROWS + 1
