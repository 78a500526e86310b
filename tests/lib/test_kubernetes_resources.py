"""kubeflow_charms.kubernetes: templates to objects, applied, pruned and deleted (fake API)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bundle.fake_kubernetes import FakeKubernetes

from kubeflow_charms import kubernetes
from kubeflow_charms.kubernetes import Kind, KubernetesError, Resources

ROOT = Path(__file__).resolve().parents[2]

CONFIGMAPS = """\
{% for name, value in items.items() %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ name }}
  namespace: {{ namespace }}
data:
  value: {{ value | tojson }}
{% endfor %}
"""
CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.org
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, minimum: 1}
"""
WIDGET = """\
apiVersion: example.org/v1
kind: Widget
metadata:
  name: {{ name }}
  namespace: kubeflow
spec:
  size: {{ size }}
"""
CONFIGMAP = (Kind("v1", "ConfigMap"),)
WIDGETS = (Kind("example.org/v1", "Widget", "widgets"),)
CRDS = (Kind("apiextensions.k8s.io/v1", "CustomResourceDefinition"),)


class RecordingKubernetes(FakeKubernetes):
    """The fake API, also noting each write's field manager."""

    managers: list[str]

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            self.managers = [*getattr(self, "managers", []), request.url.params["fieldManager"]]
        return super().handle(request)


@pytest.fixture
def fake() -> Iterator[RecordingKubernetes]:
    """Every lightkube Client built in the test talks to this fake cluster."""
    import lightkube

    cluster = RecordingKubernetes()
    original = lightkube.Client.__init__

    def routed(client: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(
            config=cluster.kubeconfig(kwargs.get("namespace") or "kubeflow"),
            transport=cluster.transport(),
        )
        original(client, *args, **kwargs)

    lightkube.Client.__init__ = routed  # type: ignore[method-assign]
    try:
        yield cluster
    finally:
        lightkube.Client.__init__ = original  # type: ignore[method-assign]


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "configmaps.yaml.j2").write_text(CONFIGMAPS)
    (tmp_path / "crd.yaml.j2").write_text(CRD)
    (tmp_path / "widget.yaml.j2").write_text(WIDGET)
    return tmp_path


def _resources(scope: str = "config", kinds=CONFIGMAP, app: str = "demo") -> Resources:
    return Resources(app=app, model="kubeflow", scope=scope, kinds=kinds)


def _configmaps(templates: Path, **items: str) -> str:
    return kubernetes.render(
        templates, ["configmaps.yaml.j2"], {"items": items, "namespace": "kubeflow"}
    )


# --- rendering ---------------------------------------------------------------------------


def test_render_joins_templates_into_documents(templates):
    text = kubernetes.render(
        templates,
        ["configmaps.yaml.j2", "widget.yaml.j2"],
        {"items": {"a": "x: 1"}, "namespace": "kubeflow", "name": "w", "size": 2},
    )
    import yaml

    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in docs] == ["ConfigMap", "Widget"]
    assert docs[0]["data"] == {"value": "x: 1"}  # tojson quotes any string safely


def test_render_refuses_a_missing_variable(templates):
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        kubernetes.render(templates, ["widget.yaml.j2"], {"name": "w"})


def test_hash_is_stable_and_sensitive(templates):
    a = _configmaps(templates, a="1")
    assert kubernetes.manifest_hash(a) == kubernetes.manifest_hash(_configmaps(templates, a="1"))
    assert kubernetes.manifest_hash(a) != kubernetes.manifest_hash(_configmaps(templates, a="2"))
    assert kubernetes.manifest_hash("x", "y") != kubernetes.manifest_hash("xy")


@dataclasses.dataclass(frozen=True)
class _Login:
    host: str
    headers: tuple[str, ...] = ()


