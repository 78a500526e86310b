"""Every config option, valid and invalid, and the spawner form the web app reads."""

from __future__ import annotations

import dataclasses

import ops
import pytest
import yaml
from unit.kubeflow_notebooks.helpers import CHARM, settle, spawner, spawner_file, state, web_app

VALID = [
    ("jupyter-images", "- registry.example.com/jupyter:1\n- jupyter/other:2\n"),
    ("vscode-images", "[codeserver:latest]"),
    ("rstudio-images", "- ghcr.io/org/rstudio@sha256:abc123\n"),
    ("workspace-volume-size", "20Gi"),
    ("storage-class", "managed-csi-premium"),
    ("storage-class", ""),
    ("cpu-default", "500m"),
    ("cpu-default", "2"),
    ("cpu-limit-factor", "none"),
    ("cpu-limit-factor", "2"),
    ("memory-default", "512Mi"),
    ("memory-limit-factor", "1.0"),
    ("gpu-vendors", "- {limitsKey: nvidia.com/gpu, uiName: NVIDIA}\n"),
    ("gpu-vendors", "[]"),
    ("gpu-default-count", 1),
    ("gpu-default-count", 8),
    ("affinity-options", "- {configKey: a, displayName: A, affinity: {nodeAffinity: {}}}\n"),
    ("affinity-default", ""),
    (
        "toleration-groups",
        "- {groupKey: g, displayName: G, tolerations: [{key: k, operator: Exists}]}\n",
    ),
    ("culling-idle-minutes", 0),
    ("culling-idle-minutes", 1440),
]

INVALID = [
    ("jupyter-images", "[]", "must list at least one image"),
    ("jupyter-images", "just-a-string", "must be a YAML list"),
    ("jupyter-images", "[a, a]", "lists an image twice"),
    ("vscode-images", "- 'Not An Image'\n", "is not an image reference"),
    ("rstudio-images", "{a: 1}", "must be a YAML list"),
    ("workspace-volume-size", "five", "positive Kubernetes quantity"),
    ("workspace-volume-size", "0Gi", "positive Kubernetes quantity"),
    ("workspace-volume-size", "500m", "quantity of bytes"),
    ("storage-class", "Not_A_Class", "StorageClass name"),
    ("cpu-default", "-1", "positive Kubernetes quantity"),
    ("cpu-limit-factor", "0.5", "at least 1"),
    ("cpu-limit-factor", "lots", "at least 1"),
    ("memory-default", "1GB", "positive Kubernetes quantity"),
    ("memory-limit-factor", "0", "at least 1"),
    ("gpu-vendors", "- {limitsKey: gpu, uiName: X}\n", "item 0.limitsKey"),
    ("gpu-vendors", "- {limitsKey: a.io/gpu}\n", "item 0.uiName"),
    (
        "gpu-vendors",
        "- {limitsKey: a.io/g, uiName: A}\n- {limitsKey: a.io/g, uiName: B}\n",
        "same",
    ),
    ("gpu-default-count", 3, "0 (none), 1, 2, 4 or 8"),
    ("affinity-options", "- {configKey: a, displayName: A}\n", "affinity"),
    ("affinity-options", "- {configKey: a, displayName: A, affinity: {nodes: {}}}\n", "nodes"),
    ("affinity-options", "[1]", "item 0"),
    # Names no option: affinity-options is empty.
    ("affinity-default", "a", "'a' is not a configKey of affinity-options"),
    ("toleration-groups", "- {groupKey: g, displayName: G, tolerations: []}\n", "tolerations"),
    (
        "toleration-groups",
        "- {groupKey: g, displayName: G, tolerations: [{key: k, operator: Maybe}]}\n",
        "operator",
    ),
    (
        "toleration-groups",
        "- {groupKey: g, displayName: G, tolerations: [{key: k, operator: Exists, value: v}]}\n",
        "an Exists toleration has no value",
    ),
    (
        "toleration-groups",
        "- {groupKey: g, displayName: G, tolerations: [{key: k, effect: Sometimes}]}\n",
        "effect",
    ),
    ("culling-idle-minutes", -1, "0 (off)"),
]


