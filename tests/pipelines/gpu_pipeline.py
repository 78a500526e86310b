"""The pipeline the kfp tests build, compile, run locally and submit to a real cluster.

Two steps pass an artifact: `make_dataset` writes a Dataset, `train` reads
it, writes a Model and asks for a GPU: `set_accelerator_type` with the
Kubernetes resource name (kfp 2.11.0 writes it to the container's
`resources.accelerator.resourceType`; the 2.4.1 driver makes it a limit of
that exact name, backend/src/v2/driver/driver.go initPodSpecPatch), one of
them (`set_accelerator_limit`), and the GPU pool's node selector through
kfp-kubernetes (`add_node_selector`, kubernetes_platform/python/kfp/
kubernetes/node_selector.py at kubeflow/pipelines 2.4.1). Both components
are lightweight Python components that need nothing beyond the standard
library, so the SDK's local runner can run them without installing
anything. No `from __future__ import annotations` here: the SDK reads the
components' annotations as objects, not strings.
"""

from kfp import dsl, kubernetes

PIPELINE_NAME = "kfp-gpu-handover"
ROWS = 3
POOL_LABEL = "kubeflow.org/pool"
GPU_POOL = "gpu"
GPU_RESOURCE = "nvidia.com/gpu"
# The tasks' names in the compiled spec (the SDK names a task after its component).
FIRST_TASK = "make-dataset"
SECOND_TASK = "train"
DATASET_OUTPUT = "dataset"
MODEL_OUTPUT = "model"
# Any image with Python 3.9+ runs a lightweight component on a cluster;
# the local runner with use_venv=False ignores it. Fully qualified, so the
# integration job's image check can ask for it (tests/integration/test_kfp.py).
BASE_IMAGE = "docker.io/library/python:3.11-slim"


@dsl.component(base_image=BASE_IMAGE)
def make_dataset(rows: int, dataset: dsl.Output[dsl.Dataset]):
    """Write `rows` lines of CSV."""
    with open(dataset.path, "w") as f:
        f.write("x,y\n")
        for i in range(rows):
            f.write(f"{i},{2 * i}\n")
    dataset.metadata["rows"] = rows


@dsl.component(base_image=BASE_IMAGE)
def train(dataset: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model]) -> str:
    """Read the first step's CSV, fit y = a * x, and say what it read."""
    with open(dataset.path) as f:
        lines = f.read().splitlines()[1:]
    points = [tuple(int(v) for v in line.split(",")) for line in lines]
    xx = sum(x * x for x, _ in points)
    slope = sum(x * y for x, y in points) / xx if xx else 0.0
    with open(model.path, "w") as f:
        f.write(f"slope={slope}\n")
    return f"read {len(points)} rows from {dataset.uri}; slope={slope}"


@dsl.pipeline(name=PIPELINE_NAME, description="Two steps pass an artifact; the second on a GPU.")
def gpu_handover(rows: int = ROWS) -> str:
    """The first step's Dataset goes to the second, which asks for a GPU on the GPU pool."""
    first = make_dataset(rows=rows)
    second = train(dataset=first.outputs[DATASET_OUTPUT])
    second.set_accelerator_type(GPU_RESOURCE)
    second.set_accelerator_limit(1)
    kubernetes.add_node_selector(second, label_key=POOL_LABEL, label_value=GPU_POOL)
    return second.outputs["Output"]
