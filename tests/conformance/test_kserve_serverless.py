"""Serverless InferenceServices against the kserve charm: scale to zero and a canary.

Each InferenceService is checked against the charm's own CRD (tests/crd_schema.py).
What KServe v0.14.1 makes of it in Serverless mode is modelled compactly
below from the facts in facts/kserve.yaml (`serverless`), each read in
kserve/kserve v0.14.1:

- the Knative Service `<name>-predictor`: its revision template carries the
  InferenceService's labels and annotations (less those KServe keeps for
  itself) with min-scale, max-scale, the autoscaler class and the scale
  target and metric added; its pod spec is the
  one the runtimes give (modelled in test_kserve_isvc); its traffic is the
  canary split once a revision has been rolled out, else all to the latest
  (pkg/controller/v1beta1/inferenceservice/reconcilers/knative/
  ksvc_reconciler.go createKnativeService; components/predictor.go);
- the status field that drives the split, `latestRolledoutRevision`
  (pkg/apis/serving/v1beta1/inference_service_status.go PropagateStatus);
- the Istio VirtualService `<name>` (reconcilers/ingress/
  ingress_reconciler.go createIngress), from the ingress config the charm
  writes: our gateway from istio, Knative's local gateway from the
  knative-serving relation; and the ExternalName Service `<name>` that
  points the cluster-local address at Knative's local gateway.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conformance import facts
from conformance.test_kserve_isvc import AKS, CPU_POOL, ISVC, SOURCE_URI, predictor_deployment
from crd_schema import CustomResourceSchema
from unit.kserve.helpers import GATEWAY_NAME, GATEWAY_NAMESPACE
from unit.kserve.helpers import kserve_cluster as cluster
from unit.kserve.helpers import workloads as wl

from kubeflow_interfaces.knative_serving import KnativeServing

FACTS = facts.load("kserve")
SERVERLESS = FACTS["serverless"]
KUBEFLOW = FACTS["inferenceservice-config"]
CLUSTER_DOMAIN = "cluster.local"
# What the knative-serving charm publishes in the bundle (Knative in the model `kubeflow`).
KNATIVE = KnativeServing(
    namespace="kubeflow",
    local_gateway="kubeflow/knative-local-gateway",
    local_gateway_service="knative-local-gateway.kubeflow.svc.cluster.local",
    domain="models.example.com",
    version="1.16.2",
)
_JSON_TYPES = {"string": {"type": "string"}, "boolean": {"type": "boolean"}}

# --- the Knative Service CRD -------------------------------------------------------------------
# Test-only and compact: the fields of serving.knative.dev/v1 Service that KServe sets, typed as
# upstream's CRD types them (facts `ksvc-traffic-fields`, `ksvc-template-annotations`). To be
# replaced by the knative-serving charm's own CRD once that charm is in the repository.


def _traffic_item() -> dict[str, Any]:
    fields = SERVERLESS["ksvc-traffic-fields"].value
    properties = {
        name: ({"type": "integer", "format": "int64"} if kind == "integer" else _JSON_TYPES[kind])
        for name, kind in fields.items()
    }
    return {"type": "object", "properties": properties}


def _string_map() -> dict[str, Any]:
    return copy.deepcopy(SERVERLESS["ksvc-template-annotations"].value)


_OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_OPEN_LIST = {"type": "array", "items": _OPEN}
KSVC_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "services.serving.knative.dev"},
    "spec": {
        "group": "serving.knative.dev",
        "names": {"kind": "Service", "plural": "services", "singular": "service"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "template": {
                                        "type": "object",
                                        "properties": {
                                            "metadata": {
                                                "type": "object",
                                                "properties": {
                                                    "annotations": _string_map(),
                                                    "labels": _string_map(),
                                                },
                                            },
                                            "spec": {
                                                "type": "object",
                                                "required": ["containers"],
                                                "properties": {
                                                    "containers": _OPEN_LIST,
                                                    "nodeSelector": _string_map(),
                                                    "tolerations": _OPEN_LIST,
                                                    "affinity": _OPEN,
                                                    "serviceAccountName": {"type": "string"},
                                                    "volumes": _OPEN_LIST,
                                                    "imagePullSecrets": _OPEN_LIST,
                                                    "containerConcurrency": {
                                                        "type": "integer",
                                                        "format": "int64",
                                                    },
                                                    "timeoutSeconds": {
                                                        "type": "integer",
                                                        "format": "int64",
                                                    },
                                                },
                                            },
                                        },
                                    },
                                    "traffic": {"type": "array", "items": _traffic_item()},
                                },
                            },
                            "status": _OPEN,
                        },
                    }
                },
            }
        ],
    },
}
KSVC = CustomResourceSchema(KSVC_CRD)


# --- what the charm configures ------------------------------------------------------------------


def ingress_config(knative: KnativeServing = KNATIVE) -> dict[str, Any]:
    """The charm's `ingress` as the controller reads it (configmap.go NewIngressConfig)."""
    data = cluster.inferenceservice_config(
        AKS, gateway_namespace=GATEWAY_NAMESPACE, gateway_name=GATEWAY_NAME, knative=knative
    )
    ingress = json.loads(data["ingress"])
    if not ingress.get("knativeLocalGatewayService"):
        ingress["knativeLocalGatewayService"] = ingress["localGatewayService"]
    return ingress


