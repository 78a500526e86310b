"""knative-serving against Knative Serving v1.16.2 and net-istio v1.16.0.

The Pebble layers, the data path's Deployments and Services, the webhooks,
ConfigMaps, CRDs and RBAC the charm renders, compared with the release
YAMLs Kubeflow 1.10.0 vendors and the knative/pkg code that reads the
environment (tests/conformance/facts/knative-serving.yaml says where).
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from charm_loader import CHARMS
from conformance import facts
from unit.knative_serving.helpers import knative_cluster as cluster
from unit.knative_serving.helpers import knative_config
from unit.knative_serving.helpers import workloads as wl

from kubeflow_charms.certificates import CertificateBundle

FACTS = facts.load("knative-serving")
PKG = FACTS["knative-pkg"]
META = yaml.safe_load((CHARMS / "knative-serving" / "charmcraft.yaml").read_text())
APP, NS = "knative-serving", "kubeflow"
GATEWAY = cluster.IstioGateway("kubeflow", "kubeflow-gateway", "istio-ingressgateway")
CONFIG = knative_config.KnativeConfig()
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
BUNDLE = CertificateBundle(
    ca_cert="ca",
    ca_key="ca-key",
    tls_cert="cert",
    tls_key="key",
    ca_serial="1",
    serial="2",
    ca_not_before=NOW,
    ca_not_after=NOW,
    not_before=NOW,
    not_after=NOW,
)
UNDER_PEBBLE = {"controller": wl.CONTROLLER, "webhook": wl.WEBHOOK}
UNDER_PEBBLE["net-istio-webhook"] = wl.NET_ISTIO_WEBHOOK
DEPLOYED = ("activator", "autoscaler", "net-istio-controller")


def _objects(scope: str) -> list[dict]:
    context = cluster.context(
        CONFIG, BUNDLE, app=APP, namespace=NS, leader=f"{APP}-0", gateway=GATEWAY
    )
    return context[scope.replace("-", "_")]


def _one(scope: str, kind: str, name: str) -> dict:
    (found,) = [o for o in _objects(scope) if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("workload", "resource"), [(n, f"{n}-image") for n in UNDER_PEBBLE])
def test_the_pebble_images_are_the_releases(workload, resource):
    fact = FACTS[workload]["image"]
    assert META["resources"][resource]["upstream-source"] == fact.value, str(fact.source)


@pytest.mark.parametrize(
    ("workload", "option"),
    [(n, f"{n}-image") for n in DEPLOYED] + [("queue-proxy", "queue-proxy-image")],
)
def test_the_image_options_default_to_the_releases(workload, option):
    default = META["config"]["options"][option]["default"]
    assert default == FACTS[workload]["image"].value, str(FACTS[workload]["image"].source)


# --- Pebble layers -------------------------------------------------------------------------------


def _service(workload: wl.Workload) -> dict:
    layer = wl.layer(workload, leader=True, namespace=NS, pod=f"{APP}-0")
    return layer["services"][workload.service]


@pytest.mark.parametrize("name", sorted(UNDER_PEBBLE))
def test_each_process_runs_kos_entrypoint_with_upstreams_environment(name):
    workload = UNDER_PEBBLE[name]
    service = _service(workload)
    assert service["command"] == FACTS[name]["entrypoint"].value
    upstream = FACTS[name]["env"].value
    env = service["environment"]
    # Every variable upstream sets, with its value; fieldRefs become what they read.
    assert set(upstream) <= set(env), str(FACTS[name]["env"].source)
    for key, value in upstream.items():
        if isinstance(value, dict):
            assert value["fieldRef"] in ("metadata.namespace", "metadata.name"), key
        elif key != "WEBHOOK_PORT":
            assert env[key] == value, key
    assert env[PKG["system-namespace-env"].value] == NS
    # Only the variables knative/pkg reads to move the ports apart are added.
    added = set(env) - set(upstream)
    ports = {PKG["metrics-port-env"].value["name"], PKG["profiling-port-env"].value["name"]}
    assert added == ports


def test_the_ports_in_the_pod_are_apart_and_the_controller_keeps_its_probes():
    bound: list[int] = []
    for name, workload in UNDER_PEBBLE.items():
        env = _service(workload)["environment"]
        bound += [int(env["METRICS_PROMETHEUS_PORT"]), int(env["PROFILING_PORT"])]
        if "WEBHOOK_PORT" in env:
            assert PKG["webhook-port-env"].value == "WEBHOOK_PORT"
            bound.append(int(env["WEBHOOK_PORT"]))
            assert env[PKG["webhook-name-env"].value] == FACTS[name]["env"].value["WEBHOOK_NAME"]
    health = PKG["health-port"].value
    assert FACTS["controller"]["ports"].value["probes"] == health
    bound.append(health)
    assert len(bound) == len(set(bound)), bound
    check = wl.layer(wl.CONTROLLER, leader=True, namespace=NS, pod="p")["checks"]
    assert check[wl.CONTROLLER.check]["http"]["url"] == f"http://localhost:{health}/readiness"
    assert FACTS["controller"]["readinessProbe"].value["httpGet"]["path"] == "/readiness"


# --- the data path's Deployments -----------------------------------------------------------------


@pytest.mark.parametrize("name", DEPLOYED)
def test_the_data_path_deployments_are_upstreams(name):
    deployment = _one("data-path", "Deployment", name)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    upstream = FACTS[name]
    assert container["image"] == upstream["image"].value
    assert "args" not in container and "command" not in container
    env = {
        e["name"]: e.get(
            "value", {"fieldRef": e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")}
        )
        for e in container["env"]
    }
    assert env == upstream["env"].value, str(upstream["env"].source)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == upstream["ports"].value, str(upstream["ports"].source)
    assert container["readinessProbe"] == upstream["readinessProbe"].value
    assert container["livenessProbe"] == upstream["livenessProbe"].value
    assert container["securityContext"] == upstream["security-context"].value
    assert container["resources"] == upstream["resources"].value
    shape = upstream["deployment"].value
    assert spec["selector"]["matchLabels"] == shape["selector"]
    for key in ("replicas", "strategy"):
        assert spec.get(key) == shape.get(key), key
    if "termination-grace-period" in upstream:
        assert pod["terminationGracePeriodSeconds"] == upstream["termination-grace-period"].value
    if "affinity" in upstream:
        assert pod["affinity"] == upstream["affinity"].value
    # Upstream runs the autoscaler and net-istio's controller as `controller`, the activator as
    # `activator`: ours are named after the application, the same split.
    account = upstream["service-account"].value
    expected = cluster.activator_account(APP) if account == "activator" else None
    assert pod["serviceAccountName"] == (expected or cluster.controller_account(APP))


def test_the_activator_scales_and_is_protected_as_upstream():
    assert (
        _one("data-path", "HorizontalPodAutoscaler", "activator")["spec"]
        == FACTS["activator"]["hpa"].value
    )
    pdb = _one("data-path", "PodDisruptionBudget", "activator-pdb")["spec"]
    assert pdb == FACTS["activator"]["pdb"].value


@pytest.mark.parametrize("name", ["activator-service", "autoscaler"])
def test_the_data_path_services_are_upstreams(name):
    upstream = FACTS["services"][name].value
    service = _one("data-path", "Service", name)
    assert service["spec"]["selector"] == upstream["selector"]
    assert service["spec"]["ports"] == upstream["ports"], str(FACTS["services"][name].source)


# --- webhooks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTS["webhooks"]))
def test_the_webhook_configurations_own_only_upstreams_static_fields(name):
    upstream = FACTS["webhooks"][name].value
    configuration = _one("webhooks", upstream["kind"], name)
    (hook,) = configuration["webhooks"]
    assert hook["name"] == upstream["name"]
    assert hook["clientConfig"]["service"]["name"] == upstream["service"]
    for key in ("admissionReviewVersions", "failurePolicy", "sideEffects", "timeoutSeconds"):
        assert hook.get(key) == upstream.get(key), key
    assert hook.get("objectSelector") == upstream.get("objectSelector")
    # Knative's webhook sets these itself (knative/pkg webhook reconcilers).
    for key in ("rules", "namespaceSelector", "reinvocationPolicy"):
        assert key not in hook
    assert set(hook["clientConfig"]) == {"service"}
    assert "path" not in hook["clientConfig"]["service"]


@pytest.mark.parametrize("name", ["webhook", "net-istio-webhook"])
def test_the_webhook_services_and_secrets_have_upstreams_names_and_keys(name):
    upstream = FACTS["services"][name].value
    service = _one("webhooks", "Service", name)
    (port,) = service["spec"]["ports"]
    (https,) = [p for p in upstream["ports"] if p["name"] == "https-webhook"]
    assert port["port"] == https["port"] == 443
    assert port["targetPort"] == UNDER_PEBBLE[name].webhook_port
    secret = _one("webhooks", "Secret", FACTS["webhook-names"][f"{name}-secret"].value)
    assert sorted(secret["data"]) == sorted(PKG["secret-keys"].value)


def test_the_certificates_name_the_services_the_webhooks_serve_as():
    # The serving webhook takes its service name from WEBHOOK_NAME; net-istio's is compiled in.
    assert wl.WEBHOOK.service == FACTS["webhook"]["env"].value["WEBHOOK_NAME"]
    net_istio = FACTS["webhook-names"]["net-istio-webhook-service"]
    assert wl.NET_ISTIO_WEBHOOK.service == net_istio.value, str(net_istio.source)
    names = {o["metadata"]["name"] for o in _objects("webhooks") if o["kind"] == "Service"}
    assert names == {wl.WEBHOOK.service, wl.NET_ISTIO_WEBHOOK.service}


# --- config --------------------------------------------------------------------------------------


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    matched = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] in ("In", "Exists"), expression
        value = labels.get(expression["key"])
        if expression["operator"] == "Exists":
            matched = matched and value is not None
        else:
            matched = matched and value in expression["values"]
    return matched


def test_every_configmap_is_made_and_no_config_webhook_gates_its_writes():
    made = {c["metadata"]["name"]: c for c in _objects("config")}
    upstream = FACTS["configmap-components"]
    # config-certmanager is only read with cert-manager's TLS, which the charm does not use.
    assert set(made) == set(upstream) - {"config-certmanager"}
    # Knative reads them by name: its watcher filters by no label unless told to.
    for workload in wl.WORKLOADS:
        env = _service(workload)["environment"]
        assert PKG["configmap-watch-label-env"].value not in env
    # Upstream's labels would put every write behind the config webhooks (failurePolicy
    # Fail), which are down while the charm's pod restarts and point at the old leader after
    # a leadership change: the charm writes the ConfigMaps in both cases.
    configs = (
        "config.webhook.serving.knative.dev",
        "config.webhook.istio.networking.internal.knative.dev",
    )
    for name, configmap in made.items():
        labels = configmap["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "knative-serving"
        upstream_labels = labels | {"app.kubernetes.io/component": upstream[name].value}
        selected = False
        for hook in configs:
            selector = FACTS["webhooks"][hook].value["objectSelector"]
            assert not _selects(selector, labels), (name, hook)
            selected = selected or _selects(selector, upstream_labels)
        assert selected, name  # each would be gated with upstream's label
        assert "_example" not in configmap["data"]


KEYS = FACTS["config-keys"]


def _data(name: str) -> dict[str, str]:
    return _one("config", "ConfigMap", name)["data"]


def test_config_istio_names_both_gateways_in_the_old_format():
    external = KEYS["config-istio-gateway-prefix"].value
    local = KEYS["config-istio-local-gateway-prefix"].value
    assert _data("config-istio") == {
        f"{external}{GATEWAY.namespace}.{GATEWAY.name}": (
            f"{GATEWAY.service}.{GATEWAY.namespace}.svc.cluster.local"
        ),
        f"{local}{NS}.{cluster.LOCAL_GATEWAY}": (
            f"{cluster.LOCAL_GATEWAY}.{GATEWAY.namespace}.svc.cluster.local"
        ),
    }


def test_config_domain_makes_the_option_the_default_domain():
    assert _data("config-domain") == {CONFIG.domain: KEYS["config-domain-default"].value}


def test_the_other_config_keys_are_the_ones_knative_reads():
    assert _data("config-network") == KEYS["config-network-ingress-class"].value
    assert set(_data("config-features")) == set(KEYS["config-features-podspec-keys"].value)
    assert set(_data("config-features").values()) == {"enabled"}
    assert set(_data("config-autoscaler")) == set(KEYS["config-autoscaler-keys"].value)
    deployment = _data("config-deployment")
    assert set(deployment) == {
        KEYS["config-deployment-queue-image-key"].value,
        KEYS["config-deployment-progress-deadline-key"].value,
    }
    queue = deployment[KEYS["config-deployment-queue-image-key"].value]
    assert queue == FACTS["queue-proxy"]["image"].value


# --- the local gateway ---------------------------------------------------------------------------


def test_the_local_gateway_and_its_service_are_upstreams():
    gateway = _one("gateway", "Gateway", cluster.LOCAL_GATEWAY)
    assert gateway["spec"] == FACTS["local-gateway"]["gateway"].value
    upstream = FACTS["services"]["knative-local-gateway"].value
    service = _one("gateway", "Service", cluster.LOCAL_GATEWAY)
    assert service["spec"]["selector"] == upstream["selector"]
    assert service["metadata"]["labels"] == upstream["labels"]
    # Plain HTTP only: upstream's 443 -> 8444 has no Gateway server behind it here.
    assert service["spec"]["ports"] == [p for p in upstream["ports"] if p["name"] == "http2"]


# --- CRDs ----------------------------------------------------------------------------------------


def _crds() -> dict[str, dict]:
    text = (CHARMS / "knative-serving" / "src" / "manifests" / "crds.yaml").read_text()
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(text)}


def test_the_crds_are_upstreams_kinds():
    crds = _crds()
    assert set(crds) == set(FACTS["crds"])
    for name, fact in FACTS["crds"].items():
        spec, upstream = crds[name]["spec"], fact.value
        assert spec["scope"] == upstream["scope"], name
        assert spec["names"]["kind"] == upstream["kind"], name
        assert spec["names"].get("shortNames", []) == upstream["shortNames"], name
        assert spec["names"]["categories"] == upstream["categories"], name
        versions = [
            {
                "name": v["name"],
                "served": v["served"],
                "storage": v["storage"],
                "subresources": sorted(v.get("subresources", {})),
                "printerColumns": [c["name"] for c in v.get("additionalPrinterColumns", [])],
            }
            for v in spec["versions"]
        ]
        assert versions == upstream["versions"], name


# --- RBAC ----------------------------------------------------------------------------------------


def _rules(name: str) -> list[dict]:
    return FACTS["rbac"][name].value


def test_the_control_plane_gets_what_knative_serving_admin_aggregates():
    aggregated = _rules("knative-serving-core") + _rules("knative-serving-activator-cluster")
    aggregated += _rules("knative-serving-istio") + _rules("knative-serving-addressable-resolver")
    role = _one("rbac", "ClusterRole", f"{APP}-{NS}-admin")
    assert role["rules"] == aggregated
    binding = _one("rbac", "ClusterRoleBinding", f"{APP}-{NS}-admin")
    accounts = {s["name"] for s in binding["subjects"]}
    assert accounts == {APP, cluster.controller_account(APP)}


def test_the_activator_gets_upstreams_roles_and_no_more():
    role = _one("rbac", "ClusterRole", f"{APP}-{NS}-activator")
    assert role["rules"] == _rules("knative-serving-activator-cluster")
    assert _one("rbac", "Role", f"{APP}-activator")["rules"] == _rules("knative-serving-activator")
    bindings = [o for o in _objects("rbac") if o["kind"].endswith("Binding")]
    for binding in bindings:
        subjects = {s["name"] for s in binding["subjects"]}
        if cluster.activator_account(APP) in subjects:
            assert binding["roleRef"]["name"] in (f"{APP}-{NS}-activator", f"{APP}-activator")


@pytest.mark.parametrize("role", ["admin", "edit", "view"])
def test_users_get_upstreams_namespaced_roles_through_kubeflows_roles(role):
    upstream = FACTS["rbac"][f"knative-serving-namespaced-{role}"]
    made = _one("rbac", "ClusterRole", f"knative-serving-namespaced-{role}")
    assert made["rules"] == upstream.value["rules"], str(upstream.source)
    labels = made["metadata"]["labels"]
    assert labels[upstream.value["aggregate-to"]] == "true"
    assert labels[FACTS["rbac"]["kubeflow-aggregation"].value[role]] == "true"
