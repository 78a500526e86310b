"""The PodDefault webhook: its certificate, renewal at 2/3, rotation, containers and hook cost."""

from __future__ import annotations

import base64
import dataclasses

import ops
import pytest
from ops import testing
from unit.resource_dispatcher.helpers import (
    certificates_secret,
    containers,
    namespace_watch,
    offer,
    secret_object,
    state,
    webhook,
)

from kubeflow_charms import certificates


def _ca_bundle(kube) -> str:
    (config,) = kube.of_kind("MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/apply-poddefault"
    assert hook["namespaceSelector"] == {
        "matchLabels": {"app.kubernetes.io/part-of": "kubeflow-profile"}
    }
    return base64.b64decode(hook["clientConfig"]["caBundle"]).decode()


def _bundle(out: testing.State) -> certificates.CertificateBundle:
    return certificates.CertificateBundle.from_content(certificates_secret(out).latest_content)


def _pushed(ctx, out: testing.State, path: str) -> str:
    fs = out.get_container(webhook.CONTAINER).get_filesystem(ctx)
    return (fs / path.lstrip("/")).read_text()


def test_first_hook_makes_the_certificate_and_starts_both_services(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state())

    bundle = _bundle(out)
    assert _ca_bundle(kube) == bundle.ca_cert
    assert _pushed(ctx, out, webhook.CERT_FILE) == bundle.tls_cert
    assert _pushed(ctx, out, webhook.KEY_FILE) == bundle.tls_key
    service = out.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE]
    assert service.command.startswith("/webhook --tlsCertFile=/etc/webhook/certs/tls.crt")
    watch = out.get_container(namespace_watch.CONTAINER).plan.services[namespace_watch.SERVICE]
    assert "--watch -o name" in watch.command
    assert "/charm/bin/pebble notify kubeflow.org/profile-namespace" in watch.command
    assert watch.environment == {"PEBBLE_SOCKET": "/charm/container/pebble.socket"}
    # The Service the certificate names is the one in front of the webhook.
    svc = kube.get("Service", "resource-dispatcher-webhook", "kubeflow")
    assert svc is not None and svc["spec"]["ports"][0]["targetPort"] == 4443
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "resource-dispatcher-webhook.kubeflow.svc" in sans.get_values_for_type(x509.DNSName)
    assert out.unit_status == testing.ActiveStatus("0 app(s) dispatched to 0 profile namespace(s)")


def test_settled_update_status_writes_nothing(ctx, kube):
    relation, secret = offer("secrets", "minio", [secret_object("minio-credentials")])
    settled = ctx.run(ctx.on.config_changed(), state(relation, secrets={secret}))
    writes = len(kube.writes)

    out = ctx.run(ctx.on.update_status(), settled)

    assert len(kube.writes) == writes
    assert out.relations == settled.relations
    assert certificates_secret(out).latest_content == certificates_secret(settled).latest_content
    assert (
        out.get_container(webhook.CONTAINER).layers
        == settled.get_container(webhook.CONTAINER).layers
    )


def test_serving_certificate_renewed_at_two_thirds_on_update_status(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())
    before = _bundle(settled)
    secret = certificates_secret(settled)
    aged = dict(secret.latest_content, **{"not-before": "2000-01-01T00:00:00+00:00"})
    aged_secret = dataclasses.replace(secret, tracked_content=aged, latest_content=aged)
    aged_state = dataclasses.replace(settled, secrets={aged_secret})

    out = ctx.run(ctx.on.update_status(), aged_state)

    after = _bundle(out)
    assert after.serial != before.serial and after.ca_serial == before.ca_serial
    assert _pushed(ctx, out, webhook.CERT_FILE) == after.tls_cert
    env = out.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE].environment
    assert env == {"TLS_SERIAL": after.serial}  # a new plan: the webhook restarted


def test_rotate_certificates_updates_the_ca_bundle_in_the_same_hook(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())
    before = _bundle(settled)

    out = ctx.run(ctx.on.action("rotate-certificates"), settled)

    after = _bundle(out)
    assert after.ca_serial != before.ca_serial
    assert _ca_bundle(kube) == after.ca_cert
    assert _pushed(ctx, out, webhook.CERT_FILE) == after.tls_cert
    env = out.get_container(webhook.CONTAINER).plan.services[webhook.SERVICE].environment
    assert env == {"TLS_SERIAL": after.serial}
    assert ctx.action_results is not None and ctx.action_results["ca-serial"] == after.ca_serial


