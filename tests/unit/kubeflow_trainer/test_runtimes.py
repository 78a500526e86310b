"""render_runtimes: upstream's runtimes, placed on the pools the raw options name."""

from __future__ import annotations

import json

import pytest
from unit.kubeflow_trainer.helpers import trainer_runtimes as rt

SKU_GPU = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
GPU_POOL = {"kubernetes.azure.com/accelerator": "nvidia"}


def _by_name(options: dict[str, str]) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in rt.render_runtimes(options)}


def _pods(runtime: dict) -> dict[str, dict]:
    jobs = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    return {j["name"]: j["template"]["spec"]["template"]["spec"] for j in jobs}


def test_defaults_are_the_shipped_runtimes_without_placement():
    runtimes = _by_name({})
    assert list(runtimes) == list(rt.SHIPPED)
    for runtime in runtimes.values():
        assert runtime["metadata"]["labels"][rt.FRAMEWORK_LABEL]
        for pod in _pods(runtime).values():
            assert "nodeSelector" not in pod and "tolerations" not in pod
    tune = _pods(runtimes["torchtune-llama3.2-1b"])
    assert set(tune) == {"dataset-initializer", "model-initializer", "node"}
    assert tune["node"]["containers"][0]["resources"]["limits"] == {rt.GPU_RESOURCE: 2}


def test_gpu_placement_goes_to_every_gpu_runtime_and_sets_gpus_on_trainers_only():
    gpu = {"node-selector": GPU_POOL, "tolerations": [SKU_GPU], "gpus-per-node": 4}
    runtimes = _by_name({"gpu-placement": json.dumps(gpu)})
    for name in rt.GPU_RUNTIMES:
        for job, pod in _pods(runtimes[name]).items():
            assert pod["nodeSelector"] == GPU_POOL
            assert pod["tolerations"] == [SKU_GPU]
            limits = pod["containers"][0].get("resources", {}).get("limits", {})
            assert (limits.get(rt.GPU_RESOURCE) == 4) is (job in rt.TRAINER_JOBS), (name, job)


def test_a_runtimes_own_placement_wins_field_by_field():
    options = {
        "runtime-placement": json.dumps(
            {"*": {"node-selector": {"pool": "cpu"}}, "torch-distributed": {"gpus-per-node": 0}}
        ),
        "gpu-placement": json.dumps({"node-selector": GPU_POOL, "gpus-per-node": 1}),
    }
    runtimes = _by_name(options)
    torch = _pods(runtimes["torch-distributed"])["node"]
    assert torch["nodeSelector"] == GPU_POOL
    assert "resources" not in torch["containers"][0]
    tune = _pods(runtimes["torchtune-qwen2.5-1.5b"])["node"]
    assert tune["containers"][0]["resources"]["limits"] == {rt.GPU_RESOURCE: 1}


def test_arm64_runtime_is_a_cpu_torch_runtime_on_arm64_nodes():
    arm = {"tolerations": [{"key": "arch", "operator": "Exists", "effect": "NoSchedule"}]}
    options = {
        "arm64-runtime": json.dumps(arm),
        "gpu-placement": json.dumps({"node-selector": GPU_POOL, "gpus-per-node": 1}),
    }
    runtime = _by_name(options)[rt.ARM64_RUNTIME]
    assert runtime["metadata"]["labels"] == {rt.FRAMEWORK_LABEL: "torch"}
    pod = _pods(runtime)["node"]
    assert pod["nodeSelector"] == {rt.ARCH_LABEL: "arm64"}
    assert pod["tolerations"] == arm["tolerations"]
    assert "resources" not in pod["containers"][0]
    assert pod["containers"][0]["image"] == rt.IMAGE_DEFAULTS["arm64-torch-image"]


def test_yaml_is_accepted_and_images_come_from_options():
    runtimes = _by_name(
        {"arm64-runtime": "node-selector: {pool: arm}", "mlx-image": "registry.local/mlx:1"}
    )
    # A placement that selects nodes is taken as it is: on an autoscaled pool
    # its own label, not the arch label, is what scales it up from empty.
    assert _pods(runtimes[rt.ARM64_RUNTIME])["node"]["nodeSelector"] == {"pool": "arm"}
    assert {
        c["image"] for p in _pods(runtimes["mlx-distributed"]).values() for c in p["containers"]
    } == {"registry.local/mlx:1"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"runtime-placement": "[1, 2]"}, "runtime-placement"),
        ({"gpu-placement": '{"tolerations": [{"operator": "Equal"}]}'}, "gpu-placement"),
        ({"gpu-placement": '{"zone": "a"}'}, "gpu-placement"),
        ({"arm64-runtime": '{"gpus-per-node": true}'}, "arm64-runtime"),
        ({"deepspeed-image": "Not An Image"}, "deepspeed-image"),
    ],
)
def test_a_wrong_option_is_named(options, named):
    with pytest.raises(rt.InvalidOptionError) as error:
        rt.render_runtimes(options)
    assert str(error.value).startswith(f"{named}")


@pytest.mark.parametrize("option", sorted(rt.IMAGE_DEFAULTS))
@pytest.mark.parametrize("value", ["", "Not An Image"])
def test_every_image_option_refuses_what_is_not_an_image(option, value):
    with pytest.raises(rt.InvalidOptionError) as error:
        rt.render_runtimes({option: value})
    assert str(error.value).startswith(option)
