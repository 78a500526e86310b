"""The cheap check for objects deleted or changed behind a charm's back."""

from __future__ import annotations

import http.server
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle.fake_kubernetes import FakeKubernetes, routed_lightkube
from lightkube.codecs import resource_registry

from kubeflow_charms import certificates, drift
from kubeflow_charms.kubernetes import Kind, KubernetesError, Resources

APP, MODEL = "istio", "kubeflow"
KINDS = (
    Kind("v1", "ConfigMap"),
    Kind("apps/v1", "Deployment"),
    Kind("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
)
MANIFESTS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: kubeflow}
data: {mode: strict}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway, namespace: kubeflow}
spec:
  selector: {matchLabels: {app: gateway}}
  template:
    metadata: {labels: {app: gateway}}
    spec: {containers: [{name: proxy, image: proxy:1}]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: injector}
webhooks:
- name: inject.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig: {service: {name: istiod, namespace: kubeflow, path: /inject}}
"""


@pytest.fixture
def cluster() -> Iterator[FakeKubernetes]:
    """A fake cluster holding the manifests, applied with the app's labels, in two scopes."""
    with routed_lightkube(FakeKubernetes()) as fake:
        Resources(app=APP, model=MODEL, scope="mesh", kinds=KINDS).reconcile(MANIFESTS)
        # Another app's object of an owned kind: not ours, never in the digest.
        Resources(app="other", model=MODEL, scope="mesh", kinds=KINDS[:1]).reconcile(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs, namespace: kubeflow}\n"
        )
        yield fake


def _digest() -> str:
    return drift.digest(drift.selector(APP, MODEL), KINDS)


@pytest.mark.parametrize(
    ("app", "model"),
    [("istio", "kubeflow"), ("a" * 40, "m" * 40)],  # the second needs shortening with a hash
)
def test_selector_matches_lightkube_extensions_labels(app, model):
    from lightkube_extensions.batch import create_charm_default_labels

    labels = create_charm_default_labels(app, model, scope="mesh")
    instance, scope = drift.selector(app, model).split(",")
    assert instance == f"{drift.INSTANCE_LABEL}={labels[drift.INSTANCE_LABEL]}"
    assert scope == drift.SCOPE_LABEL and labels[scope] == "mesh"
    assert set(labels) == {drift.INSTANCE_LABEL, drift.SCOPE_LABEL}


def test_list_paths_are_lightkubes(cluster):
    from charm_loader import load_charm

    kinds = set()
    for name in ("istio", "kubeflow-dashboard", "kubeflow-notebooks", "resource-dispatcher"):
        module = load_charm(name)
        for attr in dir(module):
            value = getattr(module, attr)
            if isinstance(value, tuple) and value and all(isinstance(k, Kind) for k in value):
                kinds |= set(value)
    builtin = [k for k in kinds if k.plural is None]
    assert len(builtin) >= 10
    for kind in builtin:
        info = resource_registry.load(kind.api_version, kind.kind)._api_info
        group = info.resource.group
        prefix = f"/apis/{group}" if group else "/api"
        assert drift.list_path(kind) == f"{prefix}/{info.resource.version}/{info.plural}"
    policy = Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies")
    assert drift.list_path(policy) == "/apis/security.istio.io/v1/authorizationpolicies"


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("networking.k8s.io/v1", "Ingress"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("v1", "Endpoints"),
        ("v1", "ConfigMap"),
    ],
)
def test_built_in_plurals_follow_kubernetes(api_version: str, kind: str):
    # A wrong plural is a 404, which the check reads as "no objects": drift unseen.
    info = resource_registry.load(api_version, kind)._api_info
    assert drift.resource_name(Kind(api_version, kind)) == info.plural


