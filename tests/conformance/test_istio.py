"""The istio charm against Istio 1.29.6: istiod's command, files and ports, the gateway, the CRDs.

The charm runs under ops.testing against the fake cluster (as its unit tests
do); the Pebble plan, the files it writes into istiod's container and the
objects it applies are compared with the facts in facts/istio.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from charm_loader import CHARMS
from conformance import facts
from ops import testing
from unit.istio.helpers import CHARM, FILES, MODEL, auth_relation, file_text, istiod, settle, state

FACTS = facts.load("istio")
ISTIOD = FACTS["istiod"]
GATEWAY = FACTS["ingress-gateway"]
SIDECAR = FACTS["sidecar"]
INGRESS = FACTS["kube-ingress"]
CRDS = FACTS["crds"]
METADATA = yaml.safe_load((CHARMS / "istio" / "charmcraft.yaml").read_text())
SIDECAR_TEMPLATE = CHARMS / "istio" / "src" / "templates" / "sidecar-injection.gotmpl"


@dataclasses.dataclass
class Settled:
    """The charm after it settled: its context, state and the cluster it wrote to."""

    ctx: testing.Context
    out: testing.State
    kube: FakeKubernetes

    def file(self, path: str) -> str:
        return file_text(self.ctx, self.out, path)


@pytest.fixture(scope="module")
def settled(tmp_path_factory) -> Iterator[Settled]:
    """The charm settled with a login provider related (so the ext_authz provider is set)."""
    FILES["root"] = tmp_path_factory.mktemp("istiod")
    ctx = testing.Context(CHARM.IstioCharm)
    with routed_lightkube(FakeKubernetes()) as kube:
        out = settle(ctx, state(relations={*state().relations, auth_relation()}))
        assert kube.rejected == []
        yield Settled(ctx, out, kube)
    FILES.clear()


def _service(settled: Settled) -> Any:
    return settled.out.get_container(istiod.CONTAINER).plan.services[istiod.SERVICE]


def _command_flags(command: str) -> tuple[list[str], dict[str, str]]:
    """A command line's words before its first flag, and its flags (`--a b` or `--a=b`)."""
    words = command.split()
    positional: list[str] = []
    flags: dict[str, str] = {}
    i = 0
    while i < len(words) and not words[i].startswith("--"):
        positional.append(words[i])
        i += 1
    while i < len(words):
        name, eq, value = words[i][2:].partition("=")
        if not eq and i + 1 < len(words) and not words[i + 1].startswith("--"):
            value = words[i + 1]
            i += 1
        flags[name] = value
        i += 1
    return positional, flags


# --- istiod ------------------------------------------------------------------------------


def test_istiod_image_is_the_released_pilot_image():
    fact = ISTIOD["image"]
    upstream = METADATA["resources"]["istiod-image"]["upstream-source"]
    assert upstream == fact.value, f"image: {fact.source}"
    name = ISTIOD["image-name"]
    assert upstream.rpartition(":")[0].endswith("/" + name.value), f"image-name: {name.source}"


def test_istiod_command_is_pilot_discovery_with_known_flags(settled):
    positional, flags = _command_flags(_service(settled).command)
    entry, sub = ISTIOD["entrypoint"], ISTIOD["subcommand"]
    assert positional == [entry.value, sub.value], f"entrypoint {entry.source}, {sub.source}"
    known = {
        *ISTIOD["flags"].value,
        *ISTIOD["log-flags"].value,
        *ISTIOD["keepalive-flags"].value,
    }
    sources = ", ".join(str(ISTIOD[k].source) for k in ("flags", "log-flags", "keepalive-flags"))
    unknown = sorted(set(flags) - known)
    # istiod ignores unknown flags: a misspelt one would silently not apply.
    assert unknown == [], f"flags pilot-discovery does not define: {unknown} ({sources})"


def test_istiod_gets_the_charts_flag_values(settled):
    _, ours = _command_flags(_service(settled).command)
    _, chart = _command_flags(" ".join(ISTIOD["args"].value))
    for name, value in chart.items():
        assert ours.get(name) == value, f"--{name} {value}: {ISTIOD['args'].source}"


