"""The katib charm's config: placement of the default trial templates; bad values block."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
import yaml
from unit.katib.helpers import MODEL, state
from unit.katib.helpers import workloads as wl

GPU_SELECTOR = {"kubernetes.azure.com/accelerator": "nvidia"}
GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


def _templates(kube) -> dict[str, dict]:
    data = kube.get("ConfigMap", "trial-templates", MODEL)["data"]
    return {key: yaml.safe_load(text) for key, text in data.items()}


def _pod(template: dict) -> dict:
    return template["spec"]["template"]["spec"]


def test_by_default_the_templates_are_upstreams_and_carry_no_placement(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())
    templates = _templates(kube)
    assert set(templates) == {
        "defaultTrialTemplate.yaml",
        "enasCPUTemplate",
        "pytorchJobTemplate",
        "gpuTrialTemplate",
    }
    for key in ("defaultTrialTemplate.yaml", "enasCPUTemplate", "gpuTrialTemplate"):
        assert "nodeSelector" not in _pod(templates[key])
        assert "tolerations" not in _pod(templates[key])
    gpu = _pod(templates["gpuTrialTemplate"])["containers"][0]
    assert gpu["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert gpu["image"] == "ghcr.io/kubeflow/katib/pytorch-mnist-gpu:v0.18.0"


def test_gpu_and_cpu_placement_go_into_their_templates(ctx, kube):
    config = {
        "trial-node-selector": json.dumps({"kubernetes.io/arch": "arm64"}),
        "gpu-trial-node-selector": json.dumps(GPU_SELECTOR),
        "gpu-trial-tolerations": json.dumps([GPU_TOLERATION]),
        "gpus-per-trial": 2,
    }
    ctx.run(ctx.on.config_changed(), state(config=config))
    templates = _templates(kube)
    gpu = _pod(templates["gpuTrialTemplate"])
    assert gpu["nodeSelector"] == GPU_SELECTOR and gpu["tolerations"] == [GPU_TOLERATION]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    cpu = _pod(templates["defaultTrialTemplate.yaml"])
    assert cpu["nodeSelector"] == {"kubernetes.io/arch": "arm64"} and "tolerations" not in cpu
    for replica in templates["pytorchJobTemplate"]["spec"]["pytorchReplicaSpecs"].values():
        assert replica["template"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": "arm64"}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("trial-node-selector", "[1]", "trial-node-selector: must be a JSON object"),
        ("gpu-trial-node-selector", '{"a b": "x"}', "gpu-trial-node-selector: 'a b' is not"),
        ("trial-tolerations", "{}", "trial-tolerations: must be a JSON list"),
        (
            "gpu-trial-tolerations",
            '[{"key": "sku", "operator": "Sometimes"}]',
            "gpu-trial-tolerations: item 0.operator",
        ),
        ("gpus-per-trial", 0, "gpus-per-trial: must be between 1 and 16"),
    ],
)
def test_a_bad_value_blocks_naming_the_option_and_changes_nothing(
    ctx, kube, option, value, message
):
    settled = ctx.run(ctx.on.config_changed(), state())
    writes = list(kube.writes)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config={option: value}))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(message)
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert out.get_container(c).layers == settled.get_container(c).layers
    assert out.relations == settled.relations
