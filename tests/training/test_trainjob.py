"""A TrainJob built by the Trainer SDK (kubeflow 0.1.0), and the charm's runtimes, on our CRDs."""

from __future__ import annotations

import pytest
from training.sdk_objects import TORCH_RUNTIME, sdk_trainjob

TRAINJOB = "trainjobs.trainer.kubeflow.org"
RUNTIME = "clustertrainingruntimes.trainer.kubeflow.org"
NAMESPACE = "team-a"
# The label the SDK lists runtimes by, and skips those without (kubeflow 0.1.0 wheel,
# kubeflow/trainer/constants/constants.py RUNTIME_FRAMEWORK_LABEL; backends/kubernetes/
# backend.py list_runtimes); torch-distributed's value is `torch` (kubeflow/trainer
# v2.1.0 manifests/base/runtimes/torch_distributed.yaml).
FRAMEWORK_LABEL = "trainer.kubeflow.org/framework"


def train():
    import torch.distributed as dist

    dist.init_process_group()
    print(f"rank {dist.get_rank()} of {dist.get_world_size()}")


def test_the_runtimes_are_accepted_and_listed_by_the_sdk(
    trainer_crds, default_runtimes, aks_runtimes
):
    assert TORCH_RUNTIME in default_runtimes
    assert default_runtimes[TORCH_RUNTIME]["metadata"]["labels"][FRAMEWORK_LABEL] == "torch"
    for runtimes in (default_runtimes, aks_runtimes):
        for name, runtime in runtimes.items():
            assert runtime["kind"] == "ClusterTrainingRuntime", name
            assert trainer_crds[RUNTIME].problems(runtime) == [], name
            assert runtime["metadata"]["labels"].get(FRAMEWORK_LABEL), name


def test_the_sdk_reads_each_runtime(aks_runtimes):
    # TrainerClient.get_runtime on each runtime the charm renders: the SDK finds its
    # trainer (the `node` container of the Job labelled as the trainer step).
    from kubeflow.trainer import TrainerClient
    from kubeflow.trainer.backends.kubernetes.types import KubernetesBackendConfig
    from kubernetes.client import Configuration
    from training.sdk_objects import RecordingCustomObjects

    config = KubernetesBackendConfig(
        namespace=NAMESPACE, client_configuration=Configuration(host="http://127.0.0.1:9")
    )
    client = TrainerClient(backend_config=config)
    client.backend.custom_api = RecordingCustomObjects(aks_runtimes)  # type: ignore[attr-defined]
    for name, runtime in aks_runtimes.items():
        found = client.get_runtime(name)
        assert found.name == name
        assert found.trainer.framework == runtime["metadata"]["labels"][FRAMEWORK_LABEL]


def test_an_sdk_trainjob_on_two_gpu_nodes_is_accepted(trainer_crds, aks_runtimes):
    body = sdk_trainjob(
        aks_runtimes[TORCH_RUNTIME], NAMESPACE, train, num_nodes=2, resources_per_node={"gpu": 1}
    )
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert body["kind"] == "TrainJob"
    trainer = body["spec"]["trainer"]
    assert trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": 1}

    stored = trainer_crds[TRAINJOB].admit(body)

    assert stored["spec"]["runtimeRef"]["name"] == TORCH_RUNTIME
    assert stored["spec"]["trainer"] == trainer  # kept whole: command, nodes, resources
    assert "dist.init_process_group()" in " ".join(trainer["command"])


@pytest.mark.parametrize(
    ("field", "wrong"),
    [("numNodes", "two"), ("command", "torchrun train.py"), ("resourcesPerNode", ["gpu"])],
)
def test_a_trainjob_with_a_wrong_type_is_refused(trainer_crds, aks_runtimes, field, wrong):
    body = sdk_trainjob(aks_runtimes[TORCH_RUNTIME], NAMESPACE, train, num_nodes=2)
    body["spec"]["trainer"][field] = wrong
    problems = trainer_crds[TRAINJOB].problems(body)
    assert any(p.startswith(f"spec.trainer.{field}") for p in problems), problems


def test_a_trainjob_without_a_runtime_is_refused(trainer_crds, aks_runtimes):
    body = sdk_trainjob(aks_runtimes[TORCH_RUNTIME], NAMESPACE, train, num_nodes=2)
    del body["spec"]["runtimeRef"]
    assert trainer_crds[TRAINJOB].problems(body)