def test_istiod_listens_where_its_service_and_checks_point(settled):
    ports = ISTIOD["ports"]
    _, flags = _command_flags(_service(settled).command)
    for flag in ("httpAddr", "httpsAddr", "grpcAddr", "secureGRPCAddr"):
        assert flag not in flags, f"--{flag} left at its default: {ports.source}"
    assert flags["monitoringAddr"] == f":{ports.value['monitoringAddr']}", str(ports.source)
    assert istiod.XDS_PORT == ports.value["secureGRPCAddr"], str(ports.source)
    assert istiod.WEBHOOK_PORT == ports.value["httpsAddr"], str(ports.source)
    ready = ISTIOD["ready-endpoint"]
    check = settled.out.get_container(istiod.CONTAINER).plan.checks[istiod.READY_CHECK]
    assert check.http == {"url": f"http://localhost:{ready.value['port']}{ready.value['path']}"}, (
        f"ready endpoint: {ready.source}"
    )
    assert ready.value["port"] == ports.value["httpAddr"], str(ports.source)

    service = settled.kube.get("Service", "istiod", MODEL)
    svc = ISTIOD["service-ports"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == svc.value, str(svc.source)
    listening = set(ports.value.values())
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in listening, f"{port['name']} targets a port istiod serves"


def test_istiod_environment_is_read_by_istiod(settled):
    env = dict(_service(settled).environment)
    keys = (
        "env-features",
        "env-experimental",
        "env-bootstrap",
        "env-ca",
        "env-chart",
        "env-ingress",
    )
    known = {name for key in keys for name in ISTIOD[key].value}
    # CHARM_FILES_HASH is ours: a changed file changes the plan, which restarts istiod.
    unknown = sorted(set(env) - known - {"CHARM_FILES_HASH"})
    sources = ", ".join(str(ISTIOD[k].source) for k in keys)
    assert unknown == [], f"environment istiod never reads: {unknown} ({sources})"
    provider = ISTIOD["cert-provider"]
    assert env["PILOT_CERT_PROVIDER"] == provider.value, str(provider.source)
    # Set and empty: istiod leaves the webhook's caBundle to the charm.
    features = ISTIOD["env-features"]
    assert env["INJECTION_WEBHOOK_CONFIG_NAME"] == "", str(features.source)
    assert env["VALIDATION_WEBHOOK_CONFIG_NAME"] == "", str(features.source)


def _absolute(settled: Settled, relative: str) -> str:
    """A path istiod names relative to its working directory, as it resolves in our plan."""
    return posixpath.normpath(posixpath.join(_service(settled).working_dir, relative))


def test_istiod_finds_its_files_where_it_looks(settled):
    env = dict(_service(settled).environment)
    cacerts = ISTIOD["cacerts-dir"]
    ca_dir = env.get("ROOT_CA_DIR") or _absolute(settled, cacerts.value)
    assert ca_dir == istiod.CACERTS_DIR, str(cacerts.source)
    files = ISTIOD["cacerts-files"]
    for name in files.value:
        assert settled.file(f"{ca_dir}/{name}").startswith("-----BEGIN"), str(files.source)

    inject = ISTIOD["injection-dir"]
    assert _absolute(settled, inject.value) == istiod.INJECT_DIR, str(inject.source)
    names = ISTIOD["injection-files"]
    for name in names.value:
        assert settled.file(f"{istiod.INJECT_DIR}/{name}"), str(names.source)

    _, flags = _command_flags(_service(settled).command)
    tls = ISTIOD["tls-files"]
    wanted = [_absolute(settled, p) for p in tls.value]
    assert [flags["tlsCertFile"], flags["tlsKeyFile"], flags["caCertFile"]] == wanted, str(
        tls.source
    )
    for path in wanted:
        assert settled.file(path).startswith("-----BEGIN"), str(tls.source)


def test_injection_config_uses_the_injectors_keys(settled):
    config = yaml.safe_load(settled.file(f"{istiod.INJECT_DIR}/config"))
    keys = ISTIOD["injection-config-keys"]
    assert set(config) <= set(keys.value), (
        f"{sorted(set(config) - set(keys.value))}: {keys.source}"
    )
    policies = ISTIOD["injection-policies"]
    assert config["policy"] in policies.value, str(policies.source)
    assert set(config["defaultTemplates"]) <= set(config["templates"])


def test_mesh_config_uses_meshconfig_fields(settled):
    mesh = yaml.safe_load(settled.file(istiod.MESH_FILE))
    for key, part in (
        ("mesh-config-keys", mesh),
        ("proxy-config-keys", mesh["defaultConfig"]),
        ("extension-provider-keys", mesh["extensionProviders"][0]),
        ("ext-authz-http-keys", mesh["extensionProviders"][0]["envoyExtAuthzHttp"]),
    ):
        fact = ISTIOD[key]
        unknown = sorted(set(part) - set(fact.value))
        # istiod drops unknown mesh config keys without a word.
        assert unknown == [], f"{key}: {unknown} are no fields of {fact.source}"
    _, flags = _command_flags(_service(settled).command)
    assert flags["meshConfig"] == istiod.MESH_FILE


def test_webhook_reaches_the_injector(settled):
    (config,) = settled.kube.of_kind("MutatingWebhookConfiguration")
    fact = ISTIOD["webhook"]
    handler = ISTIOD["webhook-handler"]
    ports = {
        p["port"]: p["targetPort"]
        for p in settled.kube.get("Service", "istiod", MODEL)["spec"]["ports"]
    }
    for hook in config["webhooks"]:
        service = hook["clientConfig"]["service"]
        assert service["name"] == fact.value["service"], str(fact.source)
        assert service["port"] == fact.value["port"], str(fact.source)
        assert service["path"] == fact.value["path"] == handler.value, str(handler.source)
        assert ports[service["port"]] == ISTIOD["ports"].value["httpsAddr"]
        for key in (
            "admissionReviewVersions",
            "sideEffects",
            "failurePolicy",
            "reinvocationPolicy",
        ):
            assert hook[key] == fact.value[key], f"{key}: {fact.source}"


# --- Kubernetes Ingress (KServe's per-InferenceService routes) ----------------------------


def test_istiod_serves_the_ingress_class_kserve_names(settled):
    mesh = yaml.safe_load(settled.file(istiod.MESH_FILE))
    kserve = INGRESS["kserve-ingress-class"]
    assert mesh["ingressClass"] == kserve.value, str(kserve.source)
    modes = ISTIOD["ingress-controller-modes"]
    assert mesh["ingressControllerMode"] in modes.value, str(modes.source)
    mode = INGRESS["controller-mode"]
    assert mesh["ingressControllerMode"] == mode.value, str(mode.source)
    # STRICT serves an Ingress without the annotation only through its IngressClass.
    (ingress_class,) = settled.kube.of_kind("IngressClass")
    assert ingress_class["metadata"]["name"] == kserve.value, str(kserve.source)
    controller = INGRESS["ingress-class-controller"]
    assert ingress_class["spec"]["controller"] == controller.value, str(controller.source)


def test_the_ingress_gateway_and_status_are_ours(settled):
    mesh = yaml.safe_load(settled.file(istiod.MESH_FILE))
    env = dict(_service(settled).environment)
    status = INGRESS["status-from-service"]
    namespace = env[status.value["namespace"]]
    assert namespace == MODEL, str(ISTIOD["env-ingress"].source)
    service = settled.kube.get("Service", mesh[status.value["service"]], namespace)
    assert service is not None, str(status.source)
    selector = INGRESS["gateway-selector"]
    deployment = settled.kube.get("Deployment", "istio-ingressgateway", MODEL)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[selector.value["label"]] == mesh[selector.value["from"]], str(selector.source)
    # The values set are Istio's defaults (an unset ingressSelector selects the same pods).
    defaults = INGRESS["mesh-defaults"]
    for key, value in defaults.value.items():
        assert mesh[key] == value, f"{key}: {defaults.source}"


def test_istiods_account_may_do_what_the_charts_clusterrole_grants(settled):
    """The trusted charm's account runs istiod: no ClusterRole of the charm limits it."""
    fact = INGRESS["rbac"]
    resources = {r for rule in fact.value for r in rule["resources"]}
    assert {"ingresses", "ingressclasses", "ingresses/status"} <= resources, str(fact.source)
    # istiod runs in the charm's pod as the application's account, the one `juju trust`
    # grants everything; the charm binds it to no narrower ClusterRole.
    env = dict(_service(settled).environment)
    assert env["SERVICE_ACCOUNT"] == METADATA["name"]
    assert settled.kube.of_kind("ClusterRole") == [], f"{fact.source}: {fact.note}"


# --- the ingress gateway -----------------------------------------------------------------


def _gateway_container(settled: Settled) -> dict[str, Any]:
    deployment = settled.kube.get("Deployment", "istio-ingressgateway", MODEL)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_gateway_image_is_the_released_proxy_image():
    fact = GATEWAY["image"]
    default = METADATA["config"]["options"]["proxy-image"]["default"]
    assert default == fact.value, f"proxy-image: {fact.source}"
    name = GATEWAY["image-name"]
    assert default.rpartition(":")[0].endswith("/" + name.value), str(name.source)
    tag = ISTIOD["image"].value.rpartition(":")[2]
    assert default.rpartition(":")[2] == tag, "the proxy and istiod come from one release"


def test_gateway_runs_the_agent_as_a_router(settled):
    container = _gateway_container(settled)
    assert "command" not in container, f"the image's entrypoint: {GATEWAY['entrypoint'].source}"
    args = GATEWAY["args"]
    assert container["args"][: len(args.value)] == args.value, str(args.source)
    types = GATEWAY["node-types"]
    assert container["args"][1] in types.value, str(types.source)
    flags = {a[2:].partition("=")[0] for a in container["args"] if a.startswith("--")}
    known = {*GATEWAY["agent-flags"].value, *ISTIOD["log-flags"].value}
    assert flags <= known, f"{sorted(flags - known)}: {GATEWAY['agent-flags'].source}"


def test_gateway_environment(settled):
    names = {e["name"] for e in _gateway_container(settled)["env"]}
    env, unpriv = GATEWAY["env"], GATEWAY["unprivileged-pod"]
    extra = sorted(names - set(env.value) - {unpriv.value})
    assert extra == [], f"{extra}: not in {env.source} nor {unpriv.source}"
    left_out = {
        "ISTIO_META_POD_PORTS",
        "ISTIO_META_APP_CONTAINERS",
        "ISTIO_META_INTERCEPTION_MODE",
    }
    missing = sorted(set(env.value) - names - left_out)
    assert missing == [], f"{missing}: set by {env.source}"


def test_gateway_ports_probe_and_service(settled):
    container = _gateway_container(settled)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    fact = GATEWAY["container-ports"]
    for name, port in fact.value.items():
        assert ports.get(name) == port, str(fact.source)
    probe = GATEWAY["readiness"]
    http = container["readinessProbe"]["httpGet"]
    assert (http["path"], http["port"]) == (probe.value["path"], probe.value["port"]), str(
        probe.source
    )
    assert container["readinessProbe"]["timeoutSeconds"] == probe.value["timeoutSeconds"], str(
        probe.source
    )

    service = settled.kube.get("Service", "istio-ingressgateway", MODEL)
    svc = GATEWAY["service-ports"]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == svc.value, str(svc.source)
    # Every Service port reaches a port the proxy listens on: the status port as upstream,
    # 80 and 443 the unprivileged listeners the Gateway's servers are translated to.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[GATEWAY["unprivileged-pod"].value] == "true", str(
        GATEWAY["unprivileged-pod"].source
    )
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports.values()
        if port["name"] == "status-port":
            assert port["targetPort"] == probe.value["port"], str(probe.source)
        else:
            assert port["targetPort"] >= 1024, "unprivileged: 1337 cannot bind below 1024"