def test_render_digest_is_stable_and_covers_names_templates_and_context(templates):
    names = ["configmaps.yaml.j2"]
    context = {"items": {"a": "1"}, "namespace": "kubeflow", "login": _Login("auth", ("x",))}
    first = kubernetes.render_digest(templates, names, context)

    same = {"login": _Login("auth", ("x",)), "namespace": "kubeflow", "items": {"a": "1"}}
    assert kubernetes.render_digest(templates, names, same) == first
    assert kubernetes.render_digest(templates, names, {**context, "namespace": "x"}) != first
    other_login = {**context, "login": _Login("auth", ("y",))}
    assert kubernetes.render_digest(templates, names, other_login) != first
    assert kubernetes.render_digest(templates, ["widget.yaml.j2"], context) != first
    # Any template file counts, named or not (one may include another).
    (templates / "widget.yaml.j2").write_text(WIDGET + "# changed\n")
    assert kubernetes.render_digest(templates, names, context) != first


def test_render_digest_refuses_values_without_a_stable_form(templates):
    with pytest.raises(TypeError, match="set"):
        kubernetes.render_digest(templates, ["configmaps.yaml.j2"], {"items": {"a", "b"}})


# --- apply, prune, delete ------------------------------------------------------------------


def test_reconcile_applies_with_labels_and_the_app_as_field_manager(fake, templates):
    _resources().reconcile(_configmaps(templates, a="1", b="2"))

    assert {c["metadata"]["name"] for c in fake.of_kind("ConfigMap")} == {"a", "b"}
    labels = fake.get("ConfigMap", "a", "kubeflow")["metadata"]["labels"]
    assert labels["kubernetes-resource-handler-scope"] == "config"
    assert labels["app.kubernetes.io/instance"] == "kubeflow-demo"
    assert set(fake.managers) == {"demo"}
    assert fake.rejected == []


def test_reconcile_prunes_what_is_no_longer_wanted(fake, templates):
    resources = _resources()
    resources.reconcile(_configmaps(templates, a="1", b="2"))
    resources.reconcile(_configmaps(templates, a="3"))

    assert [c["metadata"]["name"] for c in fake.of_kind("ConfigMap")] == ["a"]
    assert fake.get("ConfigMap", "a", "kubeflow")["data"] == {"value": "3"}
    assert ("delete", "ConfigMap", "b") in fake.writes


def test_scopes_and_apps_do_not_prune_each_other(fake, templates):
    _resources("one").reconcile(_configmaps(templates, a="1"))
    _resources("two").reconcile(_configmaps(templates, b="1"))
    _resources("one", app="other").reconcile(_configmaps(templates, c="1"))
    _resources("one").reconcile(_configmaps(templates))

    assert {c["metadata"]["name"] for c in fake.of_kind("ConfigMap")} == {"b", "c"}


def test_delete_removes_every_object_of_the_scope(fake, templates):
    _resources("one").reconcile(_configmaps(templates, a="1", b="2"))
    _resources("two").reconcile(_configmaps(templates, c="1"))
    _resources("one").delete()

    assert [c["metadata"]["name"] for c in fake.of_kind("ConfigMap")] == ["c"]


def test_custom_kinds_after_their_crd(fake, templates):
    crds, widgets = _resources("crds", CRDS), _resources("widgets", WIDGETS)
    crd = kubernetes.render(templates, ["crd.yaml.j2"], {})
    widget = kubernetes.render(templates, ["widget.yaml.j2"], {"name": "w", "size": 2})
    kubernetes.apply_stages([(crds, crd), (widgets, widget)], None)

    assert fake.get("Widget", "w", "kubeflow")["spec"] == {"size": 2}
    widgets.reconcile("")
    assert fake.of_kind("Widget") == []
    assert fake.rejected == []


def test_an_invalid_object_is_a_kubernetes_error_with_its_status(fake, templates):
    crds, widgets = _resources("crds", CRDS), _resources("widgets", WIDGETS)
    crds.reconcile(kubernetes.render(templates, ["crd.yaml.j2"], {}))
    with pytest.raises(KubernetesError) as error:
        widgets.reconcile(
            kubernetes.render(templates, ["widget.yaml.j2"], {"name": "w", "size": 0})
        )
    assert error.value.status == 422
    assert fake.rejected


