"""The whole bundle, every charm's real code, in a simulated model."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import ops
import pytest
import yaml
from bundle.simulator import BUNDLE, Model, SimulationError, load_bundle, simulate
from bundle.workloads import Workloads

OVERLAYS = sorted((BUNDLE.parent / "overlays").glob("*.yaml"))
CASES = [pytest.param([], id="bundle")] + [pytest.param([o], id=o.stem) for o in OVERLAYS]


def _settled(s3_endpoint: str, tmp_path: Path, bundle: dict) -> Model:
    """A bundle of the test's own, simulated for it alone."""
    return simulate(bundle, Workloads(s3_endpoint), tmp_path)


@pytest.fixture
def model(settled_models) -> Iterator[Model]:
    """The settled bundle, shared by the tests that only read it."""
    yield from settled_models.shared()


@pytest.fixture
def own_model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle for the test alone, to change."""
    return settled_models.own(tmp_path)


@pytest.mark.parametrize("overlays", CASES)
def test_bundle_settles_all_active(settled_models, tmp_path, figures, overlays):
    model = settled_models.own(tmp_path, overlays)
    name = overlays[0].stem if overlays else "bundle"
    figures.append(f"{name}: {len(model.hooks)} hooks, settled in {model.settle_seconds:.2f} s")
    assert set(model.apps) >= {"mysql", "minio"}
    for unit, status in model.statuses.items():
        assert status.name == "active", f"{unit}: {status.name}: {status.message}"
    for app, status in model.app_statuses.items():
        assert status.name == "active", f"{app}: {status.name}: {status.message}"
    # A settled model stays put: update-status everywhere changes nothing.
    assert model.update_status_everywhere() == []
    # Every Kubernetes object a charm applied passed the real schemas.
    assert model.workloads.kubernetes.rejected == []


def test_relations_join_matching_interfaces(model: Model):
    assert model.check_interfaces() == []
    assert model.relations, "the bundle relates its applications"
    for record in model.relations.values():
        assert record.app_data[record.apps[0]] or record.app_data[record.apps[1]]


def test_mismatched_relation_is_refused(s3_endpoint, tmp_path):
    bundle = copy.deepcopy(load_bundle(BUNDLE))
    bundle["relations"].append(["mysql:database", "minio:s3-credentials"])
    with pytest.raises(SimulationError, match="differ in interface"):
        _settled(s3_endpoint, tmp_path, bundle)


def test_no_credential_leaves_its_secret(model: Model):
    values = model.secret_values()
    assert len(values) >= 4  # mysql's two passwords, minio's keys, the relation's copy
    assert model.leaks() == []


def test_minios_root_keys_reach_no_relation_and_no_profile(model: Model):
    (root,) = [r for r in model.secrets.values() if r.label == "root-credentials"]
    assert root.owner_app == "minio"
    assert root.grants == {}  # granted to no relation
    keys = {value for value in root.content.values() if len(value) >= 8}
    assert keys
    holders = [
        r.label or r.id
        for r in model.secrets.values()
        if r is not root and keys & set(r.content.values())
    ]
    assert holders == []
    # mysql's backups reach the bucket as a MinIO user of that relation's own.
    (backups,) = [
        r
        for r in model.secrets.values()
        if r.owner_app == "minio"
        and "mysql" in {reader.split("/")[0] for g in r.grants.values() for reader in g}
    ]
    assert backups.content["access-key"].startswith("kf-s3-")


def test_the_credential_scan_reads_plans_and_cluster_objects(own_model: Model):
    model = own_model
    cluster = model.workloads.kubernetes
    (password, *_) = sorted(model.secret_values())
    # A Secret holds credentials by design: not a leak.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "held", "namespace": "kubeflow"},
        "stringData": {"key": password},
    }
    request = httpx.Request(
        "POST", "https://kubernetes.invalid/api/v1/namespaces/kubeflow/secrets", json=secret
    )
    assert cluster.handle(request).status_code == 201
    assert model.leaks() == []
    # A ConfigMap, a Deployment's pod template and a Pebble plan must not.
    (config_map, *_) = cluster.of_kind("ConfigMap")
    meta = config_map["metadata"]
    cluster.edit(
        "ConfigMap",
        meta["name"],
        meta.get("namespace"),
        lambda body: body.setdefault("data", {}).update(leaked=password),
    )
    unit = model.apps["dex"].units[0]
    (container, *_) = unit.state.containers
    layer = ops.pebble.Layer(
        {"services": {"leak": {"override": "replace", "command": f"run --key={password}"}}}
    )
    leaky = dataclasses.replace(container, layers={**container.layers, "leak": layer})
    unit.state = dataclasses.replace(
        unit.state, containers=(set(unit.state.containers) - {container}) | {leaky}
    )
    found = model.leaks()
    where = "/".join(filter(None, [meta.get("namespace"), meta["name"]]))
    assert f"ConfigMap {where}" in found
    assert f"Pebble plan of dex/0 {container.name}" in found


def test_relation_secret_reaches_the_other_side(model: Model):
    (record,) = [r for r in model.relations.values() if r.apps == ("mysql", "minio")]
    (secret,) = [s for s in model.secrets.values() if s.label == f"s3-credentials-{record.id}"]
    assert secret.owner_app == "minio"
    assert record.id in secret.grants
    # mysql's unit has read it, and tracks the latest revision.
    assert secret.tracked == {"mysql/0": secret.revision}


@pytest.mark.parametrize(
    ("app", "options", "message"),
    [
        ("mysql", {"max-connections": 1}, "invalid config: max-connections"),
        ("mysql", {"buffer-pool-size": "huge"}, "invalid config: buffer-pool-size"),
        ("minio", {"mode": "gateway"}, "invalid config: mode"),
        ("minio", {"mode": "external"}, "external-endpoint"),
        ("istio", {"gateway-service-type": "Bogus"}, "gateway-service-type"),
        ("istio", {"gateway-replicas": 0}, "gateway-replicas"),
        ("dex", {"connectors": "- type: [unclosed"}, "connectors"),
        ("oidc-gateway", {"scopes": "profile email"}, "scopes"),
    ],
)
def test_invalid_option_blocks_with_a_message(own_model: Model, app, options, message):
    own_model.set_config(app, **options)
    own_model.settle()
    status = own_model.statuses[f"{app}/0"]
    assert status.name == "blocked"
    assert message in status.message


def test_removing_the_s3_relation_leaves_backups_unavailable(own_model: Model):
    model = own_model
    secrets_before = len(model.secrets)
    model.remove_relation("mysql:s3-parameters", "minio:s3-credentials")
    assert model.statuses["mysql/0"].name == "active"
    assert model.statuses["minio/0"].name == "active"
    assert len(model.secrets) == secrets_before - 1  # minio revoked the relation's secret
    with pytest.raises(SimulationError, match="no S3 storage"):
        model.run_action("mysql/0", "create-backup")


# --- placement on AKS ----------------------------------------------------------------------

AKS = BUNDLE.parent / "overlays" / "aks.yaml"

# The node pools tools/aks-up.sh makes: each node's labels and taints.
AKS_POOLS: dict[str, tuple[dict[str, str], list[tuple[str, str, str]]]] = {
    "system": ({"kubernetes.io/arch": "amd64"}, [("CriticalAddonsOnly", "true", "NoSchedule")]),
    "platform": ({"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "platform"}, []),
    "cpu": ({"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "cpu"}, []),
    "gpu": (
        {"kubernetes.io/arch": "amd64", "kubeflow.org/pool": "gpu"},
        [("sku", "gpu", "NoSchedule")],
    ),
    "arm64": (
        {"kubernetes.io/arch": "arm64", "kubeflow.org/pool": "arm64"},
        [("kubeflow.org/arch", "arm64", "NoSchedule")],
    ),
}


def _juju_placement(constraints: str) -> tuple[dict[str, str], list[tuple[str, str, list[str]]]]:
    """The nodeSelector and required node affinity Juju gives a charm's pod.

    As juju/juju caas/kubernetes/provider/application/constraints.go (commit
    060e1756, ApplyConstraints and processNodeAffinity) makes them: `arch=` becomes the
    nodeSelector kubernetes.io/arch; each `tags=` item `[^][node.]<label>=<v1|v2>`
    a match expression on <label> (In, or NotIn with `^`), the `node.` prefix
    dropped; `pod.` and `anti-pod.` tags are pod affinity, not node placement.
    Juju gives the pod no tolerations.
    """
    selector: dict[str, str] = {}
    expressions: list[tuple[str, str, list[str]]] = []
    for item in constraints.split():
        name, _, value = item.partition("=")
        if name == "arch":
            selector["kubernetes.io/arch"] = value
        elif name == "tags":
            for tag in value.split(","):
                key, _, values = tag.partition("=")
                operator = "NotIn" if key.startswith("^") else "In"
                key = key.removeprefix("^")
                if key.startswith(("pod.", "anti-pod.")):
                    continue
                expressions.append((key.removeprefix("node."), operator, values.split("|")))
    return selector, expressions


def _pools_for(
    selector: dict[str, str], expressions: list[tuple[str, str, list[str]]]
) -> set[str]:
    """The pools a pod with this placement and no tolerations may be scheduled on."""
    fits = set()
    for pool, (labels, taints) in AKS_POOLS.items():
        if taints or any(labels.get(k) != v for k, v in selector.items()):
            continue
        if all((labels.get(k) in vs) == (op == "In") for k, op, vs in expressions):
            fits.add(pool)
    return fits


@pytest.fixture
def aks_model(settled_models) -> Iterator[Model]:
    """The settled bundle with the AKS overlay, shared by the tests that only read it."""
    yield from settled_models.shared([AKS])


def test_aks_overlay_places_every_charm_and_the_gateway_on_the_platform_pool(aks_model: Model):
    assert aks_model.apps.keys() == load_bundle(BUNDLE)["applications"].keys()
    for name, app in aks_model.apps.items():
        assert _pools_for(*_juju_placement(app.constraints)) == {"platform"}, name

    # The gateway is the istio charm's Deployment: placed by its config, not by Juju.
    deployment = aks_model.workloads.kubernetes.get(
        "Deployment", "istio-ingressgateway", "kubeflow"
    )
    pod = deployment["spec"]["template"]["spec"]
    assert "tolerations" not in pod
    assert _pools_for(pod["nodeSelector"], []) == {"platform"}


def test_without_the_overlay_nothing_is_pinned(model: Model):
    for name, app in model.apps.items():
        assert _pools_for(*_juju_placement(app.constraints)) >= {"platform", "cpu"}, name
    deployment = model.workloads.kubernetes.get("Deployment", "istio-ingressgateway", "kubeflow")
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]


def test_overlay_merges_options_onto_the_bundle():
    base = load_bundle(BUNDLE)
    small = load_bundle(BUNDLE, [BUNDLE.parent / "overlays" / "microk8s.yaml"])
    assert base["applications"].keys() == small["applications"].keys()
    assert base["applications"]["mysql"]["charm"] == small["applications"]["mysql"]["charm"]
    assert small["applications"]["mysql"]["options"] != base["applications"]["mysql"]["options"]


def test_removing_a_required_relation_says_what_is_missing(own_model: Model):
    model = own_model
    model.remove_relation(
        "istio:istio-ingress-route-unauthenticated", "oidc-gateway:istio-ingress-route"
    )
    status = model.statuses["oidc-gateway/0"]
    assert status.name in ("blocked", "waiting"), status
    assert "istio-ingress-route" in status.message


def test_dex_runs_untrusted_on_its_mysql_database(model: Model):
    assert model.apps["dex"].trust is False
    (record,) = [r for r in model.relations.values() if set(r.apps) == {"dex", "mysql"}]
    assert record.interface == "mysql_client"
    assert record.endpoints[record.side("dex")] == "relational-db"
    (secret,) = [
        s for s in model.secrets.values() if s.owner_app == "mysql" and record.id in s.grants
    ]
    config = yaml.safe_load(model.container_file("dex/0", "dex", "/etc/dex/config.yaml"))
    storage = config["storage"]
    assert storage["type"] == "mysql"
    assert storage["config"]["database"] == "dex"
    assert storage["config"]["user"] == secret.content["username"]
    assert storage["config"]["password"] == secret.content["password"]
    plan = model.apps["dex"].units[0].state.get_container("dex").plan
    assert secret.content["password"] not in repr(plan)


def test_removing_dexs_database_blocks_dex(own_model: Model):
    own_model.remove_relation("dex:relational-db", "mysql:database")
    assert own_model.statuses["dex/0"].name == "blocked"
    assert own_model.statuses["dex/0"].message == "missing relation relational-db"