def test_gateway_volumes(settled):
    deployment = settled.kube.get("Deployment", "istio-ingressgateway", MODEL)
    pod = deployment["spec"]["template"]["spec"]
    container = _gateway_container(settled)
    mounts = GATEWAY["volume-mounts"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == mounts.value, str(
        mounts.source
    )
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == set(mounts.value), str(mounts.source)
    (token,) = volumes["istio-token"]["projected"]["sources"]
    fact = GATEWAY["token"]
    assert token["serviceAccountToken"] == fact.value, str(fact.source)
    ca = GATEWAY["ca-configmap"]
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == ca.value, str(ca.source)
    run_as = GATEWAY["run-as"]
    merged = {**pod.get("securityContext", {}), **container["securityContext"]}
    for key, value in run_as.value.items():
        assert merged[key] == value, f"{key}: {run_as.source}"


def _allows(rule: dict[str, Any], verb: str, resource: str, name: str | None) -> bool:
    """Whether an RBAC rule allows a request, as the API server decides a SubjectAccessReview."""
    names = rule.get("resourceNames") or []
    return (
        bool({"", "*"} & set(rule.get("apiGroups", [])))
        and bool({resource, "*"} & set(rule.get("resources", [])))
        and bool({verb, "*"} & set(rule.get("verbs", [])))
        and (not names or name in names)
    )


@pytest.fixture(scope="module")
def with_tls(tmp_path_factory) -> Iterator[Settled]:
    """The charm settled serving HTTPS with a user secret's certificate."""
    from kubeflow_charms import certificates

    before = dict(FILES)
    FILES["root"] = tmp_path_factory.mktemp("istiod-tls")
    cert, key = certificates.generate_serving(
        *certificates.generate_ca("user CA"), ["kubeflow.example.com"]
    )
    secret = testing.Secret(tracked_content={"tls-cert": cert, "tls-key": key})
    ctx = testing.Context(CHARM.IstioCharm)
    with routed_lightkube(FakeKubernetes()) as kube:
        base = state(config={"tls-secret-id": secret.id}, secrets={secret})
        out = settle(ctx, base)
        assert kube.rejected == []
        yield Settled(ctx, out, kube)
    FILES.clear()
    FILES.update(before)


def test_gateway_account_fails_istiods_secret_check(with_tls):
    fact = GATEWAY["sds-authorization"]
    verb, resource, name = fact.value["verb"], fact.value["resource"], fact.value["name"]
    # The check lets the gateway chart's Role through and not one limited to a name.
    chart_rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}
    assert _allows(chart_rule, verb, resource, name)
    assert not _allows({**chart_rule, "resourceNames": [CHARM.TLS_SECRET]}, verb, resource, name)
    # Ours must fail it: passing it would mean reading every Secret of the model's namespace.
    kube = with_tls.kube
    rules = []
    for binding in kube.of_kind("RoleBinding") + kube.of_kind("ClusterRoleBinding"):
        subjects = binding.get("subjects") or []
        if any(s.get("name") == "istio-ingressgateway" for s in subjects):
            ref = binding["roleRef"]
            role = kube.get(ref["kind"], ref["name"], MODEL if ref["kind"] == "Role" else None)
            rules += (role or {}).get("rules", [])
    assert not [r for r in rules if _allows(r, verb, resource, name)], str(fact.source)


