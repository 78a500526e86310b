"""Fixtures for the bundle simulation: settled models, shared or copied; the figures report.

Settling a whole bundle runs every charm's real code for a hundred hooks and
more, and is most of this layer's time. Each bundle (with its overlays) is
settled once per session, in `SettledModels`:

- a test that only reads a settled model gets the shared one (`shared`); it
  must run no hook and write nothing to the fake cluster, which is checked
  when the test ends;
- a test that changes the model (config, relations, actions, notices,
  update-status) gets its own copy (`own`): its records, its workload
  folders, its Kubernetes objects, fresh `ops.testing` Contexts. The copy is
  the settled model as it stands; `test_settled_models.py` holds it to that.

Every test of a bundle that settles differently still simulates its own.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from bundle.fake_kubernetes import routed_lightkube
from bundle.simulator import BUNDLE, Model, load_bundle, simulate
from bundle.workloads import Workloads
from charm_loader import load_charm
from ops import testing

FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Lines for the end-of-run report (hooks run and time to settle)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("bundle simulation")
        for line in FIGURES:
            terminalreporter.write_line(line)


def copy_model(model: Model, tmp_path: Path, s3_endpoint: str | None) -> Model:
    """A settled model's independent twin, its workload folders under `tmp_path`.

    Relations, secrets, statuses, hooks and logs are deep copies; the fake
    cluster's objects are copied into a fresh `Workloads`, which every
    lightkube client now reaches; each unit gets a new Context of its charm
    with the old one's scratch folder copied; container mounts are moved to
    the copied folders.
    """
    if model._queue:
        raise ValueError("only a settled model (no events queued) can be copied")
    workloads = Workloads(s3_endpoint)
    # MinIO's admin API keeps its users in memory: the twin's MinIO has them too.
    workloads.minio_admin = copy.deepcopy(model.workloads.minio_admin)
    cluster, fake = model.workloads.kubernetes, workloads.kubernetes
    fake.objects = copy.deepcopy(cluster.objects)
    fake.writes = list(cluster.writes)
    fake.rejected = list(cluster.rejected)
    shutil.copytree(model.tmp_path, tmp_path, dirs_exist_ok=True)

    # Ids carry on from the same number in both models.
    next_id = next(model._ids)
    model._ids = itertools.count(next_id)
    memo: dict[int, Any] = {
        id(model.workloads): workloads,
        id(model.tmp_path): tmp_path,
        id(model._ids): itertools.count(next_id),
    }
    for app in model.apps.values():
        charm_class = getattr(load_charm(app.charm), workloads.charm_class(app.charm))
        for unit in app.units:
            ctx = testing.Context(charm_class, app_name=app.name, unit_id=unit.index)
            # Files a charm wrote outside the mounts live in the Context's scratch folder.
            shutil.copytree(unit.ctx._tmp_path, ctx._tmp_path, dirs_exist_ok=True)
            memo[id(unit.ctx)] = ctx
    twin = copy.deepcopy(model, memo)

    def moved(source: str | Path) -> Path:
        return tmp_path / Path(source).relative_to(model.tmp_path)

    for app in twin.apps.values():
        for unit in app.units:
            containers = {
                dataclasses.replace(
                    container,
                    mounts={
                        location: dataclasses.replace(mount, source=moved(mount.source))
                        for location, mount in container.mounts.items()
                    },
                )
                for container in unit.state.containers
            }
            unit.state = dataclasses.replace(unit.state, containers=frozenset(containers))
    return twin


Variant = Callable[[dict[str, Any]], dict[str, Any]]


class SettledModels:
    """The bundle, with overlays and a test's own changes, each settled once per session.

    A model is known by its overlays and its variant: a function that turns
    the loaded bundle into the one to simulate (add test charms, say). The
    function itself is the key, so two modules never share by accident.
    """

    def __init__(self, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory):
        self.s3_endpoint = s3_endpoint
        self.tmp_path_factory = tmp_path_factory
        self._models: dict[tuple[tuple[Path, ...], Variant | None], Model] = {}
        self._derived: dict[Callable[[Model], None], Model] = {}

    def settled(self, overlays: Sequence[Path] = (), variant: Variant | None = None) -> Model:
        """The one settled model of the bundle with these overlays and this variant."""
        key = (tuple(overlays), variant)
        if key not in self._models:
            bundle = load_bundle(BUNDLE, overlays)
            if variant is not None:
                bundle = variant(copy.deepcopy(bundle))
            name = "-".join([*(o.stem for o in overlays), variant.__name__ if variant else ""])
            folder = self.tmp_path_factory.mktemp(f"settled-{name.strip('-') or 'bundle'}")
            self._models[key] = simulate(bundle, Workloads(self.s3_endpoint), folder)
        return self._models[key]

    @staticmethod
    def _footprint(model: Model) -> tuple[int, int, int]:
        return len(model.hooks), len(model.workloads.kubernetes.writes), len(model.secrets)

    def shared(
        self, overlays: Sequence[Path] = (), variant: Variant | None = None
    ) -> Iterator[Model]:
        """For a fixture to yield from: the shared model, checked afterwards to be unchanged."""
        model = self.settled(overlays, variant)
        before = self._footprint(model)
        with routed_lightkube(model.workloads.kubernetes):
            yield model
        assert self._footprint(model) == before, (
            "a test changed a shared settled model (ran a hook or wrote to the cluster);"
            " give it its own copy"
        )

    def own(
        self, tmp_path: Path, overlays: Sequence[Path] = (), variant: Variant | None = None
    ) -> Model:
        """A copy of the settled model that a test may change at will."""
        return copy_model(self.settled(overlays, variant), tmp_path / "model", self.s3_endpoint)

    def derived(self, change: Callable[[Model], None]) -> Model:
        """The settled bundle as `change` leaves it (units added, say), made once per session.

        The function itself is the key, as for variants. Tests change copies
        of it (`own_derived`), never the model itself.
        """
        if change not in self._derived:
            folder = self.tmp_path_factory.mktemp(f"settled-{change.__name__}")
            model = copy_model(self.settled(), folder, self.s3_endpoint)
            change(model)
            self._derived[change] = model
        return self._derived[change]

    def own_derived(self, tmp_path: Path, change: Callable[[Model], None]) -> Model:
        """A copy of a derived model that a test may change at will."""
        return copy_model(self.derived(change), tmp_path / "model", self.s3_endpoint)


@pytest.fixture(scope="session")
def settled_models(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> SettledModels:
    """The session's settled models."""
    return SettledModels(s3_endpoint, tmp_path_factory)
