"""Istio's kinds in the fake cluster: checked against Istio's own schemas, not our open CRDs.

Our istio charm installs Istio's CustomResourceDefinitions with `spec` left
open (istiod checks specs); the fake cluster checks each object of a kind
recorded in tests/conformance/facts/schemas/ against the schema Istio 1.29.6's
own CRDs give it, and answers 422 as an API server with those CRDs would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from bundle.fake_kubernetes import FakeKubernetes
from bundle.simulator import BUNDLE, Model
from charm_loader import CHARMS
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource

from bundle import upstream_schemas
from kubeflow_charms.kubernetes import render

OVERLAYS = sorted((BUNDLE.parent / "overlays").glob("*.yaml"))
CASES = [pytest.param([], id="bundle")] + [pytest.param([o], id=o.stem) for o in OVERLAYS]
ISTIO_TEMPLATES = CHARMS / "istio" / "src" / "templates"


def _changed(obj: dict[str, Any], change: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    change(changed["spec"])
    return changed


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "web", "namespace": "kubeflow"},
    "spec": {
        "gateways": ["kubeflow/kubeflow-gateway"],
        "hosts": ["*"],
        "http": [
            {
                "name": "web",
                "match": [
                    {
                        "uri": {"prefix": "/web/"},
                        "method": {"exact": "GET"},
                        "headers": {"x-tenant": {"regex": "a.*"}},
                        "queryParams": {"debug": {"exact": "1"}},
                        "ignoreUriCase": True,
                    }
                ],
                "rewrite": {"uri": "/", "authority": "web.kubeflow.svc"},
                "headers": {"request": {"remove": ["kubeflow-userid"], "set": {"x-a": "b"}}},
                "timeout": "30s",
                "retries": {"attempts": 3, "perTryTimeout": "1.5s", "retryOn": "5xx"},
                "corsPolicy": {"allowOrigins": [{"exact": "https://a.example"}], "maxAge": "24h"},
                "route": [
                    {
                        "destination": {
                            "host": "web.kubeflow.svc.cluster.local",
                            "port": {"number": 80},
                        },
                        "weight": 90,
                    },
                    {"destination": {"host": "canary", "subset": "v2"}, "weight": 10},
                ],
            }
        ],
    },
}
AUTHORIZATION_POLICY = {
    "apiVersion": "security.istio.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "gate", "namespace": "kubeflow"},
    "spec": {
        "selector": {"matchLabels": {"istio": "ingressgateway"}},
        "action": "CUSTOM",
        "provider": {"name": "oidc"},
        "rules": [
            {
                "from": [{"source": {"principals": ["cluster.local/ns/kubeflow/sa/a"]}}],
                "to": [
                    {"operation": {"paths": ["/*"], "notPaths": ["/open/*"], "methods": ["GET"]}}
                ],
                "when": [{"key": "request.headers[kubeflow-userid]", "values": ["a@example.com"]}],
            }
        ],
    },
}
GATEWAY = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "gw", "namespace": "kubeflow"},
    "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [
            {
                "hosts": ["*"],
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "tls": {
                    "mode": "SIMPLE",
                    "serverCertificate": "/etc/tls/tls.crt",
                    "privateKey": "/etc/tls/tls.key",
                    "minProtocolVersion": "TLSV1_2",
                },
            }
        ],
    },
}
ENVOY_FILTER = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "EnvoyFilter",
    "metadata": {"name": "lua", "namespace": "kubeflow"},
    "spec": {
        "workloadSelector": {"labels": {"istio": "ingressgateway"}},
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "GATEWAY",
                    "listener": {"filterChain": {"filter": {"name": "hcm"}}},
                },
                # Envoy's own configuration: open in Istio's CRD.
                "patch": {"operation": "INSERT_FIRST", "value": {"name": "lua", "anything": [1]}},
            }
        ],
    },
}


# credentialNames (a pair of certificates from Secrets) instead of files.
GATEWAY_NAMES = _changed(
    GATEWAY,
    lambda s: s["servers"][0].update(tls={"mode": "SIMPLE", "credentialNames": ["rsa", "ecdsa"]}),
)
PLURALS = {
    "VirtualService": "virtualservices",
    "AuthorizationPolicy": "authorizationpolicies",
    "Gateway": "gateways",
    "EnvoyFilter": "envoyfilters",
}


@pytest.fixture(scope="module")
def crds() -> FakeKubernetes:
    """A cluster with Istio's CRDs as our istio charm installs them (once: applying is slow)."""
    fake = FakeKubernetes()
    api = fake.client()
    for crd in codecs.load_all_yaml(render(ISTIO_TEMPLATES, ["crds.yaml.j2"], {})):
        api.apply(crd)
    return fake