# Values the earlier checks let through: a factor that is not a finite number, a
# quantity past what Kubernetes holds and a toleration Kubernetes would refuse or
# read as "evict at once".
# Kubernetes quantities: kubernetes/apimachinery pkg/api/resource/quantity.go (commit
# eed236ce) documents that no quantity may be greater than 2^63-1 and caps a binary one
# (math.go: maxAllowed is the largest int64), so 8Ei (2^63) and beyond are refused here.
# Tolerations: kubernetes/kubernetes pkg/apis/core/validation/validation.go (commit
# 000f2605) ValidateTolerations requires effect NoExecute when tolerationSeconds is set;
# it accepts a negative tolerationSeconds, which the field's API description (core/v1
# Toleration) says is treated as 0, "evict immediately", so the charm refuses it.
_TOLERATION = "- {{groupKey: g, displayName: G, tolerations: [{{key: k, {}}}]}}\n"
BAD_VALUES = [
    ("cpu-limit-factor", "nan", "at least 1"),
    ("cpu-limit-factor", "NaN", "at least 1"),
    ("cpu-limit-factor", "inf", "at least 1"),
    ("cpu-limit-factor", "Infinity", "at least 1"),
    ("cpu-limit-factor", "1e400", "at least 1"),
    ("cpu-limit-factor", "1" + "0" * 400, "at least 1"),
    ("cpu-limit-factor", "-1", "at least 1"),
    ("cpu-limit-factor", "-inf", "at least 1"),
    ("cpu-limit-factor", "0", "at least 1"),
    # The web app reads the factor with float() (kubeflow/kubeflow v1.10.0, components/
    # crud-web-apps/jupyter/backend/apps/common/form.py) and Number() (frontend/src/app/
    # pages/form/form-new/utils.ts): 10 for one, NaN for the other.
    ("cpu-limit-factor", "1_0", "at least 1"),
    ("cpu-limit-factor", " 2 ", "at least 1"),
    ("memory-limit-factor", "nan", "at least 1"),
    ("memory-limit-factor", "inf", "at least 1"),
    ("memory-limit-factor", "1e400", "at least 1"),
    ("workspace-volume-size", "99999999999999999999Ei", "at most 2^63-1"),
    ("workspace-volume-size", "8Ei", "at most 2^63-1"),
    ("workspace-volume-size", "9223372036854775808", "at most 2^63-1"),
    ("workspace-volume-size", "9223372036854775.808k", "at most 2^63-1"),
    ("workspace-volume-size", "1" * 5000 + "Gi", "positive Kubernetes quantity"),
    ("memory-default", "99999999999999999999Ei", "at most 2^63-1"),
    ("cpu-default", "9223372036854775808", "at most 2^63-1"),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: -1"),
        "tolerationSeconds",
    ),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: 9223372036854775808"),
        "tolerationSeconds",
    ),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoSchedule, tolerationSeconds: 60"),
        "NoExecute",
    ),
    ("toleration-groups", _TOLERATION.format("tolerationSeconds: 60"), "NoExecute"),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: '60'"),
        "tolerationSeconds",
    ),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: true"),
        "tolerationSeconds",
    ),
]
BORDER_VALUES = [
    ("workspace-volume-size", "7Ei"),
    ("workspace-volume-size", "9223372036854775807"),
    ("memory-default", "8191Pi"),
    ("cpu-limit-factor", "1"),
    ("cpu-limit-factor", "12.5"),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: 0"),
    ),
    (
        "toleration-groups",
        _TOLERATION.format("effect: NoExecute, tolerationSeconds: 300"),
    ),
]


@pytest.mark.parametrize(("option", "value"), VALID + BORDER_VALUES)
def test_valid_option_settles_active(ctx, kube, option, value):
    out = settle(ctx, state(config={option: value}))
    assert out.unit_status == ops.ActiveStatus()


@pytest.mark.parametrize(("option", "value", "message"), INVALID + BAD_VALUES)
def test_invalid_option_blocks_naming_it_and_applies_nothing(ctx, kube, option, value, message):
    out = ctx.run(ctx.on.config_changed(), state(config={option: value}))

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {option}: ")
    assert message in out.unit_status.message
    assert kube.writes == []
    for c in out.containers:
        assert not c.plan.services


def test_invalid_config_keeps_the_running_workloads(ctx, kube):
    out = settle(ctx, state())
    plan = out.get_container(web_app.CONTAINER).plan
    bad = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"cpu-default": "lots"})
    )
    assert bad.get_container(web_app.CONTAINER).plan == plan
    assert bad.unit_status.name == "blocked"


@pytest.mark.parametrize(("option", "value", "message"), BAD_VALUES)
def test_bad_value_on_a_running_unit_blocks_and_changes_nothing(ctx, kube, option, value, message):
    settled = settle(ctx, state())
    writes = len(kube.writes)

    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config={option: value}))

    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {option}: ")
    assert message in out.unit_status.message
    assert len(kube.writes) == writes
    for c in out.containers:
        assert c.plan == settled.get_container(c.name).plan
    # Each run starts the container's filesystem empty: a push would leave the file there.
    files = out.get_container(web_app.CONTAINER).get_filesystem(ctx)
    assert not (files / web_app.CONFIG_FILE.lstrip("/")).exists()


def test_charmcraft_defaults_match_the_config_class():
    meta = yaml.safe_load((CHARM.TEMPLATES.parent.parent / "charmcraft.yaml").read_text())
    options = meta["config"]["options"]
    from_yaml = spawner.NotebooksConfig(
        **{k.replace("-", "_"): v["default"] for k, v in options.items()}
    )
    assert spawner.spawner_defaults(from_yaml) == spawner.spawner_defaults(
        spawner.NotebooksConfig()
    )
    fields = {f.replace("_", "-") for f in spawner.NotebooksConfig.__dataclass_fields__}
    assert fields == set(options)


# --- the form, field by field -------------------------------------------------------------


def _form(ctx, config=None) -> dict:
    out = ctx.run(ctx.on.config_changed(), state(config=config or {}))
    return yaml.safe_load(spawner_file(ctx, out))["spawnerFormDefaults"]


