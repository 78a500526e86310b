"""The shared two-step pipeline, compiled with the KFP SDK and run with its local runner.

The compiled spec is checked against what the kfp charm's configuration
makes of it on a cluster (`kfp_runtime` renders the charm's objects with the
charm's code and redoes what Argo v3.4.17 and the KFP 2.4.1 driver do with
them): with the AKS overlay's placement the GPU step lands on the GPU pool
with its toleration and the GPU limit, the other step on the CPU pool, and
every artifact URI falls under the profile's own prefix of the bucket.
Then the SDK's local runner runs the same pipeline, offline.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, local
from pipelines import kfp_runtime as rt
from pipelines.gpu_pipeline import (
    DATASET_OUTPUT,
    FIRST_TASK,
    GPU_POOL,
    GPU_RESOURCE,
    MODEL_OUTPUT,
    PIPELINE_NAME,
    POOL_LABEL,
    SECOND_TASK,
    gpu_handover,
)

GPU_TOLERATION = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the platform spec, as the SDK writes them into one YAML file."""
    path = tmp_path_factory.mktemp("compiled") / "pipeline.yaml"
    compiler.Compiler().compile(gpu_handover, str(path))
    pipeline_spec, platform_spec = yaml.safe_load_all(path.read_text())
    return pipeline_spec, platform_spec


@pytest.fixture(scope="module")
def aks_workflow_spec() -> dict[str, Any]:
    """A run's Workflow spec under the charm's Argo defaults, configured as for AKS."""
    config = rt.config_from_options(rt.aks_options())
    defaults = rt.argo_config(config, rt.object_store()).get("workflowDefaults")
    assert defaults, "the charm rendered no workflowDefaults for the AKS placement"
    # KFP 2.4.1's Argo compiler sets no nodeSelector or tolerations on the
    # Workflow (backend/src/v2/compiler/argocompiler/argo.go): its spec adds nothing here.
    return rt.workflow_spec(defaults, {})


def _pod(compiled: tuple[dict, dict], wf_spec: dict[str, Any], task: str) -> dict[str, Any]:
    pipeline_spec, platform_spec = compiled
    return rt.step_pod_spec(wf_spec, rt.pod_spec_patch(pipeline_spec, platform_spec, task))


def _main(pod: dict[str, Any]) -> dict[str, Any]:
    (main,) = [c for c in pod["containers"] if c["name"] == rt.MAIN_CONTAINER]
    return main


def test_the_compiled_spec_asks_for_a_gpu_on_the_gpu_pool(compiled):
    pipeline_spec, platform_spec = compiled
    assert pipeline_spec["pipelineInfo"]["name"] == PIPELINE_NAME
    executors = pipeline_spec["deploymentSpec"]["executors"]
    accelerator = executors["exec-train"]["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == GPU_RESOURCE
    assert accelerator["resourceCount"] == "1"
    assert "resources" not in executors["exec-make-dataset"]["container"]
    kubernetes = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert kubernetes == {"exec-train": {"nodeSelector": {"labels": {POOL_LABEL: GPU_POOL}}}}
    # The artifact passes from the first task to the second.
    train = pipeline_spec["root"]["dag"]["tasks"][SECOND_TASK]
    handed = train["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
    assert handed == {"outputArtifactKey": DATASET_OUTPUT, "producerTask": FIRST_TASK}
    # No root of its own: each profile's kfp-launcher ConfigMap decides.
    assert "defaultPipelineRoot" not in pipeline_spec


def test_the_gpu_step_lands_on_the_gpu_pool_with_its_toleration_and_limit(
    compiled, aks_workflow_spec
):
    pod = _pod(compiled, aks_workflow_spec, SECOND_TASK)

    assert pod["nodeSelector"] == {POOL_LABEL: GPU_POOL}
    assert _main(pod)["resources"]["limits"] == {GPU_RESOURCE: "1"}
    assert GPU_TOLERATION in pod["tolerations"]


def test_the_cpu_step_lands_on_the_cpu_pool_without_a_gpu(compiled, aks_workflow_spec):
    pod = _pod(compiled, aks_workflow_spec, FIRST_TASK)

    assert pod["nodeSelector"] == {POOL_LABEL: "cpu"}
    assert "resources" not in _main(pod)


def test_the_aks_placement_is_the_one_the_overlay_describes():
    options = rt.aks_options()
    config = rt.config_from_options(options)
    assert config.node_selector == {POOL_LABEL: "cpu"}
    assert GPU_TOLERATION in config.tolerations


def test_without_the_placement_options_a_gpu_step_gets_no_toleration(compiled):
    """The charm's defaults add no workflowDefaults: the GPU step's own selector is all."""
    argo = rt.argo_config(rt.config_from_options({}), rt.object_store())
    assert "workflowDefaults" not in argo
    pod = _pod(compiled, rt.workflow_spec(None, {}), SECOND_TASK)

    assert pod["nodeSelector"] == {POOL_LABEL: GPU_POOL}
    assert "tolerations" not in pod


@pytest.mark.parametrize("namespace", ["alice", "team-b"])
def test_every_artifact_lands_under_the_profiles_prefix(compiled, namespace: str):
    pipeline_spec, _ = compiled
    launcher = rt.launcher_config(rt.config_from_options({}), rt.object_store(), namespace)
    root = rt.pipeline_root(pipeline_spec, launcher)
    run_id = str(uuid.uuid4())
    outputs = {
        task: list(
            pipeline_spec["components"][spec["componentRef"]["name"]]["outputDefinitions"].get(
                "artifacts", {}
            )
        )
        for task, spec in pipeline_spec["root"]["dag"]["tasks"].items()
    }
    assert outputs == {FIRST_TASK: [DATASET_OUTPUT], SECOND_TASK: [MODEL_OUTPUT]}

    for task, names in outputs.items():
        for name in names:
            uri = rt.output_uri(root, PIPELINE_NAME, run_id, task, str(uuid.uuid4()), name)
            bucket, key = rt.bucket_and_key(uri)
            assert bucket == "mlpipeline"
            assert key.startswith(f"private-artifacts/{namespace}/"), key
            assert key.endswith(f"/{PIPELINE_NAME}/{run_id}/{task}/{key.split('/')[-2]}/{name}")


def test_the_local_runner_runs_the_pipeline_and_hands_the_artifact_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Each component first pip-installs kfp==2.11.0, which this environment has:
    # with no index pip must find it installed, so nothing is downloaded.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))

    run = gpu_handover(rows=4)

    said = run.output
    assert said.startswith("read 4 rows from "), said
    dataset = Path(said.removeprefix("read 4 rows from ").split(";")[0])
    assert dataset.parent.name == FIRST_TASK and dataset.name == DATASET_OUTPUT
    assert dataset.is_relative_to(root)
    assert dataset.read_text().splitlines() == ["x,y", "0,0", "1,2", "2,4", "3,6"]
    assert said.endswith("slope=2.0")
    (model,) = root.glob(f"*/{SECOND_TASK}/{MODEL_OUTPUT}")
    assert model.read_text() == "slope=2.0\n"