@pytest.fixture
def istio(crds: FakeKubernetes) -> FakeKubernetes:
    """A cluster of the test's own with Istio's CRDs."""
    return FakeKubernetes(objects=copy.deepcopy(crds.objects), revision=crds.revision)


def _apply(fake: FakeKubernetes, obj: dict[str, Any]) -> None:
    group, _, version = obj["apiVersion"].rpartition("/")
    resource = create_namespaced_resource(group, version, obj["kind"], PLURALS[obj["kind"]])
    fake.client().apply(resource.from_dict(obj), force=True)


@pytest.mark.parametrize(
    "obj",
    [
        VIRTUAL_SERVICE,
        {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1beta1"},
        {**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v1alpha3"},
        AUTHORIZATION_POLICY,
        {**AUTHORIZATION_POLICY, "apiVersion": "security.istio.io/v1beta1"},
        _changed(AUTHORIZATION_POLICY, lambda s: s.update(action="DENY", provider={})),
        GATEWAY,
        GATEWAY_NAMES,
        ENVOY_FILTER,
    ],
    ids=lambda obj: f"{obj['kind']}-{obj['apiVersion'].rpartition('/')[2]}",
)
def test_what_istio_accepts_is_stored(istio, obj):
    _apply(istio, obj)
    assert istio.rejected == []
    stored = istio.get(obj["kind"], obj["metadata"]["name"], "kubeflow")
    assert stored is not None and stored["spec"] == obj["spec"]


def _set(path: str, value: Any) -> Any:
    """A change to a spec: set the value at a dotted path (numbers index lists)."""

    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for step in parents:
            node = node[int(step)] if step.isdigit() else node[step]
        node[int(last) if last.isdigit() else last] = value

    return change


def _drop(path: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for step in parents:
            node = node[int(step)] if step.isdigit() else node[step]
        del node[last]

    return change


VS, AP, GW, EF = VIRTUAL_SERVICE, AUTHORIZATION_POLICY, GATEWAY, ENVOY_FILTER
WAYPOINT_ELSEWHERE = {"context": "GATEWAY", "waypoint": {}}
# id: (object, change of its spec, where the message says it is, what else it names)
BAD = {
    # Misspelt fields: our CRDs keep any field; Istio's schema has no such field.
    "misspelt-rewrite": (VS, _set("http.0.rewrit", {"uri": "/"}), "spec/http/0", "rewrit"),
    "misspelt-notPaths": (
        AP,
        _set("rules.0.to.0.operation.notPath", ["/a"]),
        "operation",
        "notPath",
    ),
    "misspelt-match": (VS, _set("http.0.match.0.uri", {"prefx": "/"}), "uri", "prefx"),
    "misspelt-tls": (GW, _set("servers.0.tls.credentialname", "x"), "tls", "credentialname"),
    "misspelt-top": (EF, _set("workloadselector", {}), "spec", "workloadselector"),
    # Enum values.
    "action-ALOW": (AP, _set("action", "ALOW"), "spec/action", "ALOW"),  # codespell:ignore
    "tls-mode": (GW, _set("servers.0.tls.mode", "simple"), "tls/mode", "simple"),
    "operation": (EF, _set("configPatches.0.patch.operation", "INSERT"), "operation", "INSERT"),
    "context": (EF, _set("configPatches.0.match.context", "INGRESS"), "context", "INGRESS"),
    # Wrong types.
    "hosts-not-a-list": (VS, _set("hosts", "*"), "spec/hosts", "array"),
    "port-a-string": (GW, _set("servers.0.port.number", "443"), "port/number", "integer"),
    "values-not-a-list": (AP, _set("rules.0.when.0.values", "a"), "values", "array"),
    "weight-a-string": (VS, _set("http.0.route.0.weight", "90"), "weight", "integer"),
    "port-out-of-range": (GW, _set("servers.0.port.number", -1), "number", "minimum"),
    # Required fields.
    "server-without-port": (GW, _drop("servers.0.port"), "spec/servers/0", "port"),
    "route-without-destination": (
        VS,
        _drop("http.0.route.1.destination"),
        "route/1",
        "destination",
    ),
    "condition-without-key": (AP, _drop("rules.0.when.0.key"), "when/0", "key"),
    # One of: a proto oneof, and CEL rules of Istio's CRDs.
    "uri-exact-and-prefix": (VS, _set("http.0.match.0.uri.exact", "/a"), "uri", "only one of"),
    "two-credentials": (
        GATEWAY_NAMES,
        _set("servers.0.tls.credentialName", "a"),
        "tls",
        "only one",
    ),
    "selector-and-targetRefs": (
        AP,
        _set("targetRefs", [{"kind": "Gateway", "name": "g"}]),
        "spec",
        "only one of",
    ),
    "service-accounts-and-principals": (
        AP,
        _set("rules.0.from.0.source.serviceAccounts", ["kubeflow/ml"]),
        "source",
        "only one of",
    ),
    "waypoint-elsewhere": (
        EF,
        _set("configPatches.0.match", WAYPOINT_ELSEWHERE),
        "match",
        "if and only if",
    ),
    "waypoint-missing": (
        EF,
        _set("configPatches.0.match", {"context": "WAYPOINT"}),
        "match",
        "if and only if",
    ),
    "timeout-not-a-duration": (VS, _set("http.0.timeout", "30"), "timeout", "duration"),
    "timeout-under-1ms": (VS, _set("http.0.timeout", "500us"), "timeout", "duration"),
    "wildcard-label": (AP, _set("selector.matchLabels.app", "a*"), "matchLabels/app", "'a*'"),
}


@pytest.mark.parametrize(
    ("base", "change", "path", "named"),
    [pytest.param(*case, id=name) for name, case in BAD.items()],
)
def test_what_istio_refuses_is_invalid(istio, base, change, path, named):
    obj = _changed(base, change)
    with pytest.raises(ApiError) as error:
        _apply(istio, obj)
    assert error.value.status.code == 422
    message = error.value.status.message or ""
    assert path in message and named in message, message
    assert "istio/api@1.29.6" in message, message
    assert istio.get(obj["kind"], obj["metadata"]["name"], "kubeflow") is None
    assert istio.rejected and named in istio.rejected[-1]


def test_a_status_is_not_checked(istio):
    # Istio's CRDs keep any status (istiod writes its own conditions there).
    _apply(istio, {**GATEWAY, "status": {"conditions": [], "anything": {"a": 1}}})
    assert istio.rejected == []


# --- what the bundle writes


@pytest.fixture(params=CASES)
def settled(settled_models, request) -> Iterator[Model]:
    yield from settled_models.shared(request.param)


def test_every_istio_object_of_the_bundle_follows_istios_schema(settled):
    cluster = settled.workloads.kubernetes
    written = [
        stored.body
        for stored in cluster.objects.values()
        if stored.api_version.split("/")[0].endswith(".istio.io")
    ]
    kinds = {obj["kind"] for obj in written}
    # The istio charm's Gateway, routes, login check and header filter at least.
    assert kinds >= {"Gateway", "VirtualService", "AuthorizationPolicy", "EnvoyFilter"}, kinds
    for obj in written:
        name = f"{obj['kind']} {obj['metadata']['name']}"
        assert upstream_schemas.kind_of(obj) is not None, f"{name}: no upstream schema recorded"
        assert upstream_schemas.problem(obj) is None, name
    assert cluster.rejected == []
