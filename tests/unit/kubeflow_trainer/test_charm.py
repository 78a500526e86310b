"""Reconcile, statuses, leadership, config, trial kinds, settled hooks, drift and removal."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.kubeflow_trainer.helpers import (
    APP,
    MODEL,
    containers,
    running,
    state,
    trainer_cluster,
)
from unit.kubeflow_trainer.helpers import workloads as wl

from kubeflow_interfaces import trial_kinds

GPU = json.dumps(
    {
        "node-selector": {"kubernetes.azure.com/accelerator": "nvidia"},
        "tolerations": [
            {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        ],
        "gpus-per-node": 1,
    }
)


def _settled(ctx, **kwargs) -> testing.State:
    out = ctx.run(ctx.on.config_changed(), state(**kwargs))
    out = ctx.run(ctx.on.update_status(), out)  # the runtimes, once the controller runs
    assert out.unit_status == ops.ActiveStatus()
    return out


def test_the_leader_runs_both_controllers_and_applies_everything(ctx, kube):
    out = _settled(ctx)
    assert running(out, wl.TRAINER) and running(out, wl.JOBSET)
    assert len(kube.of_kind("CustomResourceDefinition")) == 4
    names = {r["metadata"]["name"] for r in kube.of_kind("ClusterTrainingRuntime")}
    assert names == set(CHARM_RUNTIMES)
    for service in (wl.TRAINER_SERVICE, wl.JOBSET_SERVICE):
        selector = kube.get("Service", service, MODEL)["spec"]["selector"]
        assert selector == {"statefulset.kubernetes.io/pod-name": f"{APP}-0"}


CHARM_RUNTIMES = (
    "torch-distributed",
    "deepspeed-distributed",
    "mlx-distributed",
    "torchtune-llama3.2-1b",
    "torchtune-llama3.2-3b",
    "torchtune-qwen2.5-1.5b",
)


def test_config_files_turn_leader_election_on_and_upstream_certificates_off(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    for workload in wl.WORKLOADS:
        fs = out.get_container(workload.container).get_filesystem(ctx)
        config = json.loads((fs / workload.config_path.lstrip("/")).read_text())
        assert config["leaderElection"]["leaderElect"] is True
        management = config.get("certManagement") or config["internalCertManagement"]
        assert management["enable"] is False
        assert (fs / wl.CERT_FILE.lstrip("/")).read_text().startswith("-----BEGIN CERT")


def test_runtimes_wait_for_the_trainer_controller(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(can_connect=False)))
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert kube.of_kind("ClusterTrainingRuntime") == []


def test_a_follower_runs_no_controller(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(leader=False))
    assert not running(out, wl.TRAINER) and not running(out, wl.JOBSET)
    assert out.unit_status == ops.ActiveStatus("standby: the controllers run on the leader")
    assert kube.of_kind("CustomResourceDefinition") == []


def test_a_unit_that_loses_leadership_stops_its_controllers(ctx, kube):
    out = _settled(ctx)
    follower = ctx.run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
    assert not running(follower, wl.TRAINER) and not running(follower, wl.JOBSET)


def test_a_new_leader_points_the_services_at_its_own_pod(kube):
    ctx = testing.Context(CHARM_CLASS(), app_name=APP, unit_id=1)
    ctx.run(ctx.on.leader_elected(), state())
    selector = kube.get("Service", wl.TRAINER_SERVICE, MODEL)["spec"]["selector"]
    assert selector == {"statefulset.kubernetes.io/pod-name": f"{APP}-1"}


def CHARM_CLASS():  # noqa: N802 (a class, as the loader gives it)
    from unit.kubeflow_trainer.helpers import CHARM

    return CHARM.KubeflowTrainerCharm


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("gpu-placement", "{not json: ["),
        ("gpu-placement", '{"gpus-per-node": -1}'),
        ("runtime-placement", '{"no-such-runtime": {}}'),
        ("arm64-runtime", '{"node-selector": {"bad key!": "x"}}'),
        ("torch-image", ""),
    ],
)
def test_a_bad_option_blocks_naming_it_and_changes_nothing(ctx, kube, option, value):
    out = _settled(ctx)
    writes = list(kube.writes)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={option: value}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert bad.unit_status.message.startswith(option)
    assert kube.writes == writes


def test_placement_reaches_the_runtimes(ctx, kube):
    out = _settled(ctx)
    ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"gpu-placement": GPU}))
    torch = kube.get("ClusterTrainingRuntime", "torch-distributed")
    pod = torch["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.azure.com/accelerator": "nvidia"}
    assert pod["spec"]["tolerations"][0]["key"] == "sku"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}


def test_trial_kinds_are_published_only_once_the_crds_are_applied(ctx, kube):
    relation = trial_kinds.relation_for_provider()
    before = ctx.run(ctx.on.config_changed(), state(relations={relation}))
    assert trial_kinds.FIELD not in before.get_relation(relation.id).local_app_data
    out = ctx.run(ctx.on.config_changed(), state(relations={relation, _peer()}))
    kinds = trial_kinds.parse(out.get_relation(relation.id).local_app_data[trial_kinds.FIELD])
    assert [k.trial_resource for k in kinds] == ["TrainJob.v1alpha1.trainer.kubeflow.org"]
    assert kinds[0].primary_container == "node"


def _peer() -> testing.PeerRelation:
    from unit.kubeflow_trainer.helpers import PEERS

    return testing.PeerRelation(PEERS)


def test_a_settled_hook_writes_nothing(ctx, kube):
    out = _settled(ctx)
    again = ctx.run(ctx.on.update_status(), out)
    writes = list(kube.writes)
    third = ctx.run(ctx.on.update_status(), again)
    assert third.unit_status == ops.ActiveStatus()
    assert third.stored_states == again.stored_states
    assert third.relations == again.relations
    assert kube.writes == writes


def test_update_status_restores_a_deleted_object(ctx, kube):
    out = _settled(ctx)
    out = ctx.run(ctx.on.update_status(), out)
    kube.delete("ValidatingWebhookConfiguration", "validator.trainer.kubeflow.org")
    kube.delete("ClusterTrainingRuntime", "torch-distributed")
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("ValidatingWebhookConfiguration", "validator.trainer.kubeflow.org")
    assert kube.get("ClusterTrainingRuntime", "torch-distributed")


def test_removal_prunes_every_object_but_the_crds(ctx, kube):
    out = _settled(ctx)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    # The users' TrainJobs and JobSets live as long as their CRDs.
    crds = {o["metadata"]["name"] for o in kube.of_kind("CustomResourceDefinition")}
    assert {"trainjobs.trainer.kubeflow.org", "jobsets.jobset.x-k8s.io"} <= crds
    for kind in ("ClusterTrainingRuntime", "ValidatingWebhookConfiguration", "ClusterRole"):
        owned = [
            o
            for o in kube.of_kind(kind)
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/instance")
        ]
        assert owned == [], kind
    assert trainer_cluster.PEERS
