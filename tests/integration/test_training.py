"""Katib and Kubeflow Trainer on a real Juju model (MicroK8s in the GitHub workflow).

It runs after test_bundle.py on the same model and reuses the bundle that
module deployed (it deploys the bundle itself when run alone on an empty
model). In order:

1. katib and kubeflow-trainer are active with their relations;
2. a profile is made for Dex's admin user (the dashboard's create-profile
   action); its namespace is where users' jobs run;
3. an Experiment built with the Katib SDK (kubeflow-katib 0.18.0, see
   tests/training/sdk_objects.py), random search over two parameters and two
   trials, each trial a batch Job printing its loss for Katib's StdOut
   metrics collector, succeeds with both trials succeeded;
4. a TrainJob built with Trainer v2.1.0's API models on the charm's
   torch-distributed runtime, two CPU nodes, completes: each node reads the
   torchrun environment Trainer gives it (PET_NODE_RANK, PET_NNODES,
   PET_MASTER_ADDR, PET_MASTER_PORT) and the nodes meet at the master's
   address, so the JobSet's pods, their DNS names and the trainer port work.

Profile namespaces have Istio sidecar injection on (the dashboard labels them
so); a Job's pod with a sidecar never ends, so the trial's and the TrainJob's
pods opt out with the annotation `sidecar.istio.io/inject: "false"`, as
Katib's own trial templates do (kubeflow/katib v0.18.0 manifests/v1beta1/
components/controller/trial-templates.yaml). The steps use python:3.11-slim,
which test_kfp.py pulls too: no framework image is pulled.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from integration.test_bundle import (
    APPS,
    BUNDLE,
    deploy_bundle,
    leader,
    run_action,
    wait_for,
)
from pytest_operator.plugin import OpsTest

logger = logging.getLogger(__name__)

KATIB = "katib"
TRAINER = "kubeflow-trainer"
PROFILE = "training-user"
# The image every step here pulls, named for the job's image check (tools/check_images.py
# reads this module's string constants).
STEP_IMAGE = "docker.io/library/python:3.11-slim"
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}

# The trial prints its loss in Katib's StdOut format, `name=value` (kubeflow/katib
# v0.18.0 pkg/metricscollector/v1beta1/common/const.go DefaultFilter).
TRIAL_COMMAND = [
    "python3",
    "-c",
    "lr, momentum = ${trialParameters.learningRate}, ${trialParameters.momentum}\n"
    "print(f'loss={1 - lr * momentum:.4f}')",
]
# Each node reads the torchrun environment Trainer v2.1.0 sets (kubeflow/trainer
# v2.1.0 pkg/runtime/framework/plugins/torch/torch.go EnforceMLPolicy); node 0
# listens on the master port, the others connect to the master's address.
NODE_SCRIPT = """
import os, socket, time
rank, nodes = int(os.environ["PET_NODE_RANK"]), int(os.environ["PET_NNODES"])
addr, port = os.environ["PET_MASTER_ADDR"], int(os.environ["PET_MASTER_PORT"])
if rank == 0:
    server = socket.create_server(("", port))
    for _ in range(nodes - 1):
        server.accept()[0].sendall(b"ok")
else:
    for _ in range(150):
        try:
            peer = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            time.sleep(2)
    assert peer.recv(2) == b"ok"
print(f"node {rank} of {nodes} met at {addr}:{port}")
"""

# --- how long each wait may take ---------------------------------------------------
# These add up to 45 minutes (15 + 5 + 15 + 10), on top of test_bundle.py's.
SETTLE_TRAINING = 15 * 60  # katib and kubeflow-trainer, their images pulled
PROFILE_WAIT = 5 * 60  # the profile's namespace
EXPERIMENT_WAIT = 15 * 60  # the suggestion's image, two trials
TRAINJOB_WAIT = 10 * 60  # two nodes meet


def _condition(obj: Any, kind: str) -> bool | None:
    """True/False when the object's status has condition `kind` True/False; None when absent."""
    status = (obj.status or {}) if not isinstance(obj, dict) else obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return None


@pytest.mark.abort_on_fail
async def test_katib_and_trainer_are_deployed_and_active(ops_test: OpsTest):
    assert ops_test.model is not None
    if not ops_test.model.applications:  # run alone: deploy the bundle as test_bundle does
        await deploy_bundle(ops_test)
    for app in (KATIB, TRAINER):
        if app not in ops_test.model.applications:
            pytest.fail(f"{BUNDLE.name} deploys no {app} application")
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=SETTLE_TRAINING
    )


