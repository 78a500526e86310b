"""The kserve charm's reconcile: workloads, objects, statuses, leadership, drift, removal."""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from ops import testing
from unit.kserve.helpers import (
    APP,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    MODEL,
    running,
    service,
    settled,
    state,
    with_relation,
)
from unit.kserve.helpers import kserve_runtimes as rt
from unit.kserve.helpers import workloads as wl


def _config(kube) -> dict:
    data = kube.get("ConfigMap", wl.CONFIGMAP, MODEL)["data"]
    return {key: json.loads(value) for key, value in data.items()}


def test_the_leader_runs_both_controllers_and_applies_every_object(ctx, kube):
    out = settled(ctx)
    assert out.unit_status == ops.ActiveStatus("RawDeployment, hosts *.example.com")
    for workload in wl.WORKLOADS:
        assert running(out, workload), workload.service
        assert service(out, workload).environment["POD_NAMESPACE"] == MODEL
        assert "--leader-elect" in service(out, workload).command.split()
    for plural in (
        "inferenceservices",
        "servingruntimes",
        "clusterservingruntimes",
        "clusterstoragecontainers",
        "inferencegraphs",
        "trainedmodels",
        "localmodelcaches",
        "localmodelnodegroups",
        "localmodelnodes",
    ):
        assert kube.get("CustomResourceDefinition", f"{plural}.serving.kserve.io"), plural
    runtimes = {r["metadata"]["name"] for r in kube.of_kind("ClusterServingRuntime")}
    assert runtimes == set(rt.RUNTIMES) | {f"{n}-gpu" for n in rt.GPU_RUNTIMES}
    assert kube.get("ClusterStorageContainer", "default") is not None
    for name in ("kubeflow-kserve-admin", "kubeflow-kserve-edit", "kubeflow-kserve-view"):
        assert kube.get("ClusterRole", name) is not None
    assert kube.get("MutatingWebhookConfiguration", "inferenceservice.serving.kserve.io")
    svc = kube.get("Service", wl.WEBHOOK_SERVICE, MODEL)
    assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-0"}


def test_the_ingress_config_names_our_gateway_and_raw_deployment(ctx, kube):
    settled(ctx, config={"ingress-domain": "models.example.org", "url-scheme": "https"})
    config = _config(kube)
    assert config["deploy"] == {"defaultDeploymentMode": "RawDeployment"}
    ingress = config["ingress"]
    assert ingress["ingressGateway"] == f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}"
    assert ingress["ingressClassName"] == "istio"
    assert ingress["ingressDomain"] == "models.example.org"
    assert ingress["urlScheme"] == "https"
    assert ingress["domainTemplate"] == "{{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}"


def test_the_storage_initializer_image_comes_from_config(ctx, kube):
    settled(ctx, config={"storage-initializer-image": "registry.local/si:1"})
    assert _config(kube)["storageInitializer"]["image"] == "registry.local/si:1"
    container = kube.get("ClusterStorageContainer", "default")["spec"]["container"]
    assert container["image"] == "registry.local/si:1"


def test_without_the_gateway_nothing_is_applied_and_no_controller_runs(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(gateway=False))
    assert out.unit_status == ops.BlockedStatus(
        "add the gateway-metadata relation to istio: KServe's ingress config names its gateway"
    )
    assert kube.get("ConfigMap", wl.CONFIGMAP, MODEL) is None
    assert not any(running(out, w) for w in wl.WORKLOADS)


