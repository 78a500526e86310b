"""Trust: each charm talks to the cluster as its own application, with what Juju lets it do.

Juju makes a service account for every application's pods and binds it to
rules that `juju trust` switches between everything and very little (see
`untrusted_namespace_rules` in fake_kubernetes.py, read from Juju's source).
In the simulation every charm's requests carry its application's token, so a
charm that needs trust and lacks it in the bundle is refused as it would be
in a real model, and must say so in its status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from bundle.fake_kubernetes import FakeKubernetes
from bundle.simulator import BUNDLE, Model, load_bundle, simulate
from bundle.workloads import Workloads
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.resources.rbac_authorization_v1 import ClusterRole

OVERLAYS = sorted((BUNDLE.parent / "overlays").glob("*.yaml"))
CASES = [pytest.param([], id="bundle")] + [pytest.param([o], id=o.stem) for o in OVERLAYS]
TRUSTED = sorted(
    name for name, spec in load_bundle(BUNDLE)["applications"].items() if spec.get("trust")
)
UNTRUSTED = {"mysql", "minio", "dex", "oidc-gateway"}  # the bundle's comments say why


def _needs_trust(app: str) -> str:
    return f"not allowed to manage Kubernetes objects: run `juju trust {app} --scope=cluster`"


def _not_active(model: Model) -> dict[str, str]:
    statuses = {**model.statuses, **model.app_statuses}
    return {name: s.message for name, s in statuses.items() if s.name != "active"}


# --- the fake cluster's side


def test_an_untrusted_apps_write_of_a_cluster_object_is_forbidden():
    fake = FakeKubernetes()
    role = ClusterRole(metadata=ObjectMeta(name="dex-reader"))
    with pytest.raises(ApiError) as refused:
        fake.client(field_manager="dex", app="dex").apply(role)
    status = refused.value.status
    assert (status.code, status.reason) == (403, "Forbidden")
    assert status.message == (
        'clusterroles.rbac.authorization.k8s.io "dex-reader" is forbidden: User'
        ' "system:serviceaccount:kubeflow:dex" cannot patch resource "clusterroles" in API'
        ' group "rbac.authorization.k8s.io" at the cluster scope'
    )
    assert fake.of_kind("ClusterRole") == [] and fake.writes == []
    assert fake.forbidden == [status.message]

    # The same write from a trusted application, or from a test itself, goes through.
    fake.client(field_manager="istio", app="istio", trusted=True).apply(role)
    fake.client().apply(ClusterRole(metadata=ObjectMeta(name="by-a-test")))
    assert {r["metadata"]["name"] for r in fake.of_kind("ClusterRole")} == {
        "dex-reader",
        "by-a-test",
    }


def test_an_untrusted_apps_reads_are_refused_not_answered_empty():
    fake = FakeKubernetes()
    fake.client().create(ConfigMap(metadata=ObjectMeta(name="settings", namespace="kubeflow")))
    client = fake.client(app="dex")
    with pytest.raises(ApiError) as refused:
        list(client.list(ConfigMap, namespace="kubeflow"))
    assert refused.value.status.code == 403
    assert refused.value.status.message == (
        'configmaps is forbidden: User "system:serviceaccount:kubeflow:dex" cannot list'
        ' resource "configmaps" in API group "" in the namespace "kubeflow"'
    )
    with pytest.raises(ApiError, match='cannot get resource "configmaps"'):
        client.get(ConfigMap, "settings", namespace="kubeflow")


def _as(fake: FakeKubernetes, token: str, method: str, path: str, body: Any = None) -> int:
    apply = method == "PATCH"  # a server-side apply must name its field manager
    request = httpx.Request(
        method,
        f"https://kubernetes.invalid{path}",
        params={"fieldManager": "probe"} if apply else None,
        json=body,
        headers={
            "Authorization": f"Bearer {token}",
            **({"content-type": "application/apply-patch+yaml"} if body else {}),
        },
    )
    return fake.handle(request).status_code


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "dex-extra", "namespace": "kubeflow"},
    "spec": {"ports": [{"port": 80}]},
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        # What Juju's Role (in the model's namespace) and ClusterRole allow.
        ("GET", "/api/v1/namespaces", None, 200),
        ("GET", "/api/v1/namespaces/kubeflow", None, 200),
        ("GET", "/api/v1/namespaces/elsewhere", None, 404),  # allowed, and not there
        ("GET", "/api/v1/namespaces/kubeflow/pods", None, 200),
        ("GET", "/api/v1/namespaces/kubeflow/services", None, 200),
        ("GET", "/api/v1/namespaces/kubeflow/services/dex", None, 404),
        ("PATCH", "/api/v1/namespaces/kubeflow/services/dex-extra", SERVICE, 201),
        # Everything else.
        ("GET", "/api/v1/namespaces?watch=true", None, 403),
        ("PATCH", "/api/v1/namespaces/kubeflow", NAMESPACE, 403),
        ("GET", "/api/v1/pods", None, 403),  # the Role is the model namespace's only
        ("GET", "/api/v1/namespaces/elsewhere/services", None, 403),
        ("POST", "/api/v1/namespaces/kubeflow/services", SERVICE, 403),  # patch, not create
        ("DELETE", "/api/v1/namespaces/kubeflow/services/dex", None, 403),
        ("GET", "/api/v1/namespaces/kubeflow/configmaps", None, 403),
        ("GET", "/api/v1/namespaces/kubeflow/secrets", None, 403),
        ("POST", "/api/v1/namespaces/kubeflow/serviceaccounts/dex/token", {}, 403),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", None, 403),
        ("GET", "/apis/example.com/v1/things", None, 403),  # before routing: 403, not 404
    ],
)
def test_an_untrusted_app_may_do_what_juju_allows_and_nothing_else(method, path, body, code):
    fake = FakeKubernetes()
    token = fake.service_account("dex", trusted=False)
    assert _as(fake, token, method, path, body) == code
    assert len(fake.forbidden) == (code == 403)


def test_a_token_nobody_was_given_is_unauthorized():
    fake = FakeKubernetes()
    assert _as(fake, "made-up", "GET", "/api/v1/namespaces") == 401


def test_juju_trust_and_its_removal_change_what_the_same_token_may_do():
    fake = FakeKubernetes()
    path = "/api/v1/namespaces/kubeflow/configmaps"
    token = fake.service_account("istio", trusted=False)
    assert _as(fake, token, "GET", path) == 403
    assert fake.service_account("istio", trusted=True) == token
    assert _as(fake, token, "GET", path) == 200
    fake.service_account("istio", trusted=False)
    assert _as(fake, token, "GET", path) == 403


# --- the bundle


def test_the_bundle_trusts_the_charms_it_says_it_does():
    assert TRUSTED == [
        "istio",
        "katib",
        "kfp",
        "knative-serving",
        "kserve",
        "kubeflow-dashboard",
        "kubeflow-notebooks",
        "kubeflow-trainer",
        "resource-dispatcher",
    ]
    apps = load_bundle(BUNDLE)["applications"]
    assert UNTRUSTED <= set(apps)
    assert not any(apps[name].get("trust") for name in UNTRUSTED)


@pytest.mark.parametrize("overlays", CASES)
def test_no_charm_of_the_bundle_is_refused_anything(settled_models, overlays):
    """Every charm that talks to the API is trusted, or asks only what Juju allows without."""
    model = settled_models.settled(overlays)
    assert model.workloads.kubernetes.forbidden == []
    assert {name for name, app in model.apps.items() if not app.trust} >= UNTRUSTED
    assert _not_active(model) == {}


# A whole deploy each: the gateway everything waits for, and the charm that writes
# into namespaces it may list without trust. Every trusted charm is held to the
# same on a settled model below.
@pytest.mark.parametrize("app", ["istio", "resource-dispatcher"])
def test_a_charm_that_needs_trust_and_lacks_it_says_so(s3_endpoint, tmp_path: Path, app):
    bundle = load_bundle(BUNDLE)
    bundle["applications"][app]["trust"] = False
    model = simulate(bundle, Workloads(s3_endpoint), tmp_path)

    problems = _not_active(model)
    assert problems[f"{app}/0"] == _needs_trust(app)
    assert model.app_statuses[app].name == "blocked"
    refusals = model.workloads.kubernetes.forbidden
    assert refusals
    assert all(f'User "system:serviceaccount:kubeflow:{app}"' in r for r in refusals)

    # `juju trust <app> --scope=cluster`: the next update-status brings everything up.
    model.apps[app].trust = True
    model.update_status_everywhere()
    assert _not_active(model) == {}


@pytest.mark.parametrize("app", TRUSTED)
def test_trust_removed_from_a_settled_charm_blocks_it(settled_models, tmp_path: Path, app):
    model = settled_models.own(tmp_path)
    cluster = model.workloads.kubernetes
    writes = len(cluster.writes)

    model.apps[app].trust = False  # `juju trust <app> --remove`
    model.update_status_everywhere()
    assert model.statuses[f"{app}/0"].message == _needs_trust(app)
    assert model.statuses[f"{app}/0"].name == "blocked"
    assert len(cluster.writes) == writes

    model.apps[app].trust = True
    model.update_status_everywhere()
    assert _not_active(model) == {}
    assert model.update_status_everywhere() == []
