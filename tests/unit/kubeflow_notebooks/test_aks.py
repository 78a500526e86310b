"""The AKS overlay's options: the CPU, GPU and ARM64 pools, as the README gives them.

These are the exact values `bundle/overlays/aks.yaml` sets. They must pass
the charm's config class, reach the form as the web app reads it, be a valid
Kubernetes affinity and tolerations once the web app puts them into a
notebook's pod, and send each notebook to the pool it names and no other.
"""

from __future__ import annotations

import re

import kubernetes_validate
import ops
import pytest
import yaml
from unit.kubeflow_notebooks.helpers import CHARM, settle, spawner, spawner_file, state

CHARM_DIR = CHARM.TEMPLATES.parent.parent
OVERLAY = CHARM_DIR.parents[1] / "bundle" / "overlays" / "aks.yaml"


def _affinity(key: str, name: str, pool: str) -> str:
    return f"""\
- configKey: {key}
  displayName: {name}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - key: kubeflow.org/pool
                operator: In
                values: [{pool}]
"""


AKS_OPTIONS = {
    "gpu-vendors": """\
- limitsKey: nvidia.com/gpu
  uiName: NVIDIA
""",
    "affinity-options": _affinity("aks-cpu-pool", "CPU pool", "cpu")
    + _affinity("aks-gpu-pool", "GPU pool (NVIDIA)", "gpu")
    + _affinity("aks-arm64-pool", "ARM64 pool (arm64 images only)", "arm64"),
    "affinity-default": "aks-cpu-pool",
    "toleration-groups": """\
- groupKey: aks-gpu-pool
  displayName: GPU pool (sku=gpu:NoSchedule)
  tolerations:
    - key: sku
      operator: Equal
      value: gpu
      effect: NoSchedule
- groupKey: aks-arm64-pool
  displayName: ARM64 pool (kubeflow.org/arch=arm64:NoSchedule)
  tolerations:
    - key: kubeflow.org/arch
      operator: Equal
      value: arm64
      effect: NoSchedule
""",
}

