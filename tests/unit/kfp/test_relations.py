"""The kfp charm's route, dashboard links and per-profile ConfigMaps."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from ops import testing
from unit.kfp.helpers import CHARM, kfp_links, kfp_profiles, kfp_route, workloads
from unit.kfp.test_data import S3_SECRET_KEY, _full_state, _state

from kubeflow_interfaces import dashboard_links, istio_ingress_route, kubernetes_manifests

# The leader applies its cluster objects in every reconcile: a cluster answers.
pytestmark = pytest.mark.usefixtures("kube")


def _routes(out: testing.State, relation: testing.Relation) -> list[dict]:
    config = json.loads(out.get_relation(relation.id).local_app_data["config"])
    return istio_ingress_route.normalise(config)["http_routes"]


# --- istio-ingress-route -----------------------------------------------------------


@pytest.mark.parametrize(("tls", "listener"), [(False, 80), (True, 443)])
def test_leader_asks_for_the_ui_and_mlmd_routes(tls, listener):
    route = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE, tls_enabled=tls)
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(route), _state(relations={route}))
    routes = _routes(out, route)
    # kubeflow/pipelines 2.4.1 manifests/kustomize/base/installs/multi-user/virtual-service.yaml:
    # /pipeline to ml-pipeline-ui port 80, the path kept (rewrite /pipeline); the UI's basePath
    # is /pipeline and it proxies <basePath>/apis/v1beta1 and v2beta1 to the API server
    # (frontend/server/configs.ts, app.ts). The UI's gRPC-web client calls
    # /ml_metadata.MetadataStoreService/<method> at the root
    # (frontend/src/mlmd/Api.ts, metadata_store_service_grpc_web_pb.js), which upstream routes
    # to metadata-envoy-service port 9090 (manifests/kustomize/base/metadata/options/istio).
    assert [
        (r["matches"][0]["path"], r["backends"], r["listener"]["port"], r.get("filters"))
        for r in routes
    ] == [
        (
            {"type": "PathPrefix", "value": "/pipeline"},
            [{"service": "ml-pipeline-ui", "port": 80}],
            listener,
            None,
        ),
        (
            {"type": "PathPrefix", "value": "/ml_metadata.MetadataStoreService"},
            [{"service": "metadata-envoy-service", "port": 9090}],
            listener,
            None,
        ),
    ]
    # istio names each route after the application: kfp-ui, kfp-metadata.
    assert [r["name"] for r in routes] == ["ui", "metadata"]


def test_non_leader_asks_for_no_route():
    route = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE)
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(route), _state(leader=False, relations={route}))
    assert out.get_relation(route.id).local_app_data == {}


def test_published_requests_are_not_read_again_until_a_relation_changes():
    route = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE)
    peers = testing.PeerRelation("kfp-peers")
    ctx = testing.Context(CHARM.KfpCharm)
    first = ctx.run(ctx.on.relation_changed(route), _state(relations={route, peers}))
    stamp = first.get_relation(peers.id).local_app_data["published"]
    assert first.get_relation(route.id).local_app_data["config"]
    # Settled: the stamp says the route was published, so the hook leaves it as it is
    # (ops.testing cannot count databag reads; the stamp is what skips them).
    again = ctx.run(ctx.on.update_status(), first)
    assert again.get_relation(peers.id).local_app_data["published"] == stamp
    # istio related anew (a new relation id): the route is asked for again.
    fresh = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE)
    state = dataclasses.replace(
        again, relations=(again.relations - {again.get_relation(route.id)}) | {fresh}
    )
    out = ctx.run(ctx.on.relation_changed(fresh), state)
    assert out.get_relation(fresh.id).local_app_data["config"]
    assert out.get_relation(peers.id).local_app_data["published"] != stamp


def test_a_written_route_is_left_alone():
    route = istio_ingress_route.relation_for_requirer(kfp_route.ROUTE)
    ctx = testing.Context(CHARM.KfpCharm)
    first = ctx.run(ctx.on.relation_changed(route), _state(relations={route}))
    written = first.get_relation(route.id).local_app_data["config"]
    # Written in another form (keys reordered): it says the same, so it stays as it is.
    reordered = json.dumps(json.loads(written), sort_keys=True)
    settled = _state(relations={dataclasses.replace(route, local_app_data={"config": reordered})})
    out = ctx.run(ctx.on.update_status(), settled)
    assert out.get_relation(route.id).local_app_data == {"config": reordered}


# --- dashboard-links ---------------------------------------------------------------


def test_leader_publishes_the_pipelines_links():
    links = testing.Relation(kfp_links.DASHBOARD_LINKS, interface=dashboard_links.INTERFACE)
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_created(links), _state(relations={links}))
    published = dashboard_links.parse(
        out.get_relation(links.id).local_app_data[dashboard_links.FIELD]
    )
    # kubeflow/manifests v1.10.0 apps/centraldashboard/upstream/base/configmap.yaml: the
    # Pipelines menu section's items, its quick links and its documentation item.
    assert [(x.text, x.link) for x in published if x.location == "menu"] == [
        ("Pipelines", "/pipeline/#/pipelines"),
        ("Experiments", "/pipeline/#/experiments"),
        ("Runs", "/pipeline/#/runs"),
        ("Recurring Runs", "/pipeline/#/recurringruns"),
        ("Artifacts", "/pipeline/#/artifacts"),
        ("Executions", "/pipeline/#/executions"),
    ]
    assert {x.icon for x in published if x.location == "menu"} == {"kubeflow:pipeline-centered"}
    assert [(x.text, x.link) for x in published if x.location == "quick"] == [
        ("Upload a Pipeline", "/pipeline/#/pipelines"),
        ("View Pipeline Runs", "/pipeline/#/runs"),
    ]
    assert [x.link for x in published if x.location == "documentation"] == [
        "https://www.kubeflow.org/docs/components/pipelines/"
    ]


def test_non_leader_publishes_no_links():
    links = testing.Relation(kfp_links.DASHBOARD_LINKS, interface=dashboard_links.INTERFACE)
    ctx = testing.Context(CHARM.KfpCharm)
    out = ctx.run(ctx.on.relation_changed(links), _state(leader=False, relations={links}))
    assert out.get_relation(links.id).local_app_data == {}


# --- config-maps (the resource dispatcher) ----------------------------------------


def _dispatcher(namespaces=("alice", "bob"), **kwargs) -> testing.Relation:
    return kubernetes_manifests.relation_for_requirer(
        kfp_profiles.CONFIG_MAPS, namespaces=namespaces, **kwargs
    )


def _with(dispatcher: testing.Relation, **kwargs) -> testing.State:
    """Everything kfp needs, answered, and the dispatcher."""
    state = _full_state(**kwargs)
    return dataclasses.replace(state, relations={*state.relations, dispatcher})


def _handed(out: testing.State) -> list[dict]:
    secret = out.get_secret(label=f"{kfp_profiles.CONFIG_MAPS}-{_relation_id(out)}")
    return json.loads(secret.latest_content[kubernetes_manifests.CONTENT_KEY])


def _relation_id(out: testing.State) -> int:
    (relation,) = [r for r in out.relations if r.endpoint == kfp_profiles.CONFIG_MAPS]
    return relation.id


def _run(
    state: testing.State, dispatcher: testing.Relation
) -> tuple[testing.Context, testing.State]:
    ctx = testing.Context(CHARM.KfpCharm)
    return ctx, ctx.run(ctx.on.relation_changed(dispatcher), state)


def test_each_profile_gets_its_launcher_config_and_mlmd_address():
    dispatcher = _dispatcher()
    _, out = _run(_with(dispatcher), dispatcher)
    handed = _handed(out)
    by_key = {(o["metadata"]["name"], o["metadata"].get("namespace")): o["data"] for o in handed}
    # kubeflow/pipelines 2.4.1 manifests/kustomize/base/metadata/base/metadata-grpc-configmap.yaml
    # (keys), backend/src/v2/compiler/argocompiler/common.go (every step's envFrom) and
    # importer.go (--mlmd_server_address $(METADATA_GRPC_SERVICE_HOST)).
    assert by_key[("metadata-grpc-configmap", None)] == {
        "METADATA_GRPC_SERVICE_HOST": "metadata-grpc-service.kubeflow",
        "METADATA_GRPC_SERVICE_PORT": "8080",
    }
    assert set(by_key) == {
        ("metadata-grpc-configmap", None),
        ("kfp-launcher", "alice"),
        ("kfp-launcher", "bob"),
    }
    for namespace in ("alice", "bob"):
        data = by_key[("kfp-launcher", namespace)]
        # backend/src/v2/config/env.go (2.4.1): ConfigMap kfp-launcher, keys defaultPipelineRoot
        # and providers (YAML); s3.go: default.{endpoint, region, disableSSL, forcePathStyle,
        # credentials.{fromEnv, secretRef.{secretName, accessKeyKey, secretKeyKey}}}.
        assert data["defaultPipelineRoot"] == (
            f"minio://mlpipeline/private-artifacts/{namespace}/v2/artifacts"
        )
        providers = yaml.safe_load(data["providers"])
        assert providers["minio"] == providers["s3"]
        assert providers["minio"]["default"] == {
            "endpoint": "minio.kubeflow.svc:9000",
            "region": "us-east-1",  # the relation's
            "disableSSL": True,
            "forcePathStyle": True,
            "credentials": {
                "fromEnv": False,
                # charms/minio/src/profile_manifests.py: the per-profile Secret and its keys.
                "secretRef": {
                    "secretName": "minio-credentials",
                    "accessKeyKey": "AWS_ACCESS_KEY_ID",
                    "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
                },
            },
        }
    assert S3_SECRET_KEY not in json.dumps(handed)
    assert "kfp-access" not in json.dumps(handed)


def test_without_a_namespace_list_only_the_mlmd_address_goes():
    dispatcher = _dispatcher(namespaces=None)
    _, out = _run(_with(dispatcher), dispatcher)
    assert [o["metadata"]["name"] for o in _handed(out)] == ["metadata-grpc-configmap"]


def test_nothing_is_handed_over_before_the_object_store_is_known():
    dispatcher = _dispatcher()
    _, out = _run(_state(relations={dispatcher}), dispatcher)
    assert out.get_relation(dispatcher.id).local_app_data == {}
    assert list(out.secrets) == []


def test_non_leader_hands_over_nothing():
    dispatcher = _dispatcher()
    _, out = _run(_with(dispatcher, leader=False), dispatcher)
    assert out.get_relation(dispatcher.id).local_app_data == {}


def test_a_bad_namespace_list_blocks_and_changes_nothing():
    dispatcher = _dispatcher(
        namespaces=None,
        remote_app_data={kubernetes_manifests.NAMESPACES_FIELD: '["Not_A_Namespace"]'},
    )
    _, out = _run(_with(dispatcher), dispatcher)
    assert out.get_relation(dispatcher.id).local_app_data == {}
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("config-maps: ")


def test_a_new_profile_updates_the_handed_objects_and_broken_revokes_them():
    dispatcher = _dispatcher(namespaces=("alice",))
    ctx, out = _run(_with(dispatcher), dispatcher)
    grown = _dispatcher(
        namespaces=("alice", "carol"),
        id=dispatcher.id,
        local_app_data=dict(out.get_relation(dispatcher.id).local_app_data),
    )
    relations = {r for r in out.relations if r.id != dispatcher.id} | {grown}
    _, out = _run(dataclasses.replace(out, relations=relations), grown)
    names = {o["metadata"].get("namespace") for o in _handed(out)}
    assert names == {None, "alice", "carol"}
    out = ctx.run(ctx.on.relation_broken(grown), out)
    label = f"{kfp_profiles.CONFIG_MAPS}-{dispatcher.id}"
    assert [s for s in out.secrets if s.label == label] == []


def test_an_https_store_without_a_region_keeps_ssl_and_the_launchers_region():
    store = workloads.ObjectStore(
        host="s3.example.com",
        port=443,
        secure=True,
        region="",
        access_key="ak-1x",
        secret_key="sk-2y",
    )
    text = kfp_profiles.providers(store)
    default = yaml.safe_load(text)["s3"]["default"]
    # backend/src/v2/config/env.go (2.4.1), getDefaultMinioSessionInfo: region "minio".
    assert (default["endpoint"], default["disableSSL"], default["region"]) == (
        "s3.example.com:443",
        False,
        "minio",
    )
    assert "ak-1x" not in text
    assert "sk-2y" not in text
