"""The trial-kinds interface: what a training charm writes is what Katib reads."""

from __future__ import annotations

import json

import ops
import pytest
from ops import testing

from kubeflow_interfaces import trial_kinds
from kubeflow_interfaces.trial_kinds import (
    InvalidTrialKindsError,
    OwnedResources,
    TrialKind,
    TrialKindsProvider,
    TrialKindsRequirer,
)

KIND = TrialKind(
    kind="TrainJob",
    api_version="trainer.kubeflow.org/v1alpha1",
    plural="trainjobs",
    success_condition='status.conditions.#(type=="Complete")#|#(status=="True")#',
    failure_condition='status.conditions.#(type=="Failed")#|#(status=="True")#',
    primary_pod_labels={"jobset.sigs.k8s.io/replicatedjob-name": "node"},
    primary_container="node",
    owned=(OwnedResources("jobset.x-k8s.io", ("jobsets",)), OwnedResources("batch", ("jobs",))),
)


class _Provider(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = TrialKindsProvider(self)
        framework.observe(self.on.config_changed, self._on_config)

    def _on_config(self, _: ops.EventBase) -> None:
        self.provider.publish([KIND] if self.config.get("offer") else [])


class _Requirer(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.seen: list[TrialKind] | str = []
        framework.observe(self.on.config_changed, self._on_config)

    def _on_config(self, _: ops.EventBase) -> None:
        try:
            self.seen = TrialKindsRequirer(self).kinds()
        except InvalidTrialKindsError as e:
            self.seen = str(e)


_ENDPOINT = {"trial-kinds": {"interface": trial_kinds.INTERFACE}}
PROVIDER_META = {"name": "trainer", "provides": _ENDPOINT}
REQUIRER_META = {"name": "katib", "requires": _ENDPOINT}
OFFER_CONFIG = {"options": {"offer": {"type": "boolean", "default": True}}}


def _provide(offer: bool, data: dict[str, str] | None = None) -> dict[str, str]:
    ctx = testing.Context(_Provider, meta=PROVIDER_META, config=OFFER_CONFIG)
    relation = trial_kinds.relation_for_provider(local_app_data=data or {})
    state = testing.State(leader=True, relations={relation}, config={"offer": offer})
    out = ctx.run(ctx.on.config_changed(), state)
    return dict(out.get_relation(relation.id).local_app_data)


def _require(data: dict[str, str]) -> list[TrialKind] | str:
    ctx = testing.Context(_Requirer, meta=REQUIRER_META)
    relation = testing.Relation(
        "trial-kinds", interface=trial_kinds.INTERFACE, remote_app_data=data
    )
    with ctx(ctx.on.config_changed(), testing.State(relations={relation})) as manager:
        manager.run()
        return manager.charm.seen


def test_what_the_provider_writes_the_requirer_reads():
    data = _provide(True)
    assert json.loads(data["trial_kinds"])[0]["api_version"] == "trainer.kubeflow.org/v1alpha1"
    assert _require(data) == [KIND]
    assert KIND.trial_resource == "TrainJob.v1alpha1.trainer.kubeflow.org"


def test_withdrawing_the_kinds_empties_the_databag():
    assert _provide(False, {"trial_kinds": trial_kinds.dump([KIND])}) == {}
    assert _require({}) == []


def test_a_follower_writes_nothing():
    ctx = testing.Context(_Provider, meta=PROVIDER_META, config=OFFER_CONFIG)
    relation = trial_kinds.relation_for_provider()
    out = ctx.run(ctx.on.config_changed(), testing.State(relations={relation}))
    assert dict(out.get_relation(relation.id).local_app_data) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not JSON"),
        ('{"kind": "TrainJob"}', "not a list"),
        ('[{"kind": "TrainJob"}]', "api_version must be a non-empty string"),
        (
            json.dumps([{**KIND.to_json(), "api_version": "v1"}]),
            "api_version must be group/version",
        ),
        (
            json.dumps([{**KIND.to_json(), "primary_pod_labels": {"a": 1}}]),
            "primary_pod_labels",
        ),
        (json.dumps([{**KIND.to_json(), "owned": [{"group": "batch"}]}]), "owned must be"),
    ],
)
def test_bad_data_is_named(raw: str, message: str):
    seen = _require({"trial_kinds": raw})
    assert isinstance(seen, str) and message in seen
