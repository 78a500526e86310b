"""The AKS overlay's options: the GPU pool and the ARM64 pool, as the README gives them.

These are the exact values `bundle/overlays/aks.yaml` sets. They must pass
the charm's config class, reach the form as the web app reads it, and be a
valid Kubernetes affinity and tolerations once the web app puts them into a
notebook's pod.
"""

from __future__ import annotations

import re

import kubernetes_validate
import ops
import yaml
from unit.kubeflow_notebooks.helpers import CHARM, settle, spawner, spawner_file, state

AKS_OPTIONS = {
    "gpu-vendors": """\
- limitsKey: nvidia.com/gpu
  uiName: NVIDIA
""",
    "affinity-options": """\
- configKey: aks-gpu-pool
  displayName: GPU pool (NVIDIA)
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: kubernetes.azure.com/accelerator
                operator: In
                values: [nvidia]
- configKey: aks-arm64-pool
  displayName: ARM64 pool
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: kubernetes.io/arch
                operator: In
                values: [arm64]
""",
    "toleration-groups": """\
- groupKey: aks-gpu-pool
  displayName: GPU pool (sku=gpu:NoSchedule)
  tolerations:
    - key: sku
      operator: Equal
      value: gpu
      effect: NoSchedule
""",
}


def _readme_overlay() -> dict:
    readme = (CHARM.TEMPLATES.parent.parent / "README.md").read_text()
    section = readme.split("## AKS node pools", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    return yaml.safe_load(block.group(1))


def test_readme_gives_the_same_values():
    options = _readme_overlay()["applications"]["kubeflow-notebooks"]["options"]
    assert options == AKS_OPTIONS


def test_aks_options_pass_the_config_class():
    config = spawner.NotebooksConfig(**{k.replace("-", "_"): v for k, v in AKS_OPTIONS.items()})
    form = spawner.spawner_defaults(config)["spawnerFormDefaults"]

    gpu, arm = form["affinityConfig"]["options"]
    assert gpu["configKey"] == "aks-gpu-pool"
    term = gpu["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.azure.com/accelerator", "operator": "In", "values": ["nvidia"]}
    ]
    term = arm["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}
    ]
    (group,) = form["tolerationGroup"]["options"]
    assert group["tolerations"] == [
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    ]
    assert form["gpus"]["value"]["vendors"] == [
        {"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"}
    ]


def test_aks_options_make_a_valid_notebook_pod():
    config = spawner.NotebooksConfig(**{k.replace("-", "_"): v for k, v in AKS_OPTIONS.items()})
    form = spawner.spawner_defaults(config)["spawnerFormDefaults"]
    (group,) = form["tolerationGroup"]["options"]
    for option in form["affinityConfig"]["options"]:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nb"},
            "spec": {
                "containers": [
                    {
                        "name": "nb",
                        "image": form["image"]["value"],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    }
                ],
                "affinity": option["affinity"],
                "tolerations": group["tolerations"],
            },
        }
        kubernetes_validate.validate(pod, "1.31", strict=True)


def test_aks_options_settle_active_and_reach_the_web_app(ctx, kube):
    first = ctx.run(ctx.on.config_changed(), state(config=AKS_OPTIONS))
    form = yaml.safe_load(spawner_file(ctx, first))["spawnerFormDefaults"]

    assert settle(ctx, state(config=AKS_OPTIONS)).unit_status == ops.ActiveStatus()
    keys = [o["configKey"] for o in form["affinityConfig"]["options"]]
    assert keys == ["aks-gpu-pool", "aks-arm64-pool"]
    assert [g["groupKey"] for g in form["tolerationGroup"]["options"]] == ["aks-gpu-pool"]
