"""What Trainer v2.1.0 would create from an SDK TrainJob on the AKS overlay's torch runtime.

The JobSet comes from training.jobset_model (a small model of Trainer's
construction; its docstring says what it reads and what it leaves out). The
AKS overlay sends the GPU runtimes to the GPU pool: its node selector (read
from the overlay's kubeflow-trainer options) and the pool's taint toleration
`sku=gpu:NoSchedule` (tools/aks-up.sh taints the pool so; see the overlay's
header) must reach every trainer pod, with the GPU the TrainJob asks for.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml
from training.jobset_model import NODE, NotModelled, trainer_jobset
from training.sdk_objects import TORCH_RUNTIME, sdk_trainjob
from training.test_trainjob import train

JOBSET = "jobsets.jobset.x-k8s.io"
TRAINJOB = "trainjobs.trainer.kubeflow.org"
RUNTIME = "clustertrainingruntimes.trainer.kubeflow.org"
NAMESPACE = "team-a"
KUBERNETES_VERSION = "1.31"
GPU = "nvidia.com/gpu"
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
# The labels that mark AKS's GPU pool: the one AKS sets on NVIDIA nodes, and ours
# (tools/aks-up.sh labels each pool kubeflow.org/pool=<name>). The overlay may use
# either or both; the test takes those it finds in the overlay.
GPU_POOL_LABELS = {"kubernetes.azure.com/accelerator": "nvidia", "kubeflow.org/pool": "gpu"}


def _parsed(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def _gpu_selector_in(value: Any) -> dict[str, str]:
    """Every GPU-pool label selection anywhere in an option's value."""
    value = _parsed(value)
    found: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if GPU_POOL_LABELS.get(key) == item:
                found[key] = item
            else:
                found |= _gpu_selector_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= _gpu_selector_in(item)
    return found


def _pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["template"]["spec"]["template"]["spec"]


def _admitted(trainer_crds, aks_runtimes, **trainer: Any) -> tuple[dict, dict]:
    runtime = trainer_crds[RUNTIME].admit(aks_runtimes[TORCH_RUNTIME])
    trainjob = trainer_crds[TRAINJOB].admit(
        sdk_trainjob(aks_runtimes[TORCH_RUNTIME], NAMESPACE, train, **trainer)
    )
    trainjob["metadata"] |= {"namespace": NAMESPACE, "uid": "0b5e8a52-2c39-4d2e-9b8e-1f2a3b4c5d6e"}
    return trainjob, runtime


def test_the_overlay_sends_the_torch_runtime_to_the_gpu_pool(aks_trainer_options, aks_runtimes):
    selector = _gpu_selector_in(list(aks_trainer_options.values()))
    assert selector, "the AKS overlay selects no GPU pool label for kubeflow-trainer"
    jobs = aks_runtimes[TORCH_RUNTIME]["spec"]["template"]["spec"]["replicatedJobs"]
    [node] = [job for job in jobs if job["name"] == NODE]
    pod = _pod_spec(node)
    assert selector.items() <= (pod.get("nodeSelector") or {}).items()
    assert GPU_TOLERATION in (pod.get("tolerations") or [])


def test_the_jobset_for_two_gpu_nodes_is_accepted_and_lands_on_the_gpu_pool(
    trainer_crds, aks_trainer_options, aks_runtimes
):
    trainjob, runtime = _admitted(
        trainer_crds, aks_runtimes, num_nodes=2, resources_per_node={"gpu": 1}
    )
    jobset = trainer_jobset(trainjob, runtime)

    stored = trainer_crds[JOBSET].admit(jobset)

    [node] = [job for job in stored["spec"]["replicatedJobs"] if job["name"] == NODE]
    assert node["replicas"] == 1
    assert node["template"]["spec"]["parallelism"] == 2
    assert node["template"]["spec"]["completions"] == 2
    pod = _pod_spec(node)
    selector = _gpu_selector_in(list(aks_trainer_options.values()))
    assert selector and selector.items() <= pod["nodeSelector"].items()
    assert GPU_TOLERATION in pod["tolerations"]
    [container] = [c for c in pod["containers"] if c["name"] == NODE]
    assert container["resources"]["limits"][GPU] == 1
    assert container["resources"]["requests"][GPU] == 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PET_NNODES"] == "2"
    assert env["PET_NPROC_PER_NODE"] == "auto"  # a GPU per node: torchrun counts them
    assert (
        env["PET_MASTER_ADDR"]
        == f"{trainjob['metadata']['name']}-node-0-0.{trainjob['metadata']['name']}"
    )
    assert container["command"] == trainjob["spec"]["trainer"]["command"]
    assert stored["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"


def test_each_replicated_job_is_a_valid_kubernetes_job(trainer_crds, aks_runtimes):
    # Our JobSet CRD may keep the Job template open: check it against Kubernetes'
    # own batch/v1 Job schema, strictly, so the pods are what the API server takes.
    trainjob, runtime = _admitted(
        trainer_crds, aks_runtimes, num_nodes=2, resources_per_node={"gpu": 1}
    )
    jobset = trainer_jobset(trainjob, runtime)
    for job in jobset["spec"]["replicatedJobs"]:
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{jobset['metadata']['name']}-{job['name']}-0"}
            | (job["template"].get("metadata") or {}),
            "spec": json.loads(json.dumps(job["template"]["spec"])),
        }
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_a_cpu_trainjob_runs_one_process_per_cpu(trainer_crds, aks_runtimes):
    # torch.go EnforceMLPolicy: `auto` without a GPU is the CPUs per node.
    trainjob, runtime = _admitted(
        trainer_crds, aks_runtimes, num_nodes=2, resources_per_node={"cpu": 2, "memory": "2Gi"}
    )
    jobset = trainer_jobset(trainjob, runtime)
    [node] = [job for job in jobset["spec"]["replicatedJobs"] if job["name"] == NODE]
    [container] = [c for c in _pod_spec(node)["containers"] if c["name"] == NODE]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PET_NPROC_PER_NODE"] == "2"
    assert {"containerPort": 29500} in container["ports"]


