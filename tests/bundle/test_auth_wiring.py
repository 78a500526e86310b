"""The login wiring as data, in the simulated model.

With istio, dex and oidc-gateway related, every route that needs a login
goes through the OIDC gateway, the login pages do not, and without the
gateway no such route is served at all (fail closed).

Two route-probe test charms ask the mesh for a route each: `/probe` with a
login, `/open` without.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bundle.simulator import Model

MESH_FILE = "/etc/istio/config/mesh"
GATEWAY = "oidc-gateway.kubeflow.svc.cluster.local"


def with_probes(bundle: dict) -> dict:
    """The bundle with the two route probes related to the mesh."""
    bundle["applications"]["probe"] = {"charm": "route-probe", "options": {"prefix": "/probe"}}
    bundle["applications"]["open-probe"] = {
        "charm": "route-probe",
        "options": {"prefix": "/open"},
    }
    bundle["relations"] += [
        ["istio:istio-ingress-route", "probe:istio-ingress-route"],
        ["istio:istio-ingress-route-unauthenticated", "open-probe:istio-ingress-route"],
    ]
    return bundle


@pytest.fixture
def model(settled_models) -> Iterator[Model]:
    """The settled bundle with the probes, shared by the tests that only read it."""
    yield from settled_models.shared(variant=with_probes)


@pytest.fixture
def own_model(settled_models, tmp_path: Path) -> Model:
    """A copy of the settled bundle with the probes, for the test alone to change."""
    return settled_models.own(tmp_path, variant=with_probes)


def _routes(model: Model) -> dict[str, dict]:
    """Served routes by path (`/a/` and exactly `/a` both under `/a`): the VirtualServices."""
    routes = {}
    for vs in model.workloads.kubernetes.of_kind("VirtualService"):
        for http in vs["spec"]["http"]:
            for match in http["match"]:
                uri = match["uri"]
                routes.setdefault(uri.get("exact") or uri["prefix"].rstrip("/") or "/", http)
    return routes


def _policies_for(model: Model, path: str, action: str, port: int = 8080) -> list[dict]:
    """The gateway's AuthorizationPolicies of an action whose rules match `path` on `port`."""
    found = []
    for policy in model.workloads.kubernetes.of_kind("AuthorizationPolicy"):
        spec = policy["spec"]
        if spec.get("action") != action:
            continue
        for rule in spec.get("rules", []):
            for to in rule.get("to", []):
                operation = to["operation"]
                if "ports" in operation and str(port) not in operation["ports"]:
                    continue
                included = any(fnmatch.fnmatchcase(path, p) for p in operation.get("paths", ["*"]))
                excluded = any(fnmatch.fnmatchcase(path, p) for p in operation.get("notPaths", []))
                if included and not excluded:
                    found.append(policy)
    return found


def _checked_by(model: Model, path: str, port: int = 8080) -> list[dict]:
    """The ext_authz providers (mesh config entries) that check a request for `path`."""
    mesh = yaml.safe_load(model.container_file("istio/0", "istiod", MESH_FILE))
    known = {p["name"]: p for p in mesh.get("extensionProviders", [])}
    return [
        known[policy["spec"]["provider"]["name"]]
        for policy in _policies_for(model, path, "CUSTOM", port)
    ]


def test_everything_settles_active(model: Model):
    for name, status in {**model.statuses, **model.app_statuses}.items():
        assert status.name == "active", f"{name}: {status.message}"
    assert model.statuses["probe/0"].message.endswith("/probe")
    assert model.workloads.kubernetes.rejected == []
    assert model.leaks() == []


def test_login_routes_go_through_the_gateway_and_login_pages_do_not(model: Model):
    routes = _routes(model)
    assert {"/probe", "/open", "/dex", "/oauth2"} <= set(routes)

    (provider,) = _checked_by(model, "/probe/notebooks/lab")
    ext = provider["envoyExtAuthzHttp"]
    assert (ext["service"], ext["port"]) == (GATEWAY, 4180)
    assert "kubeflow-userid" in ext["headersToUpstreamOnAllow"]
    assert "cookie" in ext["includeRequestHeadersInCheck"]
    assert {"location", "set-cookie"} <= set(ext["headersToDownstreamOnDeny"])

    for path in ("/open/x", "/open", "/dex/auth", "/oauth2/callback"):
        assert _checked_by(model, path) == [], path
    # A client's copy of the user header never reaches a service through an open route.
    assert "kubeflow-userid" in routes["/open"]["headers"]["request"]["remove"]
    assert "headers" not in routes["/probe"]
    # Closed by default: a path no ingress route claims (the notebook
    # controller's own routes, say) needs a login too.
    assert len(_checked_by(model, "/notebook/alice/lab/")) == 1