def test_gateway_reads_its_certificate_from_files(with_tls):
    fact = GATEWAY["tls-files"]
    gateway = with_tls.kube.get("Gateway", "kubeflow-gateway", MODEL)
    (https,) = [s for s in gateway["spec"]["servers"] if s["port"]["number"] == 443]
    assert "credentialName" not in https["tls"], str(GATEWAY["sds-authorization"].source)
    assert set(fact.value["fields"]) <= set(https["tls"]), str(fact.source)
    # Both files are in the volume of the Secret the charm writes.
    container = _gateway_container(with_tls)
    deployment = with_tls.kube.get("Deployment", "istio-ingressgateway", MODEL)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    for field in fact.value["fields"]:
        folder, file = posixpath.split(https["tls"][field])
        secret_name = mounts[folder]["secret"]["secretName"]
        secret = with_tls.kube.get("Secret", secret_name, MODEL)
        assert secret is not None and file in secret["data"], str(fact.source)


# --- the sidecar injection template -------------------------------------------------------

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _template() -> tuple[str, dict[str, Any]]:
    """Our template's text, and its YAML with every action replaced by a placeholder."""
    text = SIDECAR_TEMPLATE.read_text()
    return text, yaml.safe_load(_ACTION.sub("TEMPLATED", text))


def test_sidecar_template_names_only_what_the_injector_provides():
    text, _ = _template()
    actions = _ACTION.findall(text)
    data = SIDECAR["template-data"]
    fields = {m.group(1) for a in actions for m in re.finditer(r"(?<![\w.])\.(\w+)", a)}
    assert fields <= set(data.value), f"{sorted(fields - set(data.value))}: {data.source}"
    builtins = {"index", "and", "or", "not", "eq", "ne", "len", "print", "printf"}
    istio, sprig = SIDECAR["template-functions"], SIDECAR["sprig-functions"]
    words = {w for a in actions for w in re.findall(r"(?:^|[\s(|])([a-zA-Z]\w*)", a)}
    unknown = words - builtins - set(istio.value) - set(sprig.value)
    assert unknown == set(), f"{sorted(unknown)}: neither {istio.source} nor {sprig.source}"