@pytest.mark.abort_on_fail
async def test_a_profile_for_training(ops_test: OpsTest):
    from lightkube import Client
    from lightkube.resources.core_v1 import Namespace

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


async def test_a_random_search_over_two_trials_succeeds(ops_test: OpsTest):
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource
    from training.sdk_objects import (
        JOB_FAILURE_CONDITION,
        JOB_SUCCESS_CONDITION,
        random_search_experiment,
        serialise_katib,
    )

    experiment_kind = create_namespaced_resource(
        "kubeflow.org", "v1beta1", "Experiment", "experiments"
    )
    trial_spec = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": NO_SIDECAR},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "training-container",
                            "image": STEP_IMAGE,
                            "command": TRIAL_COMMAND,
                        }
                    ],
                },
            },
        },
    }
    body = serialise_katib(
        random_search_experiment(
            "random-two-trials",
            PROFILE,
            trial_spec,
            parameters={"lr": ("double", "0.01", "0.05"), "momentum": ("double", "0.5", "0.9")},
            trial_parameters={"learningRate": "lr", "momentum": "momentum"},
            max_trials=2,
            parallel_trials=2,
            success_condition=JOB_SUCCESS_CONDITION,
            failure_condition=JOB_FAILURE_CONDITION,
            primary_container="training-container",
        )
    )
    client = Client(field_manager="integration-test")
    client.create(experiment_kind.from_dict(body))

    def finished():
        experiment = client.get(experiment_kind, body["metadata"]["name"], namespace=PROFILE)
        if _condition(experiment, "Failed"):
            pytest.fail(f"the Experiment failed: {experiment.status}")
        return experiment if _condition(experiment, "Succeeded") else None

    experiment = await wait_for("the Experiment's success", EXPERIMENT_WAIT, finished)
    status = experiment.status or {}
    logger.info("the Experiment ended: %s", status.get("currentOptimalTrial"))
    assert status.get("trialsSucceeded") == 2, status
    optimal = status["currentOptimalTrial"]["observation"]["metrics"]
    assert [m["name"] for m in optimal] == ["loss"]


async def test_a_two_node_cpu_trainjob_completes(ops_test: OpsTest):
    from kubeflow_trainer_api import models
    from lightkube import Client
    from lightkube.generic_resource import create_namespaced_resource
    from training.sdk_objects import TORCH_RUNTIME

    trainjob_kind = create_namespaced_resource(
        "trainer.kubeflow.org", "v1alpha1", "TrainJob", "trainjobs"
    )
    name = "two-cpu-nodes"
    trainjob = models.TrainerV1alpha1TrainJob(
        apiVersion="trainer.kubeflow.org/v1alpha1",
        kind="TrainJob",
        metadata=models.IoK8sApimachineryPkgApisMetaV1ObjectMeta(name=name, namespace=PROFILE),
        spec=models.TrainerV1alpha1TrainJobSpec(
            runtimeRef=models.TrainerV1alpha1RuntimeRef(name=TORCH_RUNTIME),
            trainer=models.TrainerV1alpha1Trainer(
                image=STEP_IMAGE,
                command=["python3", "-c", NODE_SCRIPT],
                numNodes=2,
                resourcesPerNode=models.IoK8sApiCoreV1ResourceRequirements(
                    requests={"cpu": models.IoK8sApimachineryPkgApiResourceQuantity("100m")}
                ),
            ),
            podTemplateOverrides=[
                models.TrainerV1alpha1PodTemplateOverride(
                    targetJobs=[models.TrainerV1alpha1PodTemplateOverrideTargetJob(name="node")],
                    metadata=models.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
                        annotations=NO_SIDECAR
                    ),
                )
            ],
        ),
    ).to_dict()
    client = Client(field_manager="integration-test")
    client.create(trainjob_kind.from_dict(trainjob))

    def finished():
        found = client.get(trainjob_kind, name, namespace=PROFILE)
        if _condition(found, "Failed"):
            pytest.fail(f"the TrainJob failed: {found.status}")
        return found if _condition(found, "Complete") else None

    done = await wait_for("the TrainJob's completion", TRAINJOB_WAIT, finished)
    jobs = {j["name"]: j for j in (done.status or {}).get("jobsStatus") or []}
    assert jobs["node"]["succeeded"] == 2, done.status