def test_an_empty_gateway_relation_waits(ctx, kube):
    empty = testing.Relation("gateway-metadata", interface="gateway_metadata")
    out = ctx.run(ctx.on.config_changed(), state(gateway=False, relations={empty}))
    assert out.unit_status == ops.WaitingStatus("waiting for istio's gateway-metadata")
    assert not running(out, wl.CONTROLLER)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("not json", "gateway-metadata: "),
        (
            '{"namespace": "istio-system", "gateway_name": "Bad Name!", '
            '"deployment_name": "d", "service_account": "s"}',
            "gateway-metadata: gateway_name 'Bad Name!' is not a gateway name",
        ),
    ],
)
def test_a_malformed_gateway_blocks_and_applies_nothing(ctx, kube, data, words):
    bad = testing.Relation(
        "gateway-metadata", interface="gateway_metadata", remote_app_data={"metadata": data}
    )
    out = ctx.run(ctx.on.config_changed(), state(gateway=False, relations={bad}))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(words)
    assert kube.get("ConfigMap", wl.CONFIGMAP, MODEL) is None
    assert not any(running(out, w) for w in wl.WORKLOADS)


def test_the_runtimes_wait_for_the_controller(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    # The first hook starts the controller; the runtimes follow once Pebble says it runs.
    assert running(out, wl.CONTROLLER)
    again = ctx.run(ctx.on.update_status(), out)
    assert kube.of_kind("ClusterServingRuntime")
    assert again.unit_status.name == "active"


def test_a_follower_runs_no_controller_and_no_check(ctx, kube):
    leader = settled(ctx)
    follower = ctx.run(ctx.on.update_status(), dataclasses.replace(leader, leader=False))
    assert not any(running(follower, w) for w in wl.WORKLOADS)
    assert follower.unit_status == ops.ActiveStatus("standby: the controllers run on the leader")
    checks = follower.get_container(wl.CONTROLLER.container).plan.checks
    assert checks[wl.CONTROLLER.check].startup.value == "disabled"


def test_a_new_leader_points_the_webhook_service_at_itself_and_starts_the_controllers(ctx, kube):
    first = settled(ctx)
    new_ctx = testing.Context(ctx.charm_spec.charm_type, app_name=APP, unit_id=1)
    follower = new_ctx.run(
        new_ctx.on.config_changed(),
        dataclasses.replace(state(leader=False), secrets=first.secrets, relations=first.relations),
    )
    assert not running(follower, wl.CONTROLLER)
    out = new_ctx.run(new_ctx.on.leader_elected(), dataclasses.replace(follower, leader=True))
    assert all(running(out, w) for w in wl.WORKLOADS)
    svc = kube.get("Service", wl.WEBHOOK_SERVICE, MODEL)
    assert svc["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"{APP}-1"}


def test_a_settled_update_status_writes_nothing(ctx, kube):
    out = settled(ctx)
    writes = list(kube.writes)
    again = ctx.run(ctx.on.update_status(), out)
    assert again.unit_status == out.unit_status
    assert again.relations == out.relations
    assert again.stored_states == out.stored_states
    assert again.secrets == out.secrets
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert again.get_container(c).layers == out.get_container(c).layers


def test_deleted_objects_are_restored_by_update_status(ctx, kube):
    out = settled(ctx)
    kube.delete("ConfigMap", wl.CONFIGMAP, MODEL)
    kube.delete("ClusterServingRuntime", "kserve-sklearnserver")
    ctx.run(ctx.on.update_status(), out)
    assert kube.get("ConfigMap", wl.CONFIGMAP, MODEL) is not None
    assert kube.get("ClusterServingRuntime", "kserve-sklearnserver") is not None


def test_removal_prunes_everything_but_the_crds(ctx, kube):
    out = settled(ctx)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.get("ConfigMap", wl.CONFIGMAP, MODEL) is None
    assert kube.get("Service", wl.WEBHOOK_SERVICE, MODEL) is None
    assert kube.get("ValidatingWebhookConfiguration", "inferenceservice.serving.kserve.io") is None
    assert kube.get("ClusterRole", "kubeflow-kserve-edit") is None
    assert not kube.of_kind("ClusterServingRuntime")
    assert kube.get("CustomResourceDefinition", "inferenceservices.serving.kserve.io") is not None


def test_every_profile_gets_the_kserve_models_service_account(ctx, kube):
    from kubeflow_interfaces import kubernetes_manifests as km

    relation = km.relation_for_requirer("service-accounts", namespaces=["alice"])
    out = ctx.run(ctx.on.relation_changed(relation), with_relation(settled(ctx), relation))
    data = out.get_relation(relation.id).local_app_data
    assert data[km.IS_SECRET_FIELD] == "true"
    secret = next(s for s in out.secrets if s.label == f"service-accounts-{relation.id}")
    (account,) = json.loads(secret.tracked_content[km.CONTENT_KEY])
    assert account == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "kserve-models"},
        "secrets": [{"name": "minio-credentials"}],
    }
    changed = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"storage-secret": "my-keys"})
    )
    secret = next(s for s in changed.secrets if s.label == f"service-accounts-{relation.id}")
    (account,) = json.loads(secret.latest_content[km.CONTENT_KEY])
    assert account["secrets"] == [{"name": "my-keys"}]