def test_sidecar_template_reads_values_the_charm_writes(settled):
    text, _ = _template()
    used = set(re.findall(r"\.Values\.([\w.]+)", text))
    fact = SIDECAR["values-keys"]
    assert used <= set(fact.value), f"{sorted(used - set(fact.value))}: {fact.source}"
    values = json.loads(settled.file(f"{istiod.INJECT_DIR}/values"))
    for path in fact.value:
        node: Any = values
        for part in path.split("."):
            node = node[part]
        assert node, f"{path} written, as {fact.source} names it"


def test_sidecar_template_proxy_and_init_containers():
    _, pod = _template()
    (init,) = pod["spec"]["initContainers"]
    init_args = SIDECAR["init-args"]
    literal = [a for a in init["args"] if a != "TEMPLATED" and not a.startswith("--")]
    assert [a for a in literal if not a.startswith("15090")] == init_args.value, str(
        init_args.source
    )
    flags = SIDECAR["iptables-flags"]
    used = {a[1:] for a in init["args"] if re.fullmatch(r"-[a-z]", a)}
    assert used <= set(flags.value), str(flags.source)

    (proxy,) = pod["spec"]["containers"]
    args = SIDECAR["args"]
    assert proxy["args"][: len(args.value)] == args.value, str(args.source)
    env = SIDECAR["env"]
    names = {e["name"] for e in proxy["env"]}
    assert names <= set(env.value), f"{sorted(names - set(env.value))}: {env.source}"
    ports = SIDECAR["container-ports"]
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == ports.value, str(
        ports.source
    )
    probe = SIDECAR["readiness"]
    http = proxy["readinessProbe"]["httpGet"]
    assert (http["path"], http["port"]) == (probe.value["path"], probe.value["port"]), str(
        probe.source
    )
    assert proxy["readinessProbe"]["timeoutSeconds"] == probe.value["timeoutSeconds"]
    mounts = GATEWAY["volume-mounts"]
    assert {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]} == mounts.value, str(
        mounts.source
    )