# The user pools as tools/aks-up.sh makes them: each node's labels and taints.
POOLS: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {
    "system": (
        {"kubernetes.io/arch": "amd64"},
        [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}],
    ),
    "platform": ({"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "platform"}, []),
    "cpu": ({"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "cpu"}, []),
    "gpu": (
        {"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "gpu"},
        [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
    ),
    # The Azure cluster autoscaler before 1.36.0 labels the template node of a pool at
    # zero nodes kubernetes.io/arch=amd64 whatever its VM size (kubernetes/autoscaler
    # #9322, fixed by commit 03e49d9c in cluster-autoscaler/cloudprovider/azure/
    # azure_template.go); the pool's own labels and taints reach the template (same
    # file, processVMSSTemplate: InputLabels, InputTaints). This is the template it
    # scales up from zero.
    "arm64-at-zero": (
        {"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "arm64"},
        [{"key": "kubeflow.org/arch", "value": "arm64", "effect": "NoSchedule"}],
    ),
}


def _section_overlay(text: str) -> dict:
    return yaml.safe_load(text)["applications"]["kubeflow-notebooks"]["options"]


def _readme_overlay() -> dict:
    readme = (CHARM_DIR / "README.md").read_text()
    section = readme.split("## AKS node pools", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block
    return _section_overlay(block.group(1))


def _form() -> dict:
    config = spawner.NotebooksConfig(**{k.replace("-", "_"): v for k, v in AKS_OPTIONS.items()})
    return spawner.spawner_defaults(config)["spawnerFormDefaults"]


def _fits(affinity: dict | None, tolerations: list[dict], pool: str) -> bool:
    """Whether the scheduler may put a pod with this affinity and these tolerations there."""
    labels, taints = POOLS[pool]
    for taint in taints:
        if not any(
            t["key"] == taint["key"]
            and t["operator"] == "Equal"
            and t["value"] == taint["value"]
            and t.get("effect") in (None, taint["effect"])
            for t in tolerations
        ):
            return False
    if affinity is None:
        return True
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return any(
        all(
            e["operator"] == "In" and labels.get(e["key"]) in e["values"]
            for e in term["matchExpressions"]
        )
        for term in terms["nodeSelectorTerms"]
    )


def test_readme_and_overlay_give_the_same_values():
    assert _readme_overlay() == AKS_OPTIONS
    assert _section_overlay(OVERLAY.read_text()) == AKS_OPTIONS


def test_the_form_starts_on_the_cpu_pool_and_offers_the_gpu_and_arm64_pools():
    form = _form()
    # The web app's form starts with the option whose configKey is `value` (kubeflow/
    # kubeflow v1.10.0, components/crud-web-apps/jupyter/frontend/src/app/pages/form/
    # form-new/utils.ts) and the backend sets the pod's affinity from the option it is
    # sent (backend/apps/common/form.py, set_notebook_affinity).
    affinity = form["affinityConfig"]
    assert affinity["value"] == "aks-cpu-pool"
    assert [o["configKey"] for o in affinity["options"]] == [
        "aks-cpu-pool",
        "aks-gpu-pool",
        "aks-arm64-pool",
    ]
    assert form["tolerationGroup"]["value"] == ""
    groups = [g["groupKey"] for g in form["tolerationGroup"]["options"]]
    assert groups == ["aks-gpu-pool", "aks-arm64-pool"]
    assert form["gpus"]["value"]["vendors"] == [
        {"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"}
    ]
    # No option steers on the architecture label (see POOLS["arm64-at-zero"]).
    assert "kubernetes.io/arch" not in yaml.safe_dump(affinity)


@pytest.mark.parametrize(
    ("affinity_key", "group_key", "pools"),
    [
        ("aks-cpu-pool", None, {"cpu"}),
        ("aks-gpu-pool", "aks-gpu-pool", {"gpu"}),
        ("aks-arm64-pool", "aks-arm64-pool", {"arm64-at-zero"}),
        # The GPU pool's affinity without its tolerations fits nowhere: the pod stays
        # Pending rather than landing on a node without a GPU.
        ("aks-gpu-pool", None, set()),
        ("aks-arm64-pool", "aks-gpu-pool", set()),
        # "None" in the form: any untainted pool, never the system or tainted ones.
        (None, None, {"platform", "cpu"}),
    ],
)
def test_each_choice_fits_only_its_pool(affinity_key, group_key, pools):
    form = _form()
    affinities = {o["configKey"]: o["affinity"] for o in form["affinityConfig"]["options"]}
    groups = {g["groupKey"]: g["tolerations"] for g in form["tolerationGroup"]["options"]}
    affinity = affinities[affinity_key] if affinity_key else None
    tolerations = groups[group_key] if group_key else []
    assert {p for p in POOLS if _fits(affinity, tolerations, p)} == pools


def test_aks_options_make_a_valid_notebook_pod():
    form = _form()
    groups = {g["groupKey"]: g["tolerations"] for g in form["tolerationGroup"]["options"]}
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
                "tolerations": groups.get(option["configKey"], []),
            },
        }
        kubernetes_validate.validate(pod, "1.31", strict=True)


def test_aks_options_settle_active_and_reach_the_web_app(ctx, kube):
    first = ctx.run(ctx.on.config_changed(), state(config=AKS_OPTIONS))
    form = yaml.safe_load(spawner_file(ctx, first))["spawnerFormDefaults"]

    assert settle(ctx, state(config=AKS_OPTIONS)).unit_status == ops.ActiveStatus()
    assert form["affinityConfig"]["value"] == "aks-cpu-pool"
    keys = [o["configKey"] for o in form["affinityConfig"]["options"]]
    assert keys == ["aks-cpu-pool", "aks-gpu-pool", "aks-arm64-pool"]
    assert [g["groupKey"] for g in form["tolerationGroup"]["options"]] == [
        "aks-gpu-pool",
        "aks-arm64-pool",
    ]


def test_a_default_affinity_that_is_not_offered_blocks_and_writes_nothing(ctx, kube):
    config = {**AKS_OPTIONS, "affinity-default": "aks-tpu-pool"}
    out = ctx.run(ctx.on.config_changed(), state(config=config))
    assert out.unit_status == ops.BlockedStatus(
        "invalid config: affinity-default: 'aks-tpu-pool' is not a configKey of affinity-options"
    )
    assert kube.writes == []
    files = out.get_container(CHARM.jupyter_web_app.CONTAINER).get_filesystem(ctx)
    assert not (files / CHARM.jupyter_web_app.CONFIG_FILE.lstrip("/")).exists()