def test_a_departing_service_accounts_relation_loses_its_secret(ctx, kube):
    from kubeflow_interfaces import kubernetes_manifests as km

    relation = km.relation_for_requirer("service-accounts")
    out = ctx.run(ctx.on.relation_changed(relation), with_relation(settled(ctx), relation))
    gone = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert not [s for s in gone.secrets if s.label == f"service-accounts-{relation.id}"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("predictor-node-selector", "[1]"),
        ("predictor-tolerations", '[{"operator": "Sometimes"}]'),
        ("gpu-predictor-node-selector", '{"bad key!": "x"}'),
        ("gpu-predictor-tolerations", "{}"),
        ("gpus-per-predictor", 0),
        ("ingress-domain", "Not A Domain"),
        ("url-scheme", "ftp"),
        ("storage-secret", "Bad_Name"),
        ("sklearnserver-image", ""),
        ("storage-initializer-image", "not an image"),
    ],
)
def test_a_bad_option_blocks_naming_it_and_changes_nothing(ctx, kube, option, value):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={option: value}))
    assert isinstance(bad.unit_status, ops.BlockedStatus)
    assert bad.unit_status.message.startswith(f"{option}: ")
    assert kube.writes == writes
    for workload in wl.WORKLOADS:
        c = workload.container
        assert bad.get_container(c).layers == out.get_container(c).layers


def test_placement_options_reach_every_runtime_and_the_gpu_twins(ctx, kube):
    cpu = {"kubeflow.org/pool": "cpu"}
    gpu = {"kubernetes.azure.com/accelerator": "nvidia"}
    toleration = [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    settled(
        ctx,
        config={
            "predictor-node-selector": json.dumps(cpu),
            "gpu-predictor-node-selector": json.dumps(gpu),
            "gpu-predictor-tolerations": json.dumps(toleration),
            "gpus-per-predictor": 2,
        },
    )
    for runtime in kube.of_kind("ClusterServingRuntime"):
        spec = runtime["spec"]
        if runtime["metadata"]["name"].endswith("-gpu"):
            assert spec["nodeSelector"] == gpu and spec["tolerations"] == toleration
            limits = spec["containers"][0]["resources"]["limits"]
            assert limits["nvidia.com/gpu"] == "2"
            assert not any(f.get("autoSelect") for f in spec["supportedModelFormats"])
        else:
            assert spec["nodeSelector"] == cpu and "tolerations" not in spec


@pytest.mark.parametrize("option", sorted(rt.IMAGE_DEFAULTS))
@pytest.mark.parametrize("value", ["", "Not An Image", "registry.example/image:"])
def test_every_image_option_refuses_a_bad_image_naming_the_option(ctx, kube, option, value):
    out = settled(ctx)
    writes = list(kube.writes)
    bad = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={option: value}))
    assert bad.unit_status == ops.BlockedStatus(f"{option}: {value!r} is not an image reference")
    assert kube.writes == writes


@pytest.mark.parametrize("value", [17, -1])
def test_gpus_per_predictor_out_of_range_blocks(ctx, kube, value):
    out = settled(ctx)
    bad = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"gpus-per-predictor": value})
    )
    assert bad.unit_status == ops.BlockedStatus("gpus-per-predictor: must be between 1 and 16")
