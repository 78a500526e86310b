"""KServe's Serverless mode on Knative Serving, on a real Juju model (MicroK8s in the workflow).

It runs after test_bundle.py (and test_serving.py) on the same model and
reuses the bundle that module deployed (it deploys the bundle itself when run
alone on an empty model). In order:

1. knative-serving and kserve are active and related; knative-serving's
   scale-to-zero grace period and stable window are shortened for the test;
2. a profile is made for Dex's admin user;
3. a Serverless InferenceService with `minReplicas: 0` (a small custom
   predictor that answers which version it is, so no model download) answers
   through the gateway, behind the login;
4. idle for the grace period and the stable window, its pods go away (scale
   to zero), and the next request is answered again (the activator holds it
   while a pod starts);
5. a new version with `canaryTrafficPercent: 20` takes about a fifth of the
   requests, the previous version the rest.
"""

from __future__ import annotations

import logging
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

KNATIVE = "knative-serving"
KSERVE = "kserve"
PROFILE = "serverless-user"
ISVC = "versions"
# The image this module's pods pull, named for the job's image check
# (tools/check_images.py reads this module's string constants).
PREDICTOR_IMAGE = "docker.io/library/python:3.11-slim"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}
REQUESTS = 100  # canary share: 20 % of them expected, accepted from 8 to 35
# A predictor that answers KServe's v1 protocol with its own version (the
# VERSION environment variable) and Knative's probes on the same port.
PREDICTOR = """
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
VERSION = os.environ["VERSION"]
class Handler(BaseHTTPRequestHandler):
    def _answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._answer({"name": "versions", "ready": True})
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer({"predictions": [VERSION]})
    def log_message(self, *args):
        pass
HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""

# --- how long each wait may take ---------------------------------------------------
# These add up to 29 minutes (10 + 3 + 6 + 4 + 6) after earlier modules, or 49 with
# the bundle's own first settle (test_bundle.SETTLE_BUNDLE) when this module deploys it.
SETTLE = 10 * 60  # knative-serving and kserve, their images pulled, related
PROFILE_WAIT = 3 * 60  # the profile's namespace
READY_WAIT = 6 * 60  # the predictor image pulled, the revision ready, the route served
SCALE_DOWN_WAIT = 4 * 60  # grace period 30 s + stable window 10 s, and Kubernetes' part
CANARY_WAIT = 6 * 60  # the canary revision ready and routed


def _ready(obj: Any) -> bool:
    status = obj.get("status") or {}
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _isvc(version: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": ISVC,
            "namespace": PROFILE,
            "annotations": {"serving.kserve.io/deploymentMode": "Serverless", **NO_SIDECAR},
        },
        "spec": {
            "predictor": {
                "minReplicas": 0,
                **predictor,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": PREDICTOR_IMAGE,
                        "command": ["python3", "-c", PREDICTOR],
                        "env": [{"name": "VERSION", "value": version}],
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    }
                ],
            }
        },
    }


@pytest.mark.abort_on_fail
async def test_knative_serving_and_kserve_are_active_and_related(ops_test: OpsTest):
    assert ops_test.model is not None
    settle = SETTLE
    if not ops_test.model.applications:  # run alone: deploy the bundle as test_bundle does
        await deploy_bundle(ops_test)
        settle = SETTLE_BUNDLE
    for app in (KNATIVE, KSERVE):
        if app not in ops_test.model.applications:
            pytest.fail(f"{BUNDLE.name} deploys no {app} application")
    await ops_test.model.applications[KNATIVE].set_config(
        {"scale-to-zero-grace-period": "30s", "stable-window": "10s"}
    )
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=settle
    )
    from lightkube import Client
    from lightkube.resources.core_v1 import ConfigMap

    config = Client().get(ConfigMap, "inferenceservice-config", namespace=ops_test.model.name)
    assert '"Serverless"' in (config.data or {}).get("deploy", ""), config.data


@pytest.mark.abort_on_fail
async def test_a_serverless_model_scales_to_zero_and_back_and_takes_a_canary(
    ops_test: OpsTest,
):
    import requests
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.core_v1 import Namespace, Pod

    assert ops_test.model is not None
    admin = await run_action(ops_test, await leader(ops_test, "dex"), "get-admin-password")
    await run_action(
        ops_test,
        await leader(ops_test, "kubeflow-dashboard"),
        "create-profile",
        name=PROFILE,
        owner=admin["email"],
    )
    client = Client(field_manager="integration-test")
    await wait_for("the profile namespace", PROFILE_WAIT, lambda: client.get(Namespace, PROFILE))

    isvc_kind = create_namespaced_resource(
        "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
    )
    client.create(isvc_kind.from_dict(_isvc("stable")))

    def ready() -> dict | None:
        found = client.get(isvc_kind, ISVC, namespace=PROFILE).to_dict()
        return found if _ready(found) else None

    isvc = await wait_for("the InferenceService's readiness", READY_WAIT, ready)
    url = isvc["status"]["url"]
    host = url.split("://", 1)[-1].split("/")[0]
    assert host.startswith(f"{ISVC}.{PROFILE}."), url

    address = gateway_address(ops_test.model.name)
    predict = f"http://{address}/v1/models/{ISVC}:predict"
    payload = {"instances": [[1.0]]}
    refused = requests.post(
        predict, json=payload, headers={"Host": host}, allow_redirects=False, timeout=30
    )
    assert refused.status_code in (302, 401, 403), refused.status_code

    session = requests.Session()
    log_in_at_dex(session, f"http://{address}/", admin)
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)

    def answer() -> str | None:
        r = requests.post(
            predict, json=payload, headers={"Host": host, "Cookie": cookies}, timeout=60
        )
        return r.json()["predictions"][0] if r.status_code == 200 else None

    assert await wait_for("a first answer", READY_WAIT, answer) == "stable"

    # Idle: the pods go after the grace period and the stable window.
    selector = {"serving.kserve.io/inferenceservice": ISVC}

    def no_pods() -> bool:
        return not list(client.list(Pod, namespace=PROFILE, labels=selector))

    await wait_for("scale to zero", SCALE_DOWN_WAIT, no_pods)
    # The next request wakes it: the activator holds it while a pod starts.
    assert answer() == "stable"

    # A canary takes its share once the first version has rolled out.
    client.apply(
        isvc_kind.from_dict(_isvc("canary", canaryTrafficPercent=20)),
        field_manager="integration-test",
        force=True,
    )

    def canary_routed() -> dict | None:
        found = client.get(isvc_kind, ISVC, namespace=PROFILE).to_dict()
        traffic = ((found.get("status") or {}).get("components") or {}).get("predictor", {})
        split = {t.get("percent") for t in traffic.get("traffic") or []}
        return found if _ready(found) and split == {20, 80} else None

    await wait_for("the canary's 20/80 split", CANARY_WAIT, canary_routed)
    answers = [answer() for _ in range(REQUESTS)]
    canary = answers.count("canary")
    logger.info("canary answered %d of %d", canary, REQUESTS)
    assert answers.count("stable") + canary == REQUESTS, answers
    assert 8 <= canary <= 35, f"the canary took {canary} of {REQUESTS} requests"
