"""The istio charm: istiod under Pebble, cluster objects, config, scale, removal, no-op hooks."""

from __future__ import annotations

import base64
import dataclasses
import json

import ops
import pytest
import yaml
from ops import testing
from unit.istio.helpers import (
    MODEL,
    certificates_secret,
    checks_up,
    container,
    file_text,
    istiod,
    peers,
    route,
    settle,
    state,
    urls,
    virtual_services,
    with_relations,
)

ISTIO_KINDS = {
    "Gateway",
    "VirtualService",
    "DestinationRule",
    "AuthorizationPolicy",
    "RequestAuthentication",
    "PeerAuthentication",
    "EnvoyFilter",
    "ServiceEntry",
    "Sidecar",
    "WorkloadEntry",
    "WorkloadGroup",
    "ProxyConfig",
    "Telemetry",
    "WasmPlugin",
}


def _kinds(kube) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for stored in kube.objects.values():
        kinds.setdefault(stored.body["kind"], []).append(stored.body["metadata"]["name"])
    return kinds


# --- first start ------------------------------------------------------------------------


def test_first_start_makes_certificates_starts_istiod_and_applies_the_mesh(ctx, kube):
    out = ctx.run(ctx.on.pebble_ready(container()), state())

    bundle = istiod.CertificateBundle.from_content(certificates_secret(out).tracked_content)
    c = out.get_container(istiod.CONTAINER)
    service = c.plan.services[istiod.SERVICE]
    assert service.command.startswith("/usr/local/bin/pilot-discovery discovery")
    for flag in ("--meshConfig /etc/istio/config/mesh", "--tlsCertFile", "--caCertFile"):
        assert flag in service.command
    assert service.environment["POD_NAMESPACE"] == MODEL
    assert service.environment["INJECTION_WEBHOOK_CONFIG_NAME"] == ""
    assert c.service_statuses[istiod.SERVICE] == ops.pebble.ServiceStatus.ACTIVE
    assert c.plan.checks[istiod.READY_CHECK].http == {"url": "http://localhost:8080/ready"}
    # istiod's files: its serving certificate, the CA as the mesh CA, the mesh config.
    assert file_text(ctx, out, "/var/run/secrets/istiod/tls/tls.crt") == bundle.tls_cert
    assert file_text(ctx, out, "/var/run/secrets/istiod/tls/tls.key") == bundle.tls_key
    assert file_text(ctx, out, "/etc/cacerts/root-cert.pem") == bundle.ca_cert
    assert file_text(ctx, out, "/etc/cacerts/ca-key.pem") == bundle.ca_key
    mesh = yaml.safe_load(file_text(ctx, out, istiod.MESH_FILE))
    assert mesh["rootNamespace"] == MODEL
    assert mesh["defaultConfig"]["discoveryAddress"] == "istiod.kubeflow.svc:15012"
    assert "extensionProviders" not in mesh
    injection = yaml.safe_load(file_text(ctx, out, "/var/lib/istio/inject/config"))
    assert injection["defaultTemplates"] == ["sidecar"]
    assert "istio-proxy" in injection["templates"]["sidecar"]
    values = json.loads(file_text(ctx, out, "/var/lib/istio/inject/values"))
    assert values["global"]["proxy"]["image"] == "docker.io/istio/proxyv2:1.29.6"

    assert kube.rejected == []
    kinds = _kinds(kube)
    assert len(kinds["CustomResourceDefinition"]) == len(ISTIO_KINDS)
    assert {"Deployment", "Service", "Gateway", "MutatingWebhookConfiguration"} <= set(kinds)
    assert "VirtualService" not in kinds
    # No auth service yet: the gateway denies every path (fail closed).
    (policy,) = kinds["AuthorizationPolicy"]
    assert policy == "istio-ingressgateway-deny-unauthenticated"
    peer = out.get_relation(next(iter(out.relations)).id)
    assert peer.local_app_data["manifest-hash"]