def test_without_the_gateway_no_login_route_is_open(own_model: Model):
    model = own_model
    model.remove_relation("istio:forward-auth", "oidc-gateway:forward-auth")
    routes = _routes(model)
    assert "/probe" not in routes  # fail closed: not served at all
    assert {"/open", "/dex", "/oauth2"} <= set(routes)
    assert not any(_checked_by(model, p) for p in ("/probe/", "/open/", "/x/"))
    # Everything but the open routes is denied at the gateway.
    for path in ("/probe/x", "/notebook/alice/lab/", "/"):
        assert _policies_for(model, path, "DENY"), path
    for path in ("/open/x", "/dex/auth", "/oauth2/callback"):
        assert not _policies_for(model, path, "DENY"), path
    mesh = yaml.safe_load(model.container_file("istio/0", "istiod", MESH_FILE))
    assert not mesh.get("extensionProviders")
    istio = model.statuses["istio/0"]
    assert istio.name != "active" or "forward-auth" in istio.message, istio
    assert "forward-auth" in (istio.message + model.app_statuses["istio"].message)


def test_rotating_the_gateway_secrets_reaches_dex_in_one_round(own_model: Model):
    model = own_model

    def client_secret() -> str:
        (record,) = [
            r for r in model.secrets.values() if r.owner_app == "dex" and "secret" in r.content
        ]
        return record.content["secret"]

    before = client_secret()
    results = model.run_action("oidc-gateway/0", "rotate-secrets")
    assert results["client-secret"].startswith("requested from dex")
    after = client_secret()
    assert after != before
    # Dex serves the new secret, and the gateway's proxy has it.
    dex_config = yaml.safe_load(model.container_file("dex/0", "dex", "/etc/dex/config.yaml"))
    assert [c["secret"] for c in dex_config["staticClients"]] == [after]
    proxy_secret = model.container_file(
        "oidc-gateway/0", "oauth2-proxy", "/etc/oauth2-proxy/secrets/client-secret"
    )
    assert proxy_secret.strip() == after
    assert model.leaks() == []


def test_pipelines_ui_api_and_metadata_are_served_behind_the_login(model: Model):
    routes = _routes(model)
    cluster = model.workloads.kubernetes
    for path, service, port, target in (
        ("/pipeline", "ml-pipeline-ui", 80, 3000),
        ("/ml_metadata.MetadataStoreService", "metadata-envoy-service", 9090, 9090),
    ):
        (destination,) = [r["destination"] for r in routes[path]["route"]]
        assert destination["host"] == f"{service}.kubeflow.svc.cluster.local"
        assert destination["port"]["number"] == port
        # The Service the route names leads to where kfp's workload listens in its pod.
        found = cluster.get("Service", service, "kubeflow")
        assert found is not None, service
        assert [(p["port"], p["targetPort"]) for p in found["spec"]["ports"]] == [(port, target)]
        assert "headers" not in routes[path]  # the login's user header reaches the UI
    # The UI, the API the SDK reaches through the UI, and MLMD for the UI: all need a login.
    for path in (
        "/pipeline/",
        "/pipeline/apis/v2beta1/runs",
        "/ml_metadata.MetadataStoreService/GetArtifacts",
    ):
        (provider,) = _checked_by(model, path)
        assert provider["envoyExtAuthzHttp"]["service"] == GATEWAY, path


def test_mlflow_and_inference_hosts_are_served_behind_the_login(model: Model):
    routes = _routes(model)
    (destination,) = [r["destination"] for r in routes["/mlflow"]["route"]]
    assert destination["host"] == "mlflow.kubeflow.svc.cluster.local"
    assert destination["port"]["number"] == 5000
    # MLflow serves its UI and API at the root: the gateway strips the prefix.
    assert routes["/mlflow"]["rewrite"] == {"uri": "/"}
    # The UI, its API calls and the REST API the client uses through the gateway.
    for path in (
        "/mlflow/",
        "/mlflow/ajax-api/2.0/mlflow/experiments/search",
        "/mlflow/api/2.0/mlflow/runs/create",
    ):
        (provider,) = _checked_by(model, path)
        assert provider["envoyExtAuthzHttp"]["service"] == GATEWAY, path
    # An InferenceService's host (KServe's Ingress on the same gateway) matches no open
    # route: its predict path needs a login too.
    (provider,) = _checked_by(model, "/v1/models/iris:predict")
    assert provider["envoyExtAuthzHttp"]["service"] == GATEWAY