# --- the CRDs ----------------------------------------------------------------------------


def test_crds_are_istios(settled):
    crds = {
        c["spec"]["names"]["kind"]: c for c in settled.kube.of_kind("CustomResourceDefinition")
    }
    assert set(crds) == set(CRDS), "every CRD of the facts, no other"
    for kind, fact in CRDS.items():
        spec = crds[kind]["spec"]
        where = f"{kind}: {fact.source}"
        assert spec["group"] == fact.value["group"], where
        assert spec["scope"] == "Namespaced", where
        assert crds[kind]["metadata"]["name"] == f"{fact.value['plural']}.{fact.value['group']}"
        assert spec["names"]["plural"] == fact.value["plural"], where
        assert spec["names"]["singular"] == kind.lower(), where
        assert spec["names"].get("shortNames", []) == fact.value["shortNames"], where
        served = sorted(v["name"] for v in spec["versions"] if v["served"])
        assert served == sorted(fact.value["served"]), where
        assert [v["name"] for v in spec["versions"] if v["storage"]] == [fact.value["storage"]], (
            where
        )


def test_the_charm_writes_only_kinds_the_crds_serve():
    for k in CHARM.KINDS:
        if k.kind not in CRDS:
            continue
        fact = CRDS[k.kind]
        group, _, version = k.api_version.partition("/")
        assert group == fact.value["group"], f"{k.kind}: {fact.source}"
        assert version in fact.value["served"], f"{k.kind} {version}: {fact.source}"
        assert k.plural == fact.value["plural"], f"{k.kind}: {fact.source}"
