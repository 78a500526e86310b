"""What the training tests check users' objects against: the charms' own files.

The katib charm ships its CRDs in charms/katib/src/manifests/crds.yaml and
the kubeflow-trainer charm in charms/kubeflow-trainer/src/manifests/crds.yaml
(plain multi-document YAML); the trainer charm renders its
ClusterTrainingRuntimes with `render_runtimes(options)` in
charms/kubeflow-trainer/src/trainer_runtimes.py, from raw option strings as
a bundle overlay writes them. A missing file fails the test that needs it,
naming it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_schema import CustomResourceSchema, load_crds

ROOT = Path(__file__).resolve().parents[2]
KATIB_CRDS = ROOT / "charms" / "katib" / "src" / "manifests" / "crds.yaml"
TRAINER_SRC = ROOT / "charms" / "kubeflow-trainer" / "src"
TRAINER_CRDS = TRAINER_SRC / "manifests" / "crds.yaml"
TRAINER_RUNTIMES = TRAINER_SRC / "trainer_runtimes.py"
AKS_OVERLAY = ROOT / "bundle" / "overlays" / "aks.yaml"


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: the charm that owns it ships it")
    return path


def _schemas(path: Path) -> dict[str, CustomResourceSchema]:
    return {name: CustomResourceSchema(crd) for name, crd in load_crds(_need(path)).items()}


@pytest.fixture(scope="session")
def katib_crds() -> dict[str, CustomResourceSchema]:
    """The katib charm's CRDs, by name, each at its storage version."""
    return _schemas(KATIB_CRDS)


@pytest.fixture(scope="session")
def trainer_crds() -> dict[str, CustomResourceSchema]:
    """The kubeflow-trainer charm's CRDs (Trainer's and JobSet's), by name."""
    return _schemas(TRAINER_CRDS)


@pytest.fixture(scope="session")
def render_runtimes() -> Callable[[Mapping[str, str]], list[dict[str, Any]]]:
    """The trainer charm's `render_runtimes`, imported from its file as the charm imports it."""
    _need(TRAINER_RUNTIMES)
    if str(TRAINER_SRC) not in sys.path:  # its sibling modules, by bare name
        sys.path.insert(0, str(TRAINER_SRC))
    spec = importlib.util.spec_from_file_location("trainer_runtimes", TRAINER_RUNTIMES)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("trainer_runtimes", module)
    spec.loader.exec_module(module)
    return module.render_runtimes


@pytest.fixture(scope="session")
def aks_trainer_options() -> dict[str, str]:
    """The AKS overlay's options for kubeflow-trainer, as the overlay writes them."""
    overlay = yaml.safe_load(_need(AKS_OVERLAY).read_text())
    application = (overlay.get("applications") or {}).get("kubeflow-trainer")
    if not application or not application.get("options"):
        pytest.fail("bundle/overlays/aks.yaml sets no options for kubeflow-trainer")
    return {key: str(value) for key, value in application["options"].items()}


@pytest.fixture(scope="session")
def aks_runtimes(render_runtimes, aks_trainer_options) -> dict[str, dict[str, Any]]:
    """The ClusterTrainingRuntimes the trainer charm renders with the AKS overlay, by name."""
    return {r["metadata"]["name"]: r for r in render_runtimes(aks_trainer_options)}


@pytest.fixture(scope="session")
def default_runtimes(render_runtimes) -> dict[str, dict[str, Any]]:
    """The ClusterTrainingRuntimes the trainer charm renders with its defaults, by name."""
    return {r["metadata"]["name"]: r for r in render_runtimes({})}