def test_default_form_has_what_the_web_app_reads(ctx, kube):
    form = _form(ctx)

    # The images Kubeflow 1.10.0 publishes (kubeflow/kubeflow v1.10.0,
    # .github/workflows/example_notebook_servers_publish_TEMPLATE.yaml) and offers
    # (kubeflow/manifests v1.10.0,
    # apps/jupyter/jupyter-web-app/upstream/base/configs/spawner_ui_config.yaml).
    servers, tag = "ghcr.io/kubeflow/kubeflow/notebook-servers", "v1.10.0"
    assert form["image"] == {
        "value": f"{servers}/jupyter-scipy:{tag}",
        "options": [
            f"{servers}/{name}:{tag}"
            for name in (
                "jupyter-scipy",
                "jupyter-pytorch-full",
                "jupyter-pytorch-cuda-full",
                "jupyter-pytorch-gaudi-full",
                "jupyter-tensorflow-full",
                "jupyter-tensorflow-cuda-full",
            )
        ],
    }
    assert form["imageGroupOne"] == {
        "value": f"{servers}/codeserver-python:{tag}",
        "options": [f"{servers}/codeserver-python:{tag}"],
    }
    assert form["imageGroupTwo"] == {
        "value": f"{servers}/rstudio-tidyverse:{tag}",
        "options": [f"{servers}/rstudio-tidyverse:{tag}"],
    }
    assert form["hideRegistry"] is True and form["hideTag"] is False
    assert form["cpu"] == {"value": "0.5", "limitFactor": "1.2", "readOnly": False}
    assert form["memory"] == {"value": "1Gi", "limitFactor": "1.2", "readOnly": False}
    assert form["workspaceVolume"] == {
        "value": {
            "mount": "/home/jovyan",
            "newPvc": {
                "metadata": {"name": "{notebook-name}-workspace"},
                "spec": {
                    "resources": {"requests": {"storage": "5Gi"}},
                    "accessModes": ["ReadWriteOnce"],
                },
            },
        },
        "readOnly": False,
    }
    assert form["dataVolumes"] == {"value": [], "readOnly": False}
    assert form["gpus"] == {
        "value": {
            "num": "none",
            "vendor": "",
            "vendors": [
                {"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"},
                {"limitsKey": "amd.com/gpu", "uiName": "AMD"},
                {"limitsKey": "habana.ai/gaudi", "uiName": "Intel Gaudi"},
            ],
        },
        "readOnly": False,
    }
    assert form["affinityConfig"] == {"value": "", "options": [], "readOnly": False}
    assert form["tolerationGroup"] == {"value": "", "options": [], "readOnly": False}
    assert form["shm"] == {"value": True, "readOnly": False}
    assert form["configurations"] == {"value": [], "readOnly": False}
    assert form["imagePullPolicy"] == {"value": "IfNotPresent", "readOnly": False}
    assert form["allowCustomImage"] is True


def test_form_follows_the_config(ctx, kube):
    form = _form(
        ctx,
        {
            "jupyter-images": "[a/one:1, a/two:2]",
            "vscode-images": "[b/code:1]",
            "rstudio-images": "[c/r:1, c/r:2]",
            "workspace-volume-size": "50Gi",
            "storage-class": "fast",
            "cpu-default": "2",
            "cpu-limit-factor": "none",
            "memory-default": "8Gi",
            "memory-limit-factor": "1.5",
            "gpu-vendors": "[{limitsKey: amd.com/gpu, uiName: AMD}]",
            "gpu-default-count": 2,
        },
    )

    assert form["image"] == {"value": "a/one:1", "options": ["a/one:1", "a/two:2"]}
    assert form["imageGroupOne"] == {"value": "b/code:1", "options": ["b/code:1"]}
    assert form["imageGroupTwo"] == {"value": "c/r:1", "options": ["c/r:1", "c/r:2"]}
    spec = form["workspaceVolume"]["value"]["newPvc"]["spec"]
    assert spec["resources"]["requests"]["storage"] == "50Gi"
    assert spec["storageClassName"] == "fast"
    assert form["cpu"]["value"] == "2"
    assert form["cpu"]["limitFactor"] == "none"
    assert form["memory"]["value"] == "8Gi"
    assert form["memory"]["limitFactor"] == "1.5"
    assert {k: v for k, v in form["gpus"]["value"].items() if k != "vendors"} == {
        "num": "2",
        "vendor": "amd.com/gpu",
    }
    assert form["gpus"]["value"]["vendors"] == [{"limitsKey": "amd.com/gpu", "uiName": "AMD"}]


def test_gpu_count_without_vendors_is_refused():
    with pytest.raises(ValueError, match="gpu-default-count: needs a vendor"):
        spawner.NotebooksConfig(gpu_vendors="[]", gpu_default_count=1)


def test_blocked_message_is_one_line(ctx, kube):
    out = ctx.run(
        ctx.on.config_changed(), state(config={"affinity-options": "- {configKey: 'bad key'}"})
    )
    assert "\n" not in out.unit_status.message