# --- what KServe makes --------------------------------------------------------------------------


def serverless_isvc(name: str = "iris", **predictor: Any) -> dict[str, Any]:
    """An sklearn model, created under the Serverless default: no mode annotation."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "alice"},
        "spec": {
            "predictor": {
                "serviceAccountName": "kserve-models",
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://mlflow/1/0123abcd/artifacts/model",
                },
            }
            | predictor
        },
    }


def _predictor_name(isvc: dict) -> str:
    return SERVERLESS["predictor-service-name"].value.format(name=isvc["metadata"]["name"])


def _traffic(predictor: dict, rolled_out: str) -> list[dict[str, Any]]:
    """ksvc_reconciler.go:113-150: the canary split once something was rolled out."""
    canary = predictor.get("canaryTrafficPercent")
    if canary is None or not rolled_out:
        return copy.deepcopy(SERVERLESS["rollout-traffic"].value)
    latest, previous = SERVERLESS["canary-traffic"].value
    out = [{**latest, "percent": canary}]
    if canary < 100:
        out.append({**previous, "revisionName": rolled_out, "percent": 100 - canary})
    return out


def knative_service(isvc: dict, rolled_out: str = "") -> dict[str, Any]:
    """The predictor's Knative Service, given the status' `latestRolledoutRevision`."""
    predictor = isvc["spec"]["predictor"]
    meta = isvc["metadata"]
    dropped = SERVERLESS["template-annotations-dropped"].value
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k not in dropped}
    annotations[SOURCE_URI] = predictor["model"]["storageUri"]
    min_replicas = predictor.get("minReplicas", SERVERLESS["default-min-replicas"].value)
    annotations[SERVERLESS["min-scale-annotation"].value] = str(min_replicas)
    if predictor.get("maxReplicas", 0):
        annotations[SERVERLESS["max-scale-annotation"].value] = str(predictor["maxReplicas"])
    autoscaler = SERVERLESS["autoscaler-class"].value
    annotations.setdefault(autoscaler["annotation"], autoscaler["default"])
    for field, fact in (("scaleTarget", "scale-target"), ("scaleMetric", "scale-metric")):
        if field in predictor:
            annotations[SERVERLESS[f"{fact}-annotation"].value] = str(predictor[field])
    labels = meta.get("labels", {}) | {
        "serving.kserve.io/inferenceservice": meta["name"],
        "component": "predictor",
    }
    template_labels = {
        k: v for k, v in labels.items() if k not in SERVERLESS["template-labels-dropped"].value
    }
    pod = predictor_deployment(
        isvc, [d for d in AKS.runtimes() if d["kind"] == "ClusterServingRuntime"]
    )
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": _predictor_name(isvc),
            "namespace": meta["namespace"],
            "labels": labels,
        },
        "spec": {
            "template": {
                "metadata": {"labels": template_labels, "annotations": annotations},
                "spec": pod["spec"]["template"]["spec"],
            },
            "traffic": _traffic(predictor, rolled_out),
        },
    }


def latest_rolled_out(current: str, latest_ready: str, traffic: list[dict[str, Any]]) -> str:
    """PropagateStatus (inference_service_status.go:376-384), the roll-forward half."""
    for target in traffic:
        if target.get("revisionName") == latest_ready and target.get("latestRevision"):
            if current != latest_ready and target.get("percent") == 100:
                return latest_ready
    return current


def virtual_service(isvc: dict, ingress: dict, domain: str) -> dict[str, Any]:
    """The VirtualService `<name>` once the predictor is ready (ingress_reconciler.go).

    Each match's authority is the host itself here; KServe matches a regex of
    it (constants.HostRegExp), with any port.
    """
    name, namespace = isvc["metadata"]["name"], isvc["metadata"]["namespace"]
    internal = f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"
    backend = f"{_predictor_name(isvc)}.{namespace}.svc.{CLUSTER_DOMAIN}"
    # The predictor's URL host, by Knative's domain template, without "-predictor".
    predictor_host = (
        SERVERLESS["knative-domain-template"]
        .value.replace("{{.Name}}", _predictor_name(isvc))
        .replace("{{.Namespace}}", namespace)
        .replace("{{.Domain}}", domain)
    )
    service_host = predictor_host.replace("-predictor", "", 1)
    external = service_host != internal
    hosts = [internal, *([service_host] if external else [])]
    mesh = SERVERLESS["virtualservice-gateways"].value[1]
    gateways = [ingress["localGateway"], mesh, *([ingress["ingressGateway"]] if external else [])]
    match = [{"authority": internal, "gateways": [ingress["localGateway"], mesh]}]
    if external:
        match.append({"authority": service_host, "gateways": [ingress["ingressGateway"]]})
    destination = SERVERLESS["virtualservice-destination"].value
    name_header, namespace_header = destination["headers"]
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": hosts,
            "gateways": gateways,
            "http": [
                {
                    "match": match,
                    "route": [
                        {
                            "destination": {
                                "host": ingress["knativeLocalGatewayService"],
                                "port": {"number": destination["port"]},
                            },
                            "weight": destination["weight"],
                        }
                    ],
                    "headers": {
                        "request": {
                            "set": {
                                "Host": backend,
                                name_header: name,
                                namespace_header: namespace,
                            }
                        }
                    },
                }
            ],
        },
    }


# --- the charm's config -------------------------------------------------------------------------


def test_with_knative_our_config_is_serverless_as_kubeflow_ships_it():
    data = cluster.inferenceservice_config(
        AKS, gateway_namespace=GATEWAY_NAMESPACE, gateway_name=GATEWAY_NAME, knative=KNATIVE
    )
    deploy = json.loads(data["deploy"])
    assert deploy == KUBEFLOW["deploy"].value, str(KUBEFLOW["deploy"].source)
    assert deploy["defaultDeploymentMode"] == SERVERLESS["mode"].value
    ingress = json.loads(data["ingress"])
    assert set(SERVERLESS["ingress-keys"].value) <= set(ingress), str(
        SERVERLESS["ingress-keys"].source
    )
    assert ingress["localGateway"] == KNATIVE.local_gateway
    assert ingress["localGatewayService"] == KNATIVE.local_gateway_service
    assert ingress["knativeLocalGatewayService"] == KNATIVE.local_gateway_service
    # Every other ingress key as in RawDeployment: Kubeflow's, but our gateway.
    raw = json.loads(
        cluster.inferenceservice_config(
            AKS, gateway_namespace=GATEWAY_NAMESPACE, gateway_name=GATEWAY_NAME
        )["ingress"]
    )
    others = set(raw) - set(SERVERLESS["ingress-keys"].value)
    assert {k: ingress[k] for k in others} == {k: raw[k] for k in others}


def test_the_controller_reads_knatives_namespace_from_the_variable_knative_pkg_names():
    layer = wl.layer(
        wl.CONTROLLER,
        leader=True,
        namespace="kubeflow",
        serial="1",
        knative=(KNATIVE.namespace, KNATIVE.version),
    )
    environment = layer["services"][wl.CONTROLLER.service]["environment"]
    fact = SERVERLESS["knative-namespace-env"]
    assert environment[fact.value] == KNATIVE.namespace, str(fact.source)
    # The version is ours: it changes the layer, and so restarts the controller, which looks
    # for the Knative Service CRD only at start (fact `ksvc-watched-only-if-crd-at-start`).
    assert environment[wl.KNATIVE_VERSION] == KNATIVE.version


def test_without_knative_the_local_gateway_keys_are_kubeflows():
    ingress = json.loads(
        cluster.inferenceservice_config(
            AKS, gateway_namespace=GATEWAY_NAMESPACE, gateway_name=GATEWAY_NAME
        )["ingress"]
    )
    upstream = KUBEFLOW["ingress"].value
    for key in ("localGateway", "localGatewayService"):
        assert ingress[key] == upstream[key], key


def test_an_inference_service_under_the_serverless_default_carries_no_mode_annotation():
    # The defaulter stamps the mode only under the defaults it lists; Serverless is not one.
    stamps = SERVERLESS["defaulter-stamps-when-default-is"].value
    assert SERVERLESS["mode"].value not in stamps
    stored = ISVC.admit(serverless_isvc(minReplicas=0))
    assert SERVERLESS["deployment-mode-annotation"].value not in stored["metadata"].get(
        "annotations", {}
    )


# --- scale to zero ------------------------------------------------------------------------------


def test_min_replicas_zero_validates_and_its_revisions_may_scale_to_zero():
    isvc = ISVC.admit(serverless_isvc(minReplicas=0))
    ksvc = KSVC.admit(knative_service(isvc))
    assert ksvc["metadata"]["name"] == "iris-predictor"
    annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert "autoscaling.knative.dev/max-scale" not in annotations
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]


def test_without_min_replicas_one_pod_stays():
    isvc = ISVC.admit(serverless_isvc(maxReplicas=3))
    annotations = knative_service(isvc)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "1"
    assert annotations["autoscaling.knative.dev/max-scale"] == "3"


def test_scale_target_metric_labels_and_dropped_annotations_reach_the_revision_template():
    isvc = serverless_isvc(scaleTarget=5, scaleMetric="concurrency")
    isvc["metadata"]["labels"] = {
        "team": "a",
        "networking.knative.dev/visibility": "cluster-local",
    }
    isvc["metadata"]["annotations"] = {
        "autoscaling.knative.dev/max-scale": "9",  # dropped: only maxReplicas sets it
        "example.com/owner": "alice",
    }
    ksvc = KSVC.admit(knative_service(ISVC.admit(isvc)))
    template = ksvc["spec"]["template"]["metadata"]
    assert template["annotations"]["autoscaling.knative.dev/target"] == "5"
    assert template["annotations"]["autoscaling.knative.dev/metric"] == "concurrency"
    assert template["annotations"]["example.com/owner"] == "alice"
    assert "autoscaling.knative.dev/max-scale" not in template["annotations"]
    assert ksvc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert template["labels"] == {
        "team": "a",
        "serving.kserve.io/inferenceservice": "iris",
        "component": "predictor",
    }


def test_the_serverless_predictor_runs_on_the_cpu_pool_as_the_runtimes_place_it():
    isvc = ISVC.admit(serverless_isvc(minReplicas=0))
    pod = KSVC.admit(knative_service(isvc))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == CPU_POOL
    assert pod["serviceAccountName"] == "kserve-models"
    (container,) = pod["containers"]
    assert container["image"] == "kserve/sklearnserver:v0.14.1"


# --- canary -------------------------------------------------------------------------------------


def test_a_canary_takes_twenty_percent_once_a_revision_was_rolled_out():
    first = ISVC.admit(serverless_isvc(canaryTrafficPercent=20))
    # The first rollout has nothing to split: all to the latest revision.
    ksvc = KSVC.admit(knative_service(first))
    assert ksvc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
    # Knative reports revision 1 ready with all the traffic: KServe records it as rolled out.
    rolled_out = latest_rolled_out(
        "",
        "iris-predictor-00001",
        [{"revisionName": "iris-predictor-00001", "latestRevision": True, "percent": 100}],
    )
    assert rolled_out == "iris-predictor-00001"
    # A new model version with the canary: 20 % to the new revision, 80 % to the previous one.
    second = copy.deepcopy(first)
    second["spec"]["predictor"]["model"]["storageUri"] = "s3://mlflow/1/4567cdef/artifacts/model"
    ksvc = KSVC.admit(knative_service(ISVC.admit(second), rolled_out))
    assert ksvc["spec"]["traffic"] == [
        {"latestRevision": True, "percent": 20},
        {
            "revisionName": "iris-predictor-00001",
            "latestRevision": False,
            "percent": 80,
            "tag": "prev",
        },
    ]
    # While revision 2 carries 20 %, the rolled-out revision stays revision 1.
    assert (
        latest_rolled_out(
            rolled_out,
            "iris-predictor-00002",
            [
                {"revisionName": "iris-predictor-00002", "latestRevision": True, "percent": 20},
                {"revisionName": "iris-predictor-00001", "latestRevision": False, "percent": 80},
            ],
        )
        == rolled_out
    )


@pytest.mark.parametrize(
    ("percent", "traffic"),
    [
        (100, [{"latestRevision": True, "percent": 100}]),
        (
            0,
            [
                {"latestRevision": True, "percent": 0},
                {"revisionName": "r1", "latestRevision": False, "percent": 100, "tag": "prev"},
            ],
        ),
    ],
)
def test_promotion_and_rollback_of_a_canary(percent, traffic):
    isvc = ISVC.admit(serverless_isvc(canaryTrafficPercent=percent))
    assert KSVC.admit(knative_service(isvc, "r1"))["spec"]["traffic"] == traffic


def test_a_canary_percent_of_the_wrong_type_is_refused():
    with pytest.raises(Exception, match="canaryTrafficPercent"):
        ISVC.admit(serverless_isvc(canaryTrafficPercent="20%"))


# --- routing ------------------------------------------------------------------------------------


def test_the_virtual_service_routes_our_gateway_and_the_local_one_through_knative():
    isvc = ISVC.admit(serverless_isvc(minReplicas=0))
    ingress = ingress_config()
    vs = virtual_service(isvc, ingress, KNATIVE.domain)["spec"]
    assert vs["gateways"] == [
        "kubeflow/knative-local-gateway",  # from the knative-serving relation
        "mesh",
        f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}",  # our istio's gateway
    ]
    assert vs["hosts"] == ["iris.alice.svc.cluster.local", "iris.alice.models.example.com"]
    (route,) = vs["http"]
    assert [m["gateways"] for m in route["match"]] == [
        ["kubeflow/knative-local-gateway", "mesh"],
        [f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}"],
    ]
    (destination,) = route["route"]
    assert destination["destination"] == {
        "host": "knative-local-gateway.kubeflow.svc.cluster.local",
        "port": {"number": 80},
    }
    assert destination["weight"] == 100
    headers = route["headers"]["request"]["set"]
    assert headers["Host"] == "iris-predictor.alice.svc.cluster.local"


def external_name_service(isvc: dict, ingress: dict) -> dict[str, Any]:
    """The Service `<name>` made with the VirtualService (ingress_reconciler.go:219-230)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": isvc["metadata"]["name"], "namespace": isvc["metadata"]["namespace"]},
        "spec": {"type": "ExternalName", "externalName": ingress["localGatewayService"]},
    }