def test_a_jobset_with_a_wrong_type_is_refused(trainer_crds, aks_runtimes):
    trainjob, runtime = _admitted(trainer_crds, aks_runtimes, num_nodes=2)
    jobset = trainer_jobset(trainjob, runtime)
    jobset["spec"]["replicatedJobs"][0]["replicas"] = "one"
    problems = trainer_crds[JOBSET].problems(jobset)
    assert any(p.startswith("spec.replicatedJobs.0.replicas") for p in problems), problems


def test_the_model_refuses_what_it_leaves_out(trainer_crds, aks_runtimes):
    trainjob, runtime = _admitted(trainer_crds, aks_runtimes, num_nodes=2)
    trainjob["spec"]["podTemplateOverrides"] = [{"targetJobs": [{"name": NODE}]}]
    with pytest.raises(NotModelled, match="podTemplateOverrides"):
        trainer_jobset(trainjob, runtime)


# --- the model's own rules, each as Trainer v2.1.0 has it ---------------------------------------


def _runtime(**node: Any) -> dict[str, Any]:
    container = {"name": NODE, "image": "pytorch/pytorch"} | node
    return {
        "kind": "ClusterTrainingRuntime",
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": NODE,
                            "template": {
                                "metadata": {
                                    "labels": {
                                        "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"
                                    }
                                },
                                "spec": {"template": {"spec": {"containers": [container]}}},
                            },
                        }
                    ]
                }
            },
        },
    }


def _trainjob(**trainer: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "t", "namespace": NAMESPACE},
        "spec": {"runtimeRef": {"name": "r"}, "trainer": trainer},
    }


def _node(jobset: dict[str, Any]) -> dict[str, Any]:
    [job] = jobset["spec"]["replicatedJobs"]
    [container] = _pod_spec(job)["containers"]
    return container


def test_cpus_per_node_round_up_as_quantity_value_does():
    # torch.go getNumCPUPerNode: int(Quantity.Value()), which rounds 1.5 up to 2.
    jobset = trainer_jobset(_trainjob(resourcesPerNode={"requests": {"cpu": "1.5"}}), _runtime())
    env = {e["name"]: e.get("value") for e in _node(jobset)["env"]}
    assert env["PET_NPROC_PER_NODE"] == "2"


def test_the_trainer_port_replaces_an_unnamed_port():
    # apply.go byContainerPortOrName: ptr.Equal(nil, nil) is true, so two unnamed ports match.
    jobset = trainer_jobset(_trainjob(), _runtime(ports=[{"containerPort": 8080}]))
    assert _node(jobset)["ports"] == [{"containerPort": 29500}]
    named = trainer_jobset(_trainjob(), _runtime(ports=[{"name": "http", "containerPort": 8080}]))
    assert _node(named)["ports"] == [
        {"name": "http", "containerPort": 8080},
        {"containerPort": 29500},
    ]


def test_an_empty_trainer_still_gets_the_torch_environment():
    # torch.go: a non-nil `trainer`, even empty, gets the PET_ variables.
    jobset = trainer_jobset(_trainjob(), _runtime())
    assert {"PET_NNODES", "PET_MASTER_ADDR"} <= {e["name"] for e in _node(jobset)["env"]}


def test_the_trainjobs_num_nodes_is_taken_as_given_and_suspend_only_when_set():
    runtime = _runtime()
    runtime["spec"]["template"]["spec"]["suspend"] = True
    jobset = trainer_jobset(_trainjob(numNodes=0), runtime)
    [job] = jobset["spec"]["replicatedJobs"]
    assert job["template"]["spec"]["parallelism"] == 0  # no floor on the TrainJob's value
    assert "suspend" not in jobset["spec"]  # builder.go Suspend: the TrainJob's, here unset


def test_the_model_refuses_a_torchtune_trainjob():
    with pytest.raises(NotModelled, match="torchtune"):
        trainer_jobset(_trainjob(command=["tune", "run"]), _runtime())