def test_crds_serve_the_versions_the_platform_uses(ctx, kube):
    settle(ctx, state())
    crds = {
        c["spec"]["names"]["kind"]: c["spec"] for c in kube.of_kind("CustomResourceDefinition")
    }
    assert set(crds) == ISTIO_KINDS
    for kind, spec in crds.items():
        served = {v["name"] for v in spec["versions"] if v["served"]}
        storage = [v["name"] for v in spec["versions"] if v["storage"]]
        assert spec["scope"] == "Namespaced"
        if kind == "EnvoyFilter":
            assert served == {"v1alpha3"} and storage == ["v1alpha3"]
        elif kind == "ProxyConfig":
            assert served == {"v1beta1"} and storage == ["v1beta1"]
        elif kind == "Telemetry":
            assert spec["group"] == "telemetry.istio.io"
            assert served == {"v1", "v1alpha1"} and storage == ["v1alpha1"]
        elif kind == "WasmPlugin":
            assert spec["group"] == "extensions.istio.io"
            assert served == {"v1alpha1"} and storage == ["v1alpha1"]
        elif spec["group"] == "networking.istio.io":
            assert served == {"v1", "v1beta1", "v1alpha3"} and storage == ["v1"]
        else:
            assert spec["group"] == "security.istio.io"
            assert served == {"v1", "v1beta1"} and storage == ["v1"]
        for version in spec["versions"]:
            assert version["subresources"] == {"status": {}}
            schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            assert schema["x-kubernetes-preserve-unknown-fields"] is True


def test_webhook_points_at_istiod_with_the_charms_ca(ctx, kube):
    out = settle(ctx, state())
    bundle = istiod.CertificateBundle.from_content(certificates_secret(out).tracked_content)
    (webhook_config,) = kube.of_kind("MutatingWebhookConfiguration")
    hooks = webhook_config["webhooks"]
    assert len(hooks) == 2
    for hook in hooks:
        client = hook["clientConfig"]
        assert client["service"] == {
            "name": "istiod",
            "namespace": MODEL,
            "path": "/inject",
            "port": 443,
        }
        assert base64.b64decode(client["caBundle"]).decode() == bundle.ca_cert
        assert hook["rules"][0]["resources"] == ["pods"]
    selectors = [h["namespaceSelector"]["matchExpressions"][0] for h in hooks]
    assert {"key": "istio-injection", "operator": "In", "values": ["enabled"]} in selectors
    service = kube.get("Service", "istiod", MODEL)
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "istio"}
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports[443] == istiod.WEBHOOK_PORT and ports[15012] == 15012


def test_gateway_deployment_and_service_defaults(ctx, kube):
    settle(ctx, state())
    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    assert deployment["spec"]["replicas"] == 1
    (proxy,) = deployment["spec"]["template"]["spec"]["containers"]
    assert proxy["image"] == "docker.io/istio/proxyv2:1.29.6"
    assert proxy["args"][:2] == ["proxy", "router"]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["CA_ADDR"] == "istiod.kubeflow.svc:15012"
    assert json.loads(env["PROXY_CONFIG"]) == {"discoveryAddress": "istiod.kubeflow.svc:15012"}
    service = kube.get("Service", "istio-ingressgateway", MODEL)
    assert service["spec"]["type"] == "LoadBalancer"
    assert {p["port"] for p in service["spec"]["ports"]} == {80, 443, 15021}
    assert service["metadata"].get("annotations", {}) == {}
    assert "nodeSelector" not in deployment["spec"]["template"]["spec"]
    gateway = kube.get("Gateway", "kubeflow-gateway", MODEL)
    assert [s["port"]["number"] for s in gateway["spec"]["servers"]] == [80]
    assert "tls" not in gateway["spec"]["servers"][0]


def test_the_injection_config_reads_the_same_with_or_without_libyaml():
    # Its text goes into the files' hash in istiod's plan: a different emitter
    # must not change it (and restart istiod).
    class PythonDumper(yaml.SafeDumper):
        pass

    PythonDumper.add_representer(str, istiod._literal)
    text = istiod.injection_config()
    config = yaml.safe_load(text)

    assert yaml.__with_libyaml__  # the charm's hooks use libyaml's emitter
    assert yaml.dump(config, Dumper=PythonDumper, sort_keys=True) == text
    assert config["templates"]["sidecar"] == istiod.SIDECAR_TEMPLATE.read_text()