def test_digest_lists_metadata_only_with_the_apps_selector(cluster, monkeypatch):
    seen = []

    def send(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        status, body = cluster.send(method, path, headers)
        seen.append((path, headers, json.loads(body)))
        return status, body

    monkeypatch.setattr(drift, "send", send)
    _digest()
    assert len(seen) == len(KINDS)
    for path, headers, body in seen:
        assert "labelSelector=app.kubernetes.io%2Finstance%3Dkubeflow-istio%2C" in path
        assert headers["Accept"].startswith("application/json;as=PartialObjectMetadataList;")
        assert body["kind"] == "PartialObjectMetadataList"
        assert all(set(item) == {"apiVersion", "kind", "metadata"} for item in body["items"])
    assert sum(len(body["items"]) for *_, body in seen) == 3  # not the other app's


def test_digest_is_the_same_from_full_objects_and_across_pages(cluster, monkeypatch):
    metadata_only = _digest()
    monkeypatch.setattr(drift, "PAGE", 1)
    assert _digest() == metadata_only
    # An API server that cannot send metadata alone sends whole objects.
    monkeypatch.setattr(drift, "send", lambda m, p, h: cluster.send(m, p, {}))
    assert _digest() == metadata_only


def test_status_writes_do_not_change_a_kind_that_keeps_a_generation(cluster):
    before = _digest()
    cluster.edit("Deployment", "gateway", "kubeflow", lambda b: b.update(status={"replicas": 1}))
    assert _digest() == before


@pytest.mark.parametrize(
    ("kind", "name", "namespace", "change"),
    [
        ("ConfigMap", "settings", "kubeflow", lambda b: b["data"].update(mode="permissive")),
        (
            "MutatingWebhookConfiguration",
            "injector",
            None,
            lambda b: b["webhooks"][0].update(failurePolicy="Ignore"),
        ),
        (
            "Deployment",
            "gateway",
            "kubeflow",
            lambda b: b["spec"]["template"]["spec"]["containers"][0].update(image="evil:1"),
        ),
    ],
)
def test_a_changed_object_changes_the_digest(cluster, kind, name, namespace, change):
    before = _digest()
    cluster.edit(kind, name, namespace, change)
    assert _digest() != before


def test_a_deleted_or_recreated_object_changes_the_digest(cluster):
    before = _digest()
    body = cluster.delete("MutatingWebhookConfiguration", "injector")
    deleted = _digest()
    assert deleted != before
    Resources(app=APP, model=MODEL, scope="mesh", kinds=KINDS).reconcile(MANIFESTS)
    restored = _digest()
    # Back, with a new uid: a new object, not the old one.
    assert restored not in (before, deleted)
    assert (
        cluster.get("MutatingWebhookConfiguration", "injector")["metadata"]["uid"]
        != (body["metadata"]["uid"])
    )


def test_another_apps_object_does_not_count(cluster):
    before = _digest()
    cluster.delete("ConfigMap", "theirs", "kubeflow")
    assert _digest() == before


def test_a_kind_not_served_has_no_objects(cluster):
    custom = Kind("example.com/v1", "Thing", "things")
    assert drift.digest(drift.selector(APP, MODEL), (*KINDS, custom)) == _digest()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((403, b'{"kind": "Status", "message": "forbidden: cannot list"}'), "HTTP 403 forbidden"),
        ((500, b"<html>oops</html>"), "HTTP 500"),
        ((200, b"not json"), "HTTP 200"),
    ],
)
def test_an_answer_that_is_not_a_list_is_an_error(monkeypatch, answer, message):
    monkeypatch.setattr(drift, "send", lambda *_: answer)
    with pytest.raises(KubernetesError, match=message) as info:
        _digest()
    assert info.value.status == answer[0]


# --- the record a charm keeps


def test_record_then_drifted(cluster, caplog):
    bag: dict[str, str] = {}
    owned = drift.OwnedObjects(bag, "owned-objects", app=APP, model=MODEL, kinds=KINDS)
    assert owned.drifted() is True  # nothing recorded yet
    owned.record()
    assert bag == {"owned-objects": _digest()}
    assert owned.drifted() is False
    cluster.delete("ConfigMap", "settings", "kubeflow")
    with caplog.at_level(logging.INFO):
        assert owned.drifted() is True
    assert "changed or went missing" in caplog.text


