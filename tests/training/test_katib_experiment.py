"""A Katib Experiment built with the Katib SDK (kubeflow-katib 0.18.0) against our Experiment CRD.

Random search over two parameters, three trials, each trial a TrainJob on
the torch-distributed runtime (built with Trainer v2.1.0's API models), with
the conditions, primary pod labels and primary container Katib v0.18 needs
an Experiment to give for a TrainJob trial (see training.sdk_objects).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from training.sdk_objects import (
    TORCH_RUNTIME,
    TRAINJOB_FAILURE_CONDITION,
    TRAINJOB_PRIMARY_CONTAINER,
    TRAINJOB_PRIMARY_POD_LABELS,
    TRAINJOB_SUCCESS_CONDITION,
    random_search_experiment,
    serialise_katib,
    trainjob_trial_spec,
)

EXPERIMENT = "experiments.kubeflow.org"
TRAINJOB = "trainjobs.trainer.kubeflow.org"
NAMESPACE = "team-a"
# As kubeflow/katib v0.19.0 examples/v1beta1/kubeflow-trainer/trainjob-pytorch.yaml:
# two double parameters, handed to the trainer's command through trial parameters.
PARAMETERS = {"lr": ("double", "0.01", "0.05"), "momentum": ("double", "0.5", "0.9")}
TRIAL_PARAMETERS = {"learningRate": "lr", "momentum": "momentum"}
COMMAND = [
    "python3",
    "/opt/train.py",
    "--lr=${trialParameters.learningRate}",
    "--momentum=${trialParameters.momentum}",
]


def _experiment() -> dict[str, Any]:
    trial = trainjob_trial_spec(
        runtime=TORCH_RUNTIME,
        image="docker.io/library/python:3.11-slim",
        command=COMMAND,
        num_nodes=2,
    )
    model = random_search_experiment(
        "tune-torch",
        NAMESPACE,
        trial,
        parameters=PARAMETERS,
        trial_parameters=TRIAL_PARAMETERS,
        max_trials=3,
        parallel_trials=3,
        success_condition=TRAINJOB_SUCCESS_CONDITION,
        failure_condition=TRAINJOB_FAILURE_CONDITION,
        primary_container=TRAINJOB_PRIMARY_CONTAINER,
        primary_pod_labels=TRAINJOB_PRIMARY_POD_LABELS,
    )
    return serialise_katib(model)


def _kept(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where something the client sent is not in what the API server stores."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path]
        return [p for k, v in sent.items() for p in _kept(v, stored.get(k), f"{path}.{k}")]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [path]
        return [p for i, v in enumerate(sent) for p in _kept(v, stored[i], f"{path}[{i}]")]
    return [] if sent == stored else [path]


def test_the_sdk_body_is_what_create_experiment_sends():
    # KatibClient.create_experiment hands the model to the Kubernetes client, which
    # serialises it with its own ApiClient (kubeflow-katib 0.18.0 wheel,
    # kubeflow/katib/api/katib_client.py create_experiment): the same body.
    from kubernetes.client import ApiClient

    body = _experiment()
    model = random_search_experiment(
        "tune-torch",
        NAMESPACE,
        body["spec"]["trialTemplate"]["trialSpec"],
        parameters=PARAMETERS,
        trial_parameters=TRIAL_PARAMETERS,
        max_trials=3,
        parallel_trials=3,
        success_condition=TRAINJOB_SUCCESS_CONDITION,
        failure_condition=TRAINJOB_FAILURE_CONDITION,
        primary_container=TRAINJOB_PRIMARY_CONTAINER,
        primary_pod_labels=TRAINJOB_PRIMARY_POD_LABELS,
    )
    assert ApiClient().sanitize_for_serialization(model) == body


def test_an_sdk_experiment_with_a_trainjob_trial_is_accepted_whole(katib_crds):
    body = _experiment()
    spec = body["spec"]
    assert spec["algorithm"] == {"algorithmName": "random"}
    assert [p["name"] for p in spec["parameters"]] == ["lr", "momentum"]
    assert spec["maxTrialCount"] == 3
    template = spec["trialTemplate"]
    assert template["trialSpec"]["kind"] == "TrainJob"
    assert template["primaryContainerName"] == "node"

    stored = katib_crds[EXPERIMENT].admit(body)

    assert _kept(body, stored) == []  # nothing the SDK wrote is pruned
    kept = stored["spec"]["trialTemplate"]
    assert kept["successCondition"] == TRAINJOB_SUCCESS_CONDITION
    assert kept["failureCondition"] == TRAINJOB_FAILURE_CONDITION
    assert kept["primaryPodLabels"] == TRAINJOB_PRIMARY_POD_LABELS


def test_each_trial_is_a_trainjob_our_trainjob_crd_accepts(trainer_crds):
    # What Katib creates per trial: the trialSpec, placeholders filled in, named
    # after the trial, in the Experiment's namespace.
    template = _experiment()["spec"]["trialTemplate"]
    trial = copy.deepcopy(template["trialSpec"])
    trial["metadata"] = {"name": "tune-torch-abcd1234", "namespace": NAMESPACE}
    trial["spec"]["trainer"]["command"] = [
        arg.replace("${trialParameters.learningRate}", "0.031").replace(
            "${trialParameters.momentum}", "0.72"
        )
        for arg in trial["spec"]["trainer"]["command"]
    ]
    stored = trainer_crds[TRAINJOB].admit(trial)
    assert stored["spec"]["runtimeRef"]["name"] == TORCH_RUNTIME
    assert stored["spec"]["trainer"]["numNodes"] == 2
    assert stored["spec"]["trainer"]["command"][2:] == ["--lr=0.031", "--momentum=0.72"]


@pytest.mark.parametrize(
    ("field", "wrong"),
    [("maxTrialCount", "three"), ("parallelTrialCount", 1.5), ("parameters", {"lr": "double"})],
)
def test_an_experiment_with_a_wrong_type_is_refused(katib_crds, field: str, wrong: Any):
    body = _experiment()
    body["spec"][field] = wrong
    problems = katib_crds[EXPERIMENT].problems(body)
    assert problems
    assert any(p.startswith(f"spec.{field}") for p in problems), problems