# --- config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "check"),
    [
        ({"gateway-service-type": "NodePort"}, ("Service", "spec.type", "NodePort")),
        ({"gateway-service-type": "ClusterIP"}, ("Service", "spec.type", "ClusterIP")),
        ({"gateway-replicas": 3}, ("Deployment", "spec.replicas", 3)),
        (
            {
                "gateway-service-annotations": (
                    '{"service.beta.kubernetes.io/azure-dns-label-name": "kf"}'
                )
            },
            (
                "Service",
                "metadata.annotations",
                {"service.beta.kubernetes.io/azure-dns-label-name": "kf"},
            ),
        ),
        (
            {
                "gateway-service-annotations": (
                    "service.beta.kubernetes.io/azure-load-balancer-internal: true\n"
                    "example.com/n: 3"
                )
            },
            (
                "Service",
                "metadata.annotations",
                {
                    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
                    "example.com/n": "3",
                },
            ),
        ),
        (
            {"gateway-node-selector": "kubeflow.org/pool: platform\nexample.com/n: 3"},
            (
                "Deployment",
                "spec.template.spec.nodeSelector",
                {"kubeflow.org/pool": "platform", "example.com/n": "3"},
            ),
        ),
        (
            {"proxy-image": "registry.example.com/istio/proxyv2:1.29.6"},
            ("Deployment", "image", "registry.example.com/istio/proxyv2:1.29.6"),
        ),
    ],
)
def test_valid_config_shapes_the_gateway(ctx, kube, config, check):
    out = settle(ctx, state(config=config))
    assert out.unit_status.name == "active", out.unit_status
    kind, path, wanted = check
    obj = kube.get(kind, "istio-ingressgateway", MODEL)
    if path == "image":
        value = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        values = json.loads(file_text(ctx, out, "/var/lib/istio/inject/values"))
        assert values["global"]["proxy"]["image"] == wanted
    else:
        value = obj
        for part in path.split("."):
            value = value.get(part, {})
    assert value == wanted
    assert kube.rejected == []


def test_external_hostname_is_the_url(ctx, kube):
    base = with_relations(
        state(config={"external-hostname": "kubeflow.example.com"}),
        route("dex", "/dex", auth=False),
    )
    out = settle(ctx, base)
    assert urls(out) == {"dex": "http://kubeflow.example.com"}
    assert out.unit_status == testing.ActiveStatus("http://kubeflow.example.com")


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"gateway-service-type": "ExternalName"}, "gateway-service-type"),
        ({"gateway-replicas": 0}, "gateway-replicas"),
        ({"gateway-replicas": 51}, "gateway-replicas"),
        ({"gateway-service-annotations": "[a, b]"}, "gateway-service-annotations"),
        ({"gateway-service-annotations": "{a: {b: c}}"}, "gateway-service-annotations"),
        ({"gateway-service-annotations": "{'bad key!': x}"}, "gateway-service-annotations"),
        ({"gateway-service-annotations": "{: ["}, "gateway-service-annotations"),
        ({"gateway-node-selector": "[platform]"}, "gateway-node-selector"),
        ({"gateway-node-selector": "{'bad key!': x}"}, "gateway-node-selector"),
        ({"gateway-node-selector": "{kubeflow.org/pool: 'not a value'}"}, "gateway-node-selector"),
        ({"gateway-node-selector": "{kubeflow.org/pool: {a: b}}"}, "gateway-node-selector"),
        ({"gateway-node-selector": f"{{pool: {'a' * 64}}}"}, "gateway-node-selector"),
        ({"gateway-node-selector": "{: ["}, "gateway-node-selector"),
        ({"external-hostname": "https://kubeflow.example.com"}, "external-hostname"),
        ({"external-hostname": "Kubeflow_Example"}, "external-hostname"),
        ({"proxy-image": "istio/proxyv2 1.29"}, "proxy-image"),
        ({"proxy-image": ""}, "proxy-image"),
    ],
)
def test_invalid_config_blocks_naming_the_option_and_applies_nothing(ctx, kube, config, option):
    out = ctx.run(ctx.on.config_changed(), state(config=config))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"invalid config: {option}:")
    assert out.app_status == out.unit_status
    assert kube.writes == []
    assert not out.get_container(istiod.CONTAINER).plan.services
    assert not [s for s in out.secrets if s.label == "istiod-certificates"]


def test_invalid_config_later_changes_nothing(ctx, kube):
    out = settle(ctx, state())
    writes = list(kube.writes)
    plan = out.get_container(istiod.CONTAINER).plan
    broken = dataclasses.replace(out, config={"gateway-replicas": 0})
    out = ctx.run(ctx.on.config_changed(), broken)
    assert out.unit_status.name == "blocked"
    assert kube.writes == writes
    assert out.get_container(istiod.CONTAINER).plan == plan


# --- leadership, container, peers ------------------------------------------------------


