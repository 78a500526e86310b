"""Katib Experiments and TrainJobs built with the upstream Python SDKs, as users' tools build them.

- Katib: kubeflow-katib 0.18.0 (Katib v0.18.0's SDK: kubeflow/katib v0.18.0
  sdk/python/v1beta1/setup.py). Its models (V1beta1Experiment, ...) are
  serialised with the SDK's own ApiClient.sanitize_for_serialization, the
  camelCase body KatibClient.create_experiment hands the Kubernetes client.
- Trainer: `kubeflow` 0.1.0 (kubeflow.trainer.TrainerClient) with
  kubeflow-trainer-api 2.1.0 (Trainer v2.1.0's models). The TrainJob is the
  one TrainerClient.train() makes: the client runs for real, with the
  Kubernetes API replaced by a recorder that answers get_runtime with the
  runtime given and keeps the body train() creates (kubeflow 0.1.0 wheel,
  kubeflow/trainer/backends/kubernetes/backend.py KubernetesBackend.train:
  `custom_api.create_namespaced_custom_object(..., train_job.to_dict())`).
  No cluster is contacted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

# What Katib v0.18 needs an Experiment with a TrainJob trial to say itself: v0.18
# defaults these for Job and the v1 training kinds only, and its validator refuses
# empty conditions (kubeflow/katib v0.18.0 pkg/webhook/v1beta1/experiment/validator/
# validator.go, pkg/apis/controller/experiments/v1beta1/experiment_defaults.go). The
# values are v0.19's defaults for TrainJob (kubeflow/katib v0.19.0
# pkg/apis/controller/experiments/v1beta1/constants.go DefaultTrainJobSuccessCondition,
# DefaultTrainJobFailureCondition, DefaultTrainJobPrimaryPodLabels), and the primary
# container is the trainer's `node` (kubeflow/katib v0.19.0 examples/v1beta1/
# kubeflow-trainer/trainjob-pytorch.yaml; kubeflow/trainer v2.1.0
# pkg/constants/constants.go Node).
TRAINJOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
TRAINJOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRAINJOB_PRIMARY_POD_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}
TRAINJOB_PRIMARY_CONTAINER = "node"
# A batch Job trial's conditions are v0.18's defaults for Job (kubeflow/katib v0.18.0
# pkg/apis/controller/experiments/v1beta1/constants.go DefaultJobSuccessCondition,
# DefaultJobFailureCondition); the Experiment names them anyway, so it reads alone.
JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'

TORCH_RUNTIME = "torch-distributed"  # kubeflow/trainer v2.1.0 manifests/base/runtimes/


def serialise_katib(model: Any) -> dict[str, Any]:
    """A Katib SDK model as the body the SDK sends (its ApiClient's own serialisation)."""
    from kubeflow.katib import ApiClient

    return ApiClient().sanitize_for_serialization(model)


def random_search_experiment(
    name: str,
    namespace: str,
    trial_spec: Mapping[str, Any],
    *,
    parameters: Mapping[str, tuple[str, str, str]],
    trial_parameters: Mapping[str, str],
    max_trials: int,
    parallel_trials: int,
    success_condition: str,
    failure_condition: str,
    primary_container: str | None = None,
    primary_pod_labels: Mapping[str, str] | None = None,
    objective_metric: str = "loss",
) -> Any:
    """A random-search Experiment (Katib SDK models) minimising `objective_metric`.

    `parameters` maps a search parameter to (type, min, max); `trial_parameters`
    maps a placeholder name used in `trial_spec` (`${trialParameters.<name>}`)
    to the search parameter it takes.
    """
    from kubeflow.katib import (
        V1beta1AlgorithmSpec,
        V1beta1Experiment,
        V1beta1ExperimentSpec,
        V1beta1FeasibleSpace,
        V1beta1ObjectiveSpec,
        V1beta1ParameterSpec,
        V1beta1TrialParameterSpec,
        V1beta1TrialTemplate,
    )
    from kubernetes.client import V1ObjectMeta

    return V1beta1Experiment(
        api_version="kubeflow.org/v1beta1",
        kind="Experiment",
        metadata=V1ObjectMeta(name=name, namespace=namespace),
        spec=V1beta1ExperimentSpec(
            max_trial_count=max_trials,
            parallel_trial_count=parallel_trials,
            max_failed_trial_count=1,
            algorithm=V1beta1AlgorithmSpec(algorithm_name="random"),
            objective=V1beta1ObjectiveSpec(
                type="minimize", goal=0.001, objective_metric_name=objective_metric
            ),
            parameters=[
                V1beta1ParameterSpec(
                    name=param,
                    parameter_type=kind,
                    feasible_space=V1beta1FeasibleSpace(min=low, max=high),
                )
                for param, (kind, low, high) in parameters.items()
            ],
            trial_template=V1beta1TrialTemplate(
                primary_container_name=primary_container,
                primary_pod_labels=dict(primary_pod_labels) if primary_pod_labels else None,
                success_condition=success_condition,
                failure_condition=failure_condition,
                trial_parameters=[
                    V1beta1TrialParameterSpec(
                        name=placeholder,
                        description=f"{reference} of this trial",
                        reference=reference,
                    )
                    for placeholder, reference in trial_parameters.items()
                ],
                trial_spec=dict(trial_spec),
            ),
        ),
    )


def trainjob_trial_spec(
    *, runtime: str, image: str, command: list[str], num_nodes: int
) -> dict[str, Any]:
    """A TrainJob for a trial's `trialSpec`, built with Trainer v2.1.0's API models."""
    from kubeflow_trainer_api import models

    trainjob = models.TrainerV1alpha1TrainJob(
        apiVersion="trainer.kubeflow.org/v1alpha1",
        kind="TrainJob",
        spec=models.TrainerV1alpha1TrainJobSpec(
            runtimeRef=models.TrainerV1alpha1RuntimeRef(name=runtime),
            trainer=models.TrainerV1alpha1Trainer(
                image=image, command=command, numNodes=num_nodes
            ),
        ),
    )
    return trainjob.to_dict()


class _Thread:
    """What `async_req=True` returns: `.get(timeout)` gives the answer."""

    def __init__(self, answer: Any):
        self._answer = answer

    def get(self, timeout: Any = None) -> Any:
        return copy.deepcopy(self._answer)


class RecordingCustomObjects:
    """Stands in for kubernetes.client.CustomObjectsApi: serves runtimes, records creations."""

    def __init__(self, runtimes: Mapping[str, Mapping[str, Any]]):
        self.runtimes = runtimes
        self.created: list[tuple[str, str, str, str, dict[str, Any]]] = []

    def get_cluster_custom_object(self, group, version, plural, name, async_req=False):
        assert (group, version, plural) == (
            "trainer.kubeflow.org",
            "v1alpha1",
            "clustertrainingruntimes",
        ), (group, version, plural)
        answer = self.runtimes[name]
        return _Thread(answer) if async_req else copy.deepcopy(answer)

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **_):
        self.created.append((group, version, namespace, plural, copy.deepcopy(body)))
        return body


