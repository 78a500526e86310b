"""The bundle settles the same whatever order Juju deals its events out in.

A seeded model deploys its units in a shuffled order, integrates the
bundle's relations at random moments (before some units install, after
others started) and interleaves the units' events as Juju may (see
`Model._next_event`). Every tested order must reach the state the fixed
order reaches: the same statuses, the same Kubernetes objects, the same
relation data and secrets, once what is random by nature is set aside
(secret ids, generated credentials and certificates, digests of them, the
database request ids and salts the mysql_client library draws).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from bundle.simulator import BUNDLE, Model, load_bundle, simulate
from bundle.workloads import Workloads

AKS = BUNDLE.parent / "overlays" / "aks.yaml"
MICROK8S = BUNDLE.parent / "overlays" / "microk8s.yaml"
ORDERS = [
    pytest.param([], 1, id="bundle-seed-1"),
    pytest.param([AKS], 2, id="aks-seed-2"),
    pytest.param([MICROK8S], 3, id="microk8s-seed-3"),
]
# What the API server sets and bumps on every write.
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
_SECRET_ID = re.compile(r"secret:[0-9a-z]{20}")
_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")
# The mysql_client library's request ids (16 hex digits), in labels and answers.
_REQUEST_ID = re.compile(r"\b[0-9a-f]{16}\b")
_RANDOM_KEYS = {"request-id", "salt"}


class _Normal:
    """A model's outcome with what is random by nature replaced by names."""

    def __init__(self, model: Model):
        self.ids: dict[str, str] = {}
        self.values: dict[str, str] = {}
        for record in model.secrets.values():
            label = _REQUEST_ID.sub("<request>", record.label or "")
            self.ids[record.id] = f"<secret {record.owner_app} {label}>"
            for key, value in record.content.items():
                if len(value) < 8:
                    continue
                encoded = base64.b64encode(value.encode()).decode()
                for text, name in ((value, f"<{label} {key}>"), (encoded, f"<{label} {key} b64>")):
                    # Two secrets can hold one value (certificates made in the same second).
                    self.values[text] = "<shared value>" if text in self.values else name
        # Longest first, so a value inside another is not replaced before it.
        self.order = sorted(self.values, key=len, reverse=True)

    def text(self, text: str) -> Any:
        if text.startswith(("{", "[")):
            try:
                return self.of(json.loads(text))
            except json.JSONDecodeError:
                pass
        for value in self.order:
            if value in text:
                text = text.replace(value, self.values[value])
        text = _SECRET_ID.sub(lambda m: self.ids.get(m.group(0), "<secret gone>"), text)
        text = _DIGEST.sub("<digest>", text)
        return _REQUEST_ID.sub("<request>", text)

    def of(self, thing: Any) -> Any:
        if isinstance(thing, dict):
            return {
                self.text(str(k)): "<random>" if k in _RANDOM_KEYS else self.of(v)
                for k, v in thing.items()
            }
        if isinstance(thing, list):
            return [self.of(item) for item in thing]
        if isinstance(thing, str):
            return self.text(thing)
        return thing


def _outcome(model: Model) -> dict[str, Any]:
    """What an order must not change, with what is random by nature named instead."""
    normal = _Normal(model)
    objects = {}
    for key, stored in model.workloads.kubernetes.objects.items():
        body = copy.deepcopy(stored.body)
        for field in _SERVER_FIELDS:
            body["metadata"].pop(field, None)
        objects[str(key)] = normal.of(body)
    relations = {
        f"{' '.join(r.apps)} {' '.join(r.endpoints)} app data of {app}": normal.of(dict(data))
        for r in model.relations.values()
        for app, data in r.app_data.items()
    }
    # A secret only its owner reads may take one revision or two for two changes (minio's
    # scoped users, made in one hook or in two, as the relations came); a secret another
    # application reads must be at the same revision whatever the order.
    secrets = {
        normal.ids[r.id]: (r.owner, r.revision if r.grants else None, sorted(r.content))
        for r in model.secrets.values()
    }
    statuses = {name: (s.name, s.message) for name, s in model.statuses.items()}
    statuses |= {f"app {name}": (s.name, s.message) for name, s in model.app_statuses.items()}
    return {"statuses": statuses, "objects": objects, "relations": relations, "secrets": secrets}


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    return [
        f"{part}: {key}"
        for part in expected
        for key in sorted(expected[part].keys() | found[part].keys())
        if expected[part].get(key) != found[part].get(key)
    ]


@pytest.mark.parametrize(("overlays", "seed"), ORDERS)
def test_every_order_reaches_the_same_settled_state(
    settled_models, s3_endpoint, tmp_path: Path, figures, overlays, seed
):
    fixed = settled_models.settled(overlays)
    shuffled = simulate(load_bundle(BUNDLE, overlays), Workloads(s3_endpoint), tmp_path, seed=seed)
    name = overlays[0].stem if overlays else "bundle"
    figures.append(
        f"{name} in the order of seed {seed}: {len(shuffled.hooks)} hooks,"
        f" settled in {shuffled.settle_seconds:.2f} s"
    )
    assert [(h.unit, h.event) for h in shuffled.hooks] != [(h.unit, h.event) for h in fixed.hooks]
    _assert_juju_order(shuffled)

    assert _differences(_outcome(fixed), _outcome(shuffled)) == []
    assert shuffled.update_status_everywhere() == []
    assert shuffled.workloads.kubernetes.rejected == []
    assert shuffled.leaks() == []


def _assert_juju_order(model: Model) -> None:
    """Each unit's hooks keep Juju's guarantees; some relations came after their units started."""
    late = 0
    for app in model.apps.values():
        for unit in app.units:
            events = [h.event for h in model.hooks if h.unit == unit.name]
            start = events.index("start")
            setup = events[: start + 1]
            assert setup[0] == "install", (unit.name, setup)
            leadership = "leader-elected" if unit.leader else "leader-settings-changed"
            assert setup.index(leadership) < setup.index("config-changed") < start
            assert all(
                e.endswith("-relation-created") or e in (leadership, "config-changed")
                for e in setup[1:-1]
            ), (unit.name, setup)
            seen: dict[str, list[str]] = {}
            for event in events:
                endpoint, _, kind = event.rpartition("-relation-")
                if endpoint:
                    seen.setdefault(endpoint, []).append(kind)
            for endpoint, kinds in seen.items():
                assert kinds[0] == "created", (unit.name, endpoint, kinds)
            late += sum(e.endswith("-relation-created") for e in events[start:])
    assert late > 0, "every relation was integrated before its units started"


def _two_apps(bundle: dict[str, Any]) -> dict[str, Any]:
    bundle["applications"] = {k: bundle["applications"][k] for k in ("mysql", "minio")}
    bundle["relations"] = [["mysql:s3-parameters", "minio:s3-credentials"]]
    return bundle


def test_an_order_is_the_seeds_own(s3_endpoint, tmp_path: Path):
    bundle = _two_apps(load_bundle(BUNDLE))

    def hooks(seed: int, folder: str) -> list[tuple[str, str]]:
        model = simulate(
            copy.deepcopy(bundle), Workloads(s3_endpoint), tmp_path / folder, seed=seed
        )
        return [(h.unit, h.event) for h in model.hooks]

    first = hooks(7, "first")
    assert hooks(7, "again") == first
    assert hooks(8, "other") != first