def test_non_leader_runs_istiod_with_the_apps_certificates_and_applies_nothing(ctx, kube):
    leader_out = settle(ctx, state())
    secret = certificates_secret(leader_out)
    kube.writes.clear()
    follower = state(leader=False, secrets={secret})
    out = checks_up(ctx.run(ctx.on.config_changed(), follower))
    out = ctx.run(ctx.on.update_status(), out)

    assert kube.writes == []
    bundle = istiod.CertificateBundle.from_content(secret.tracked_content)
    assert file_text(ctx, out, "/var/run/secrets/istiod/tls/tls.crt") == bundle.tls_cert
    assert (
        out.get_container(istiod.CONTAINER).service_statuses[istiod.SERVICE]
        == ops.pebble.ServiceStatus.ACTIVE
    )
    assert out.unit_status == testing.ActiveStatus()


def test_non_leader_waits_for_the_leaders_certificates(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(leader=False))
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to make istiod's certificates"
    )
    assert not out.get_container(istiod.CONTAINER).plan.services
    assert kube.writes == []


def test_container_not_ready_waits_but_the_leader_applies_the_cluster_objects(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(containers={container(can_connect=False)}))
    assert out.unit_status == testing.WaitingStatus("waiting for the istiod container")
    assert kube.get("MutatingWebhookConfiguration", "istio-kubeflow-sidecar-injector") is not None
    assert kube.rejected == []


def test_istiod_not_ready_yet(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())
    c = out.get_container(istiod.CONTAINER)
    down = testing.CheckInfo(
        istiod.READY_CHECK, level=ops.pebble.CheckLevel.READY, status=ops.pebble.CheckStatus.DOWN
    )
    out = dataclasses.replace(
        out, containers={dataclasses.replace(c, check_infos=frozenset({down}))}
    )
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == testing.WaitingStatus("istiod is not ready yet")


def test_without_the_peer_relation_nothing_is_applied(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(relations=set()))
    assert out.unit_status == testing.WaitingStatus("waiting for the peer relation")
    assert kube.writes == []


def test_kubernetes_refusal_blocks_asking_for_trust(ctx, kube, monkeypatch):
    def forbidden(request):
        import httpx

        return httpx.Response(
            403,
            json={
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "message": "no",
                "code": 403,
            },
        )

    monkeypatch.setattr(kube, "handle", forbidden)
    out = ctx.run(ctx.on.config_changed(), state())
    assert out.unit_status == testing.BlockedStatus(
        "not allowed to manage Kubernetes objects: run `juju trust istio --scope=cluster`"
    )
    assert "manifest-hash" not in out.get_relation(next(iter(out.relations)).id).local_app_data


# --- the load balancer's address ---------------------------------------------------------


def test_urls_use_the_load_balancer_address_once_it_has_one(ctx, kube):
    base = with_relations(state(), route("dex", "/dex", auth=False))
    out = settle(ctx, base)
    assert urls(out) == {"dex": "http://istio-ingressgateway.kubeflow.svc.cluster.local"}
    assert out.unit_status.message.endswith("(no load-balancer address yet)")

    kube.get("Service", "istio-ingressgateway", MODEL)["status"] = {
        "loadBalancer": {"ingress": [{"ip": "20.30.40.50"}]}
    }
    out = ctx.run(ctx.on.update_status(), out)
    assert urls(out) == {"dex": "http://20.30.40.50"}
    assert out.unit_status == testing.ActiveStatus("http://20.30.40.50")
    peer = next(r for r in out.relations if r.endpoint == "istio-peers")
    assert peer.local_app_data["gateway-address"] == "20.30.40.50"


# --- removal ---------------------------------------------------------------------------


def test_remove_deletes_everything_the_charm_made(ctx, kube):
    base = with_relations(state(), route("dex", "/dex", auth=False))
    out = settle(ctx, base)
    assert kube.made()
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=0))
    assert kube.made() == {}


def test_a_unit_leaving_deletes_nothing(ctx, kube):
    out = settle(ctx, state())
    count = len(kube.objects)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, planned_units=2))
    assert len(kube.objects) == count


# --- a settled hook changes nothing ------------------------------------------------------


class _Calls:
    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        for name in ("replan", "restart", "add_layer", "push", "start", "stop"):
            original = getattr(ops.Container, name)
            monkeypatch.setattr(ops.Container, name, self._spy(name, original))

    def _spy(self, name, original):
        def spy(container, *args, **kwargs):
            self.calls.append(name)
            return original(container, *args, **kwargs)

        return spy