def sdk_trainjob(
    runtime: Mapping[str, Any],
    namespace: str,
    func: Callable[..., Any],
    *,
    num_nodes: int,
    resources_per_node: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The TrainJob TrainerClient.train() creates for `func` on `runtime`, as it sends it."""
    from kubeflow.trainer import CustomTrainer, TrainerClient
    from kubeflow.trainer.backends.kubernetes.types import KubernetesBackendConfig
    from kubernetes.client import Configuration

    # With a client configuration given, no kubeconfig is read; nothing is called.
    config = KubernetesBackendConfig(
        namespace=namespace, client_configuration=Configuration(host="http://127.0.0.1:9")
    )
    client = TrainerClient(backend_config=config)
    recorder = RecordingCustomObjects({runtime["metadata"]["name"]: runtime})
    client.backend.custom_api = recorder  # type: ignore[attr-defined]
    sdk_runtime = client.get_runtime(runtime["metadata"]["name"])
    name = client.train(
        runtime=sdk_runtime,
        trainer=CustomTrainer(
            func=func,
            num_nodes=num_nodes,
            resources_per_node=dict(resources_per_node) if resources_per_node else None,
            env=dict(env) if env else None,
        ),
    )
    [(group, version, created_in, plural, body)] = recorder.created
    assert (group, version, created_in, plural) == (
        "trainer.kubeflow.org",
        "v1alpha1",
        namespace,
        "trainjobs",
    )
    assert body["metadata"]["name"] == name
    return body
