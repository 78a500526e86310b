"""The gateway's rights: its service account may read no Secret, its certificate is a file.

Juju keeps every application's secrets as Secrets in the model's namespace,
where the gateway runs. istiod (1.29.6) would hand the gateway a Gateway's
`credentialName` Secret only if a SubjectAccessReview for the gateway's
account allowed `list secrets` in that namespace, without a name
(istio/istio 1.29.6 pilot/pkg/credentials/kube/secrets.go Authorize, called from
pilot/pkg/xds/sds.go filterAuthorizedResources): a Role limited to one Secret by
name cannot pass that check, one that passes it reads every Secret there. So
the gateway's pods mount their certificate and the Gateway names the files
(`serverCertificate`, `privateKey`), which the proxy's own agent reads and
watches (security/pkg/nodeagent/cache/secretcache.go, same tag).
"""

from __future__ import annotations

from typing import Any

import pytest
from ops import testing
from unit.istio.helpers import CHARM, MODEL, route, settle, state, with_relations

from kubeflow_charms import certificates

HOST = "kubeflow.example.com"
ACCOUNT = {"kind": "ServiceAccount", "name": "istio-ingressgateway", "namespace": MODEL}
SECRET_VERBS = {"get", "list", "watch", "*"}


@pytest.fixture(scope="module")
def tls_pair() -> tuple[str, str]:
    ca_cert, ca_key = certificates.generate_ca("user CA")
    return certificates.generate_serving(ca_cert, ca_key, [HOST])


def _with_tls(pair: tuple[str, str]) -> testing.State:
    cert, key = pair
    secret = testing.Secret(tracked_content={"tls-cert": cert, "tls-key": key})
    return with_relations(
        state(config={"tls-secret-id": secret.id, "external-hostname": HOST}, secrets={secret}),
        route("dex", "/dex", auth=False),
    )


def _bound_to_gateway(kube) -> list[dict[str, Any]]:
    """Every RoleBinding and ClusterRoleBinding naming the gateway's service account."""
    bindings = kube.of_kind("RoleBinding") + kube.of_kind("ClusterRoleBinding")
    return [
        b
        for b in bindings
        if any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == ACCOUNT["name"]
            and s.get("namespace", b["metadata"].get("namespace")) == MODEL
            for s in b.get("subjects") or []
        )
    ]


def _reads_other_secrets(rule: dict[str, Any], served: set[str]) -> bool:
    """Whether a rule lets its subject read a Secret other than those in `served`."""
    if not {"", "*"} & set(rule.get("apiGroups", [])):
        return False
    if not {"secrets", "*"} & set(rule.get("resources", [])):
        return False
    if not SECRET_VERBS & set(rule.get("verbs", [])):
        return False
    names = set(rule.get("resourceNames") or [])
    return not names or not names <= served


def test_reads_other_secrets_sees_the_rules_that_would():
    # The check itself: the chart's Role of istio's gateway chart would fail it.
    served = {"kubeflow-gateway-tls"}
    chart = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}
    assert _reads_other_secrets(chart, served)
    assert _reads_other_secrets({**chart, "resourceNames": ["juju-secret"]}, served)
    assert not _reads_other_secrets({**chart, "resourceNames": ["kubeflow-gateway-tls"]}, served)
    assert not _reads_other_secrets({**chart, "resources": ["configmaps"]}, served)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_no_rule_lets_the_gateway_read_secrets(ctx, kube, tls_pair, tls):
    settle(ctx, _with_tls(tls_pair) if tls else state())

    served = {CHARM.TLS_SECRET} if tls else set()
    assert kube.get("ServiceAccount", ACCOUNT["name"], MODEL) is not None
    for binding in _bound_to_gateway(kube):
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = kube.get(ref["kind"], ref["name"], ns)
        assert role is not None
        for rule in role.get("rules", []):
            assert not _reads_other_secrets(rule, served), (binding["metadata"]["name"], rule)
    # Today nothing at all is bound to it.
    assert _bound_to_gateway(kube) == []
    assert kube.of_kind("Role") == []


def test_the_certificate_is_mounted_and_named_as_files(ctx, kube, tls_pair):
    settle(ctx, _with_tls(tls_pair))

    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "gateway-tls"]
    assert volume == {"name": "gateway-tls", "secret": {"secretName": "kubeflow-gateway-tls"}}
    (proxy,) = pod["containers"]
    (mount,) = [m for m in proxy["volumeMounts"] if m["name"] == "gateway-tls"]
    assert mount == {
        "name": "gateway-tls",
        "mountPath": "/etc/istio/gateway-tls",
        "readOnly": True,
    }
    gateway = kube.get("Gateway", "kubeflow-gateway", MODEL)
    _, https = gateway["spec"]["servers"]
    assert "credentialName" not in https["tls"]
    # The keys of a kubernetes.io/tls Secret are the file names in its volume.
    secret = kube.get("Secret", "kubeflow-gateway-tls", MODEL)
    assert set(secret["data"]) == {"tls.crt", "tls.key"}
    assert https["tls"]["serverCertificate"] == f"{mount['mountPath']}/tls.crt"
    assert https["tls"]["privateKey"] == f"{mount['mountPath']}/tls.key"
    # The Secret is written before the pods that mount it.
    order = [(kind, name) for _, kind, name in kube.writes]
    assert order.index(("Secret", "kubeflow-gateway-tls")) < order.index(
        ("Deployment", "istio-ingressgateway")
    )


def test_without_tls_nothing_is_mounted(ctx, kube):
    settle(ctx, state())

    deployment = kube.get("Deployment", "istio-ingressgateway", MODEL)
    pod = deployment["spec"]["template"]["spec"]
    assert "gateway-tls" not in {v["name"] for v in pod["volumes"]}
    assert kube.get("Secret", "kubeflow-gateway-tls", MODEL) is None


def test_the_secrets_role_of_earlier_versions_is_removed(ctx, kube):
    from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
    from lightkube_extensions.batch import create_charm_default_labels

    # What earlier versions applied: a Role on every Secret of the namespace, bound to the
    # gateway, labelled as the charm labels the objects of its `mesh` scope.
    labels = create_charm_default_labels("istio", MODEL, scope="mesh")
    meta = {"name": "istio-ingressgateway-sds", "namespace": MODEL, "labels": labels}
    client = kube.client()
    client.create(
        Role.from_dict(
            {
                "metadata": meta,
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "verbs": ["get", "watch", "list"],
                    }
                ],
            }
        )
    )
    client.create(
        RoleBinding.from_dict(
            {
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "istio-ingressgateway-sds",
                },
                "subjects": [ACCOUNT],
            }
        )
    )
    assert _bound_to_gateway(kube) != []

    settle(ctx, state())

    assert kube.get("Role", "istio-ingressgateway-sds", MODEL) is None
    assert kube.get("RoleBinding", "istio-ingressgateway-sds", MODEL) is None
    assert _bound_to_gateway(kube) == []