def test_settled_update_status_writes_nothing(ctx, kube, monkeypatch):
    from unit.istio.helpers import auth_relation

    base = with_relations(
        state(config={"external-hostname": "kf.example.com"}),
        route("dex", "/dex", auth=False),
        route("dashboard", "/", auth=True),
        auth_relation(),
    )
    out = settle(ctx, base)
    writes = list(kube.writes)
    calls = _Calls(monkeypatch)
    again = ctx.run(ctx.on.update_status(), out)

    assert kube.writes == writes
    assert calls.calls == []
    assert again.relations == out.relations
    assert again.secrets == out.secrets
    assert again.unit_status == testing.ActiveStatus("http://kf.example.com")


def test_settled_update_status_takes_the_routes_from_the_record(ctx, kube, charm, monkeypatch):
    # An active leader applied what its last hook read: update-status reads no route relation.
    out = settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    assert out.unit_status.name == "active"
    digests: list[object] = []
    digest = charm.routes.digest
    monkeypatch.setattr(charm.routes, "digest", lambda s: digests.append(s) or digest(s))
    writes = list(kube.writes)

    again = ctx.run(ctx.on.update_status(), out)
    assert digests == []
    assert kube.writes == writes
    assert again.relations == out.relations
    assert again.unit_status == out.unit_status


def test_update_status_after_a_refused_apply_reads_the_routes_again(ctx, kube, monkeypatch):
    out = settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    handle = kube.handle

    def forbidden(request):
        import httpx

        return httpx.Response(403, json={"kind": "Status", "code": 403, "message": "no"})

    monkeypatch.setattr(kube, "handle", forbidden)
    mlflow = route("mlflow", "/mlflow", auth=False)
    out = ctx.run(ctx.on.relation_changed(mlflow), with_relations(out, mlflow))
    assert out.unit_status.name == "blocked"
    assert set(virtual_services(kube)) == {"/dex"}

    # The cluster lets the charm in again (`juju trust`, which no hook announces).
    monkeypatch.setattr(kube, "handle", handle)
    out = ctx.run(ctx.on.update_status(), out)
    assert set(virtual_services(kube)) == {"/dex", "/mlflow"}
    assert out.unit_status.name == "active"


def test_unchanged_inputs_are_not_rendered_again(ctx, kube, charm, monkeypatch):
    out = settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    rendered: list[tuple[str, ...]] = []
    render = charm.render
    monkeypatch.setattr(
        charm, "render", lambda d, names, c: rendered.append(tuple(names)) or render(d, names, c)
    )
    writes = list(kube.writes)

    again = ctx.run(ctx.on.update_status(), out)
    assert rendered == []
    assert again.relations == out.relations

    changed = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"gateway-replicas": 3})
    )
    assert len(rendered) == 2  # both scopes, from the new inputs
    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    assert deployment is not None and deployment["spec"]["replicas"] == 3
    assert len(kube.writes) > len(writes)
    peer = next(r for r in changed.relations if r.endpoint == "istio-peers")
    assert peer.local_app_data["manifest-inputs"] != peers_data(out)["manifest-inputs"]


def test_upgrade_renders_and_reapplies_unchanged_inputs(ctx, kube, charm, monkeypatch):
    out = settle(ctx, state())
    rendered: list[tuple[str, ...]] = []
    render = charm.render
    monkeypatch.setattr(
        charm, "render", lambda d, names, c: rendered.append(tuple(names)) or render(d, names, c)
    )
    kube.delete_made()
    ctx.run(ctx.on.upgrade_charm(), out)
    assert len(rendered) == 2
    assert kube.get("Deployment", "istio-ingressgateway", MODEL) is not None


def peers_data(out: testing.State) -> dict[str, str]:
    return next(r for r in out.relations if r.endpoint == "istio-peers").local_app_data


def test_upgrade_reapplies_even_when_unchanged(ctx, kube):
    out = settle(ctx, state())
    kube.delete_made()
    ctx.run(ctx.on.upgrade_charm(), out)
    assert kube.get("Deployment", "istio-ingressgateway", MODEL) is not None
    assert kube.rejected == []


def test_peer_relation_state_is_kept_by_the_leader(ctx, kube):
    out = settle(ctx, with_relations(state(), route("dex", "/dex", auth=False)))
    peer = next(r for r in out.relations if r.endpoint == "istio-peers")
    (served,) = json.loads(peer.local_app_data["served-routes"])
    assert served["routes"][0]["matches"][0]["path"] == "/dex"
    assert isinstance(peers(), testing.PeerRelation)