def test_api_unreachable_forces_nothing_and_keeps_the_record(cluster, monkeypatch, caplog):
    bag: dict[str, str] = {}
    owned = drift.OwnedObjects(bag, "owned-objects", app=APP, model=MODEL, kinds=KINDS)
    owned.record()
    kept = dict(bag)

    def unreachable(*_: Any) -> tuple[int, bytes]:
        raise KubernetesError("the Kubernetes API is unreachable: connection refused")

    monkeypatch.setattr(drift, "send", unreachable)
    with caplog.at_level(logging.WARNING):
        assert owned.drifted() is False
        owned.record()
    assert bag == kept
    assert "cannot check the Kubernetes objects" in caplog.text
    assert "cannot record" in caplog.text


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_check_counts_as_drift(cluster, monkeypatch, caplog, code):
    # A charm whose trust was removed must apply again (and be told no), not stay active.
    bag: dict[str, str] = {}
    owned = drift.OwnedObjects(bag, "owned-objects", app=APP, model=MODEL, kinds=KINDS)
    owned.record()
    kept = dict(bag)
    refusal = json.dumps({"kind": "Status", "message": "forbidden", "code": code}).encode()
    monkeypatch.setattr(drift, "send", lambda *_: (code, refusal))
    with caplog.at_level(logging.WARNING):
        assert owned.drifted() is True
        owned.record()
    assert bag == kept
    assert f"HTTP {code} forbidden; applying them again" in caplog.text


def test_an_untrusted_app_cannot_check_its_objects_and_applies_again(cluster):
    bag: dict[str, str] = {}
    owned = drift.OwnedObjects(bag, "owned-objects", app=APP, model=MODEL, kinds=KINDS)
    owned.record()
    with routed_lightkube(cluster, MODEL, app=APP, trusted=False):
        assert owned.drifted() is True
        with pytest.raises(KubernetesError) as refused:
            Resources(app=APP, model=MODEL, scope="mesh", kinds=KINDS).reconcile(MANIFESTS)
    assert refused.value.status == 403
    with routed_lightkube(cluster, MODEL, app=APP, trusted=True):
        assert owned.drifted() is False


# --- the in-cluster transport


def test_send_outside_a_pod_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesError, match="KUBERNETES_SERVICE_HOST is unset"):
        drift.send("GET", "/api/v1/configmaps", {})


def test_send_without_a_token_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setattr(drift, "SERVICE_ACCOUNT", tmp_path)
    with pytest.raises(KubernetesError, match="no Kubernetes API credentials"):
        drift.send("GET", "/api/v1/configmaps", {})


@pytest.fixture
def api_server(tmp_path, monkeypatch) -> Iterator[list[tuple[str, str, str]]]:
    """An HTTPS server on localhost with a CA of its own, as the pod's API server."""
    bundle = certificates.new_bundle("test API CA", ["localhost"])
    (tmp_path / "ca.crt").write_text(bundle.ca_cert)
    (tmp_path / "token").write_text("pod-token\n")
    (tmp_path / "server.pem").write_text(bundle.tls_cert + bundle.tls_key)
    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one round trip, not one per delayed ACK

        def do_GET(self) -> None:
            seen.append((self.path, self.headers["Authorization"], self.headers["Accept"]))
            body = json.dumps({"kind": "PartialObjectMetadataList", "items": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "server.pem"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "localhost")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.server_address[1]))
    monkeypatch.setattr(drift, "SERVICE_ACCOUNT", Path(tmp_path))
    monkeypatch.setattr(drift, "_connection", None)
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_send_talks_https_with_the_pods_token_and_ca(api_server):
    empty = drift.digest(drift.selector(APP, MODEL), KINDS)
    assert empty == drift.digest("", ())  # nothing listed
    assert len(api_server) == len(KINDS)
    for path, authorization, accept in api_server:
        assert path.startswith(("/api/v1/configmaps?", "/apis/apps/v1/deployments?", "/apis/"))
        assert authorization == "Bearer pod-token"
        assert accept == drift.ACCEPT
    assert drift._connection is not None  # kept open for the rest of the hook


def test_send_refuses_a_server_the_ca_did_not_sign(api_server, tmp_path):
    other = certificates.new_bundle("another CA", ["localhost"])
    (tmp_path / "ca.crt").write_text(other.ca_cert)
    with pytest.raises(KubernetesError, match=r"unreachable: .*CERTIFICATE_VERIFY_FAILED"):
        drift.send("GET", "/api/v1/configmaps", {})
    assert drift._connection is None
    assert api_server == []