def test_the_cluster_local_address_resolves_to_knatives_local_gateway():
    isvc = ISVC.admit(serverless_isvc())
    service = external_name_service(isvc, ingress_config())
    fact = SERVERLESS["local-gateway-service-external-name"].value
    assert service["kind"] == fact["kind"]
    assert service["metadata"]["name"] == fact["name"].format(name="iris") == "iris"
    assert service["spec"]["type"] == fact["type"]
    # The Service the knative-serving charm puts in front of its local gateway, as it says.
    assert service["spec"]["externalName"] == KNATIVE.local_gateway_service


def _filled(value: Any, **given: str) -> Any:
    """A fact's value with its placeholders ({name}, <localGateway>, ...) filled in."""
    text = json.dumps(value)
    for key, replacement in given.items():
        text = text.replace(f"{{{key}}}", replacement).replace(f"<{key}>", replacement)
    return json.loads(text)


def test_the_virtual_service_is_upstreams_with_our_gateways_filled_in():
    isvc = ISVC.admit(serverless_isvc())
    ingress = ingress_config()
    vs = virtual_service(isvc, ingress, KNATIVE.domain)["spec"]
    given = {
        "name": "iris",
        "namespace": "alice",
        "domain": KNATIVE.domain,
        "localGateway": ingress["localGateway"],
        "ingressGateway": ingress["ingressGateway"],
        "knativeLocalGatewayService": ingress["knativeLocalGatewayService"],
    }
    for fact, ours in (
        ("virtualservice-gateways", vs["gateways"]),
        ("virtualservice-hosts", vs["hosts"]),
        ("virtualservice-matches", vs["http"][0]["match"]),
    ):
        assert ours == _filled(SERVERLESS[fact].value, **given), str(SERVERLESS[fact].source)
    destination = _filled(SERVERLESS["virtualservice-destination"].value, **given)
    (route,) = vs["http"][0]["route"]
    assert route["destination"] == {
        "host": destination["host"],
        "port": {"number": destination["port"]},
    }
    assert vs["http"][0]["headers"]["request"]["set"]["Host"] == destination["Host"]


def test_under_serverless_our_domain_options_do_not_make_the_hosts():
    # The hosts follow Knative's domain (the knative-serving charm's), not `ingress-domain`.
    ingress = ingress_config()
    assert set(SERVERLESS["serverless-ignores-ingress-keys"].value) <= set(ingress)
    assert "pathTemplate" not in ingress
    vs = virtual_service(ISVC.admit(serverless_isvc()), ingress, "knative.test")["spec"]
    assert vs["hosts"] == ["iris.alice.svc.cluster.local", "iris.alice.knative.test"]
    assert not any(h.endswith(ingress["ingressDomain"]) for h in vs["hosts"])


def test_with_a_cluster_local_knative_domain_nothing_binds_to_our_gateway():
    isvc = ISVC.admit(serverless_isvc())
    vs = virtual_service(isvc, ingress_config(), f"svc.{CLUSTER_DOMAIN}")["spec"]
    assert f"{GATEWAY_NAMESPACE}/{GATEWAY_NAME}" not in vs["gateways"]
    assert vs["hosts"] == ["iris.alice.svc.cluster.local"]