def test_leader_removes_the_old_certificates_revision(ctx, kube):
    rotated = ctx.run(
        ctx.on.action("rotate-certificates"), ctx.run(ctx.on.config_changed(), state())
    )

    settled = ctx.run(ctx.on.update_status(), rotated)  # the leader reads the latest

    out = ctx.run(ctx.on.secret_remove(certificates_secret(settled), revision=1), settled)

    assert ctx.removed_secret_revisions == [1]
    assert out.unit_status == settled.unit_status
    assert out.unit_status.name == "active"


def test_rotate_certificates_on_a_non_leader_fails(ctx, kube):
    with pytest.raises(testing.ActionFailed, match="leader"):
        ctx.run(ctx.on.action("rotate-certificates"), state(leader=False))


def test_containers_not_ready(ctx, kube):
    out = ctx.run(ctx.on.config_changed(), state(containers=containers(can_connect=False)))

    assert out.unit_status == testing.WaitingStatus(
        "waiting for the poddefaults-webhook container"
    )
    # The leader still makes the certificate and applies the cluster objects.
    assert certificates_secret(out) is not None
    assert len(kube.of_kind("MutatingWebhookConfiguration")) == 1


def test_non_leader_runs_the_webhook_with_the_leader_certificate(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())
    follower = dataclasses.replace(
        settled, leader=False, containers=containers(), secrets=settled.secrets
    )
    writes = len(kube.writes)

    out = ctx.run(ctx.on.pebble_ready(follower.get_container(webhook.CONTAINER)), follower)

    assert _pushed(ctx, out, webhook.CERT_FILE) == _bundle(settled).tls_cert
    assert len(kube.writes) == writes
    assert out.unit_status == testing.ActiveStatus()


def test_a_unit_that_stopped_leading_says_it_has_the_certificate(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())
    follower = dataclasses.replace(
        settled, leader=False, containers=containers(), secrets=settled.secrets
    )
    serving = ctx.run(ctx.on.pebble_ready(follower.get_container(webhook.CONTAINER)), follower)
    assert serving.unit_status == testing.ActiveStatus()
    # Juju runs leader-settings-changed on a unit that no longer leads (juju/juju
    # worker/uniter/leadership/resolver.go); the charm does not observe it, and
    # ops.testing builds it without naming it in CharmEvents.
    leader_settings_changed = type(ctx.on.leader_elected())("leader_settings_changed")

    out = ctx.run(leader_settings_changed, serving)

    assert out.unit_status == testing.ActiveStatus()


def _webhook_check(state: testing.State, status: ops.pebble.CheckStatus) -> testing.State:
    workload = state.get_container(webhook.CONTAINER)
    infos = {
        dataclasses.replace(info, status=status, failures=0 if status.value == "up" else 3)
        for info in workload.check_infos
    }
    changed = dataclasses.replace(workload, check_infos=infos)
    return dataclasses.replace(state, containers=(state.containers - {workload}) | {changed})


def test_a_webhook_that_does_not_answer_is_reported_until_it_does(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())
    assert settled.unit_status.name == "active"
    down = _webhook_check(settled, ops.pebble.CheckStatus.DOWN)
    (info,) = down.get_container(webhook.CONTAINER).check_infos

    failed = ctx.run(ctx.on.pebble_check_failed(down.get_container(webhook.CONTAINER), info), down)

    assert failed.unit_status == testing.WaitingStatus(
        "the PodDefault webhook is not ready yet (check webhook-ready)"
    )
    up = _webhook_check(failed, ops.pebble.CheckStatus.UP)
    (info,) = up.get_container(webhook.CONTAINER).check_infos
    out = ctx.run(ctx.on.pebble_check_recovered(up.get_container(webhook.CONTAINER), info), up)
    assert out.unit_status.name == "active"