def test_a_kind_outside_the_scope_is_refused_before_any_write(fake, templates):
    with pytest.raises(KubernetesError, match="not a kind of scope"):
        _resources("widgets", WIDGETS).reconcile(_configmaps(templates, a="1"))
    assert fake.writes == []


def test_an_unreachable_api_is_a_kubernetes_error(monkeypatch, templates):
    import lightkube

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    original = lightkube.Client.__init__
    fake = FakeKubernetes()

    def routed(client: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.update(config=fake.kubeconfig(), transport=httpx.MockTransport(refuse))
        original(client, *args, **kwargs)

    monkeypatch.setattr(lightkube.Client, "__init__", routed)
    with pytest.raises(KubernetesError, match="unreachable") as error:
        _resources().reconcile(_configmaps(templates, a="1"))
    assert error.value.status is None


# --- nothing to change, nothing written ------------------------------------------------------


def test_unchanged_manifests_write_nothing(fake, templates):
    resources = _resources()
    text = _configmaps(templates, a="1")
    applied = resources.apply_if_changed(text, None)
    writes = list(fake.writes)

    assert resources.apply_if_changed(text, applied) == applied
    assert fake.writes == writes  # no apply, no prune
    changed = resources.apply_if_changed(_configmaps(templates, a="2"), applied)
    assert changed != applied and len(fake.writes) > len(writes)


def test_force_applies_even_when_unchanged(fake, templates):
    resources = _resources()
    text = _configmaps(templates, a="1")
    applied = resources.apply_if_changed(text, None)
    fake.delete_made()  # someone deleted it behind our back
    assert resources.apply_if_changed(text, applied, force=True) == applied
    assert fake.get("ConfigMap", "a", "kubeflow") is not None


def test_stages_hash_covers_every_stage(fake, templates):
    one, two = _resources("one"), _resources("two")
    first = kubernetes.apply_stages([(one, _configmaps(templates, a="1")), (two, "")], None)
    second = kubernetes.apply_stages([(one, ""), (two, _configmaps(templates, a="1"))], first)
    assert first != second
    assert [
        c["metadata"]["labels"]["kubernetes-resource-handler-scope"]
        for c in fake.of_kind("ConfigMap")
    ] == ["two"]


# --- the load balancer's address -------------------------------------------------------------

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: gw, namespace: kubeflow}
spec:
  type: LoadBalancer
  selector: {app: gw}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def test_load_balancer_address(fake, tmp_path):
    (tmp_path / "svc.yaml.j2").write_text(SERVICE)
    _resources("svc", (Kind("v1", "Service"),)).reconcile(
        kubernetes.render(tmp_path, ["svc.yaml.j2"], {})
    )
    assert kubernetes.load_balancer_address("gw", "kubeflow") is None

    fake.get("Service", "gw", "kubeflow")["status"] = {
        "loadBalancer": {"ingress": [{"ip": "20.1.2.3"}]}
    }
    assert kubernetes.load_balancer_address("gw", "kubeflow") == "20.1.2.3"
    fake.get("Service", "gw", "kubeflow")["status"] = {
        "loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}
    }
    assert kubernetes.load_balancer_address("gw", "kubeflow") == "lb.example.com"
    with pytest.raises(KubernetesError) as error:
        kubernetes.load_balancer_address("missing", "kubeflow")
    assert error.value.status == 404


# --- import cost --------------------------------------------------------------------------


IMPORT_COST = """\
import sys
from kubeflow_charms import kubernetes

text = kubernetes.render(sys.argv[1], ["widget.yaml.j2"], {"name": "w", "size": 1})
kinds = [kubernetes.Kind("v1", "ConfigMap")]
stages = [(kubernetes.Resources(app="a", model="m", scope="s", kinds=kinds), text)]
kubernetes.apply_stages(stages, kubernetes.stages_hash(stages))
heavy = ("lightkube", "lightkube_extensions", "httpx")
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


def test_rendering_and_an_unchanged_hash_do_not_import_lightkube(templates):
    env = {"PYTHONPATH": str(ROOT / "lib"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_COST, str(templates)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