def test_kubernetes_forbidden_asks_for_trust(ctx, kube, monkeypatch):
    from kubeflow_charms.kubernetes import KubernetesError

    def refuse():
        raise KubernetesError("Forbidden: no", status=403)

    from unit.resource_dispatcher.helpers import CHARM

    monkeypatch.setattr(CHARM, "profile_namespaces", refuse)
    out = ctx.run(ctx.on.config_changed(), state())

    assert out.unit_status == testing.BlockedStatus(
        "not allowed to manage Kubernetes objects: "
        "run `juju trust resource-dispatcher --scope=cluster`"
    )
    assert isinstance(out.app_status, ops.StatusBase)


def _hook(kube) -> dict:
    (config,) = kube.of_kind("MutatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    return hook


def test_the_api_server_sends_a_review_the_webhook_can_answer(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())

    hook = _hook(kube)
    # The API server sends a review of the first version it knows in the list, and
    # refuses a v1 answer without apiVersion/kind (kubernetes/apiserver v0.31.0,
    # pkg/admission/plugin/webhook/request/admissionreview.go). The upstream webhook
    # answers without them (kubeflow/kubeflow v1.10.0,
    # components/admission-webhook/main.go#serve): only v1beta1 reviews pass.
    sent = next(v for v in hook["admissionReviewVersions"] if v in ("v1", "v1beta1"))
    assert sent == "v1beta1"
    assert hook["admissionReviewVersions"] == ["v1beta1", "v1"]
    assert hook["failurePolicy"] == "Fail"


def test_the_webhook_is_called_once_per_pod(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())

    # A second call would append the PodDefaults' envFrom entries again (upstream's
    # mergeEnvFrom appends without checking): no reinvocation, as upstream's default.
    assert _hook(kube)["reinvocationPolicy"] == "Never"


def _pruned(value, schema: dict):
    """What the API server keeps of `value` under a structural schema (unknown fields dropped)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        return {k: _pruned(v, props[k]) for k, v in value.items() if k in props}
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: _pruned(v, schema["additionalProperties"]) for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [_pruned(v, schema["items"]) for v in value]
    return value


def test_every_pod_default_field_is_kept_by_the_crd(ctx, kube):
    ctx.run(ctx.on.config_changed(), state())
    crd = kube.get("CustomResourceDefinition", "poddefaults.kubeflow.org")
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    container = {"name": "side", "image": "busybox"}
    # Every field of PodDefaultSpec (kubeflow/kubeflow v1.10.0,
    # components/admission-webhook/pkg/apis/settings/v1alpha1/poddefault_types.go).
    spec = {
        "selector": {"matchLabels": {"access-ml-pipeline": "true"}},
        "desc": "pull from the private registry",
        "serviceAccountName": "default-editor",
        "automountServiceAccountToken": True,
        "annotations": {"a": "b"},
        "labels": {"c": "d"},
        "args": ["--x"],
        "command": ["/bin/true"],
        "env": [{"name": "A", "value": "1"}],
        "envFrom": [{"secretRef": {"name": "s"}}],
        "volumes": [{"name": "v", "emptyDir": {}}],
        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
        "tolerations": [{"key": "sku", "operator": "Exists"}],
        "initContainers": [container],
        "sidecars": [container],
        "imagePullSecrets": [{"name": "registry-credentials"}],
    }

    assert _pruned(spec, schema) == spec


def test_profile_users_may_read_pod_defaults_until_the_app_goes(ctx, kube):
    settled = ctx.run(ctx.on.config_changed(), state())

    role = kube.get("ClusterRole", "kubeflow-poddefaults-view")
    assert role is not None
    label = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-view"
    assert role["metadata"]["labels"][label] == "true"
    assert role["rules"] == [
        {
            "apiGroups": ["kubeflow.org"],
            "resources": ["poddefaults"],
            "verbs": ["get", "list", "watch"],
        }
    ]

    ctx.run(ctx.on.remove(), dataclasses.replace(settled, planned_units=0))

    assert kube.get("ClusterRole", "kubeflow-poddefaults-view") is None
    assert kube.of_kind("MutatingWebhookConfiguration") == []
    # The users' own PodDefaults live on: the CRD stays.
    assert kube.get("CustomResourceDefinition", "poddefaults.kubeflow.org") is not None
