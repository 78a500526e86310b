"""The upstream schemas of the kinds our charms write: cited, well-formed, and what we serve.

facts/schemas/<project>.yaml records, for each kind a charm writes, the
structure of `spec` the upstream release's own API definitions give it (in
the notation of `schema_notation`). The fake cluster checks every object of
those kinds against them; here, the facts themselves are checked, our CRDs
are held to serve the same group, versions and kind, and the objects our
charms render are held to the schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from bundle.fake_kubernetes import FakeKubernetes
from charm_loader import load_charm
from conformance import facts, schema_notation
from ops import testing
from unit.istio import helpers as istio_helpers

from bundle import upstream_schemas
from kubeflow_charms.kubernetes import render

SCHEMA_FILES = sorted(upstream_schemas.SCHEMAS.glob("*.yaml"))
ISTIO = facts.load("istio")
ISTIO_RELEASE = ISTIO["istiod"]["image"].value.rpartition(":")[2]
ISTIO_KINDS = {
    key: kind for key, kind in upstream_schemas.registry().items() if key[0].endswith(".istio.io")
}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_schemas_file_is_cited_and_well_formed(path: Path):
    kinds = upstream_schemas.load(path)  # ValueError names what is malformed
    assert kinds, path.name
    raw = yaml.safe_load(path.read_text())
    for (group, kind), upstream in kinds.items():
        assert upstream.versions, f"{group} {kind}"
        spec = raw[group][kind]["value"]["spec"]
        jsonschema.Draft202012Validator.check_schema(schema_notation.json_schema(spec))
        assert upstream.validator.schema["properties"]["spec"]["additionalProperties"] is False


def test_the_istio_schemas_are_istios_release_we_run():
    assert ISTIO_KINDS, "facts/schemas/istio.yaml records Istio's kinds"
    for (_, kind), upstream in ISTIO_KINDS.items():
        assert upstream.source.repo == "istio/api", f"{kind}: {upstream.source}"
        assert upstream.source.ref == ISTIO_RELEASE, f"{kind}: {upstream.source}"


def _our_istio_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """The CRDs the istio charm installs, rendered from its template as the charm does."""
    charm = load_charm("istio")
    rendered = render(charm.TEMPLATES, ["crds.yaml.j2"], {})
    crds = [doc for doc in yaml.safe_load_all(rendered) if doc]
    return {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in crds}


def test_our_istio_crds_serve_the_kinds_and_versions_of_istios_schemas():
    crds = _our_istio_crds()
    crd_facts = ISTIO["crds"]
    for (group, kind), upstream in ISTIO_KINDS.items():
        where = f"{kind}: {upstream.source}"
        assert (group, kind) in crds, where
        served = sorted(v["name"] for v in crds[(group, kind)]["spec"]["versions"] if v["served"])
        assert served == sorted(upstream.versions), where
        # The same release as the CRD facts of facts/istio.yaml.
        fact = crd_facts[kind]
        assert fact.value["group"] == group, f"{where}; {fact.source}"
        assert sorted(fact.value["served"]) == sorted(upstream.versions), f"{where}; {fact.source}"


def test_every_istio_kind_the_charms_write_has_istios_schema():
    kinds = load_charm("istio").KINDS
    written = [k for k in kinds if k.api_version.rpartition("/")[0].endswith(".istio.io")]
    assert {k.kind for k in written} >= {"Gateway", "VirtualService", "AuthorizationPolicy"}
    for k in written:
        group, _, version = k.api_version.rpartition("/")
        upstream = upstream_schemas.registry().get((group, k.kind))
        assert upstream is not None, f"{k.api_version} {k.kind}: no schema in facts/schemas"
        assert version in upstream.versions, f"{k.kind} {version}: {upstream.source}"


def test_the_istio_charms_objects_follow_istios_schemas(kube: FakeKubernetes, tmp_path):
    istio_helpers.FILES["root"] = tmp_path
    try:
        ctx = testing.Context(istio_helpers.CHARM.IstioCharm)
        base = istio_helpers.state()
        base = istio_helpers.with_relations(
            base,
            istio_helpers.auth_relation(),
            istio_helpers.route("dashboard", "/", port=8082),
            istio_helpers.route("pipelines", "/pipeline", rewrite="/"),
            istio_helpers.route("login", "/dex", auth=False, port=5556),
            istio_helpers.route("status", "/healthz", auth=False, exact=True),
        )
        istio_helpers.settle(ctx, base)
    finally:
        istio_helpers.FILES.clear()
    written = [
        s.body for s in kube.objects.values() if s.api_version.split("/")[0].endswith(".istio.io")
    ]
    kinds = {k.kind for k in istio_helpers.CHARM.KINDS if ".istio.io/" in k.api_version}
    assert {obj["kind"] for obj in written} == kinds
    for obj in written:
        name = f"{obj['kind']} {obj['metadata']['name']}"
        assert upstream_schemas.kind_of(obj) is not None, name
        assert upstream_schemas.problem(obj) is None, name
        assert obj["spec"], name


def test_the_dashboards_contributor_policy_follows_istios_schema():
    profiles = load_charm("kubeflow-dashboard").profiles
    policy = profiles._mesh_policy(
        "user-member-example-com-clusterrole-edit",
        "team",
        "member@example.com",
        "edit",
        "kubeflow-userid",
        "oidc:",
        ["cluster.local/ns/kubeflow/sa/istio-ingressgateway", "cluster.local/ns/kubeflow/sa/ml"],
    )
    obj = policy.to_dict()
    assert upstream_schemas.kind_of(obj) is not None
    assert upstream_schemas.problem(obj) is None


# --- the notation


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ({"a": "text"}, "spec.a: unknown type 'text'"),
        ({"a": "integer 1-5"}, "spec.a: unknown token '1-5'"),
        ({"a": "string len:x"}, "spec.a: not a range"),
        ({"a": "enum"}, "spec.a: an enum without values"),
        ({"a": ["string", "integer"]}, "spec.a: an array is a list of one node"),
        ({"a": {"$require": ["b"], "b": "string"}}, "spec.a: unknown marks ['$require']"),
        ({"$required": ["b"], "a": "string"}, "spec: $required names fields"),
        ({"$oneOf": [["a", "c"]], "a": "string"}, "spec: $oneOf names fields the object lacks"),
        ({"$oneOf": [["a"]], "a": "string"}, "two alternatives or more"),
        ({"$iff": {"a": {"c": "X"}}, "a": "string"}, "spec: $iff: a: c is not a field"),
        ({"a": {"$items": "string", "$keys": "nowildcard"}}, "spec.a: an $items node has only"),
        ({"a": {"$count": "..3"}}, "spec.a: $keys and $count go with $items or $values"),
        ({"m": {"$values": {"x": "text"}}}, "spec.m{}.x: unknown type"),
        ({}, "spec: an object without fields"),
        ("string pattern=(", "spec:"),
    ],
)
def test_a_malformed_schema_is_refused(node, problem):
    found = schema_notation.problems(node)
    assert any(problem in p for p in found), found


def test_a_schemas_file_without_a_pinned_source_or_spec_is_refused(tmp_path):
    path = tmp_path / "project.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "example.io": {
                    "Thing": {
                        "value": {"versions": ["v1"], "spec": {"a": "string"}},
                        "source": {"repo": "example/api", "ref": "main", "path": "crds.yaml"},
                    },
                    "Other": {
                        "value": {"versions": ["v1"]},
                        "source": {"repo": "example/api", "ref": "v1.0.0", "path": "crds.yaml"},
                    },
                }
            }
        )
    )
    with pytest.raises(ValueError, match="not a release tag") as error:
        upstream_schemas.load(path)
    assert "example.io.Other.value: needs exactly versions and spec" in str(error.value)


@pytest.mark.parametrize(
    ("node", "good", "bad"),
    [
        ({"a": "integer 1..65535"}, {"a": 65535}, {"a": 0}),
        ({"a": "string len:..0"}, {"a": ""}, {"a": "x"}),
        ({"a": "boolean nullable"}, {"a": None}, {"a": "yes"}),
        ({"a": "int-or-string"}, {"a": "50%"}, {"a": 1.5}),
        ({"a": "duration"}, {"a": "1h2m0.5s"}, {"a": "0.9ms"}),
        ({"a": "string format:byte"}, {"a": "aGk="}, {"a": "not base64!"}),
        ({"a": "object"}, {"a": {"any": {"thing": 1}}}, {"a": []}),
        ({"a": {"$items": "string", "$count": "1..2"}}, {"a": ["x"]}, {"a": []}),
        ({"a": {"$values": "string", "$keys": "len:1.."}}, {"a": {"k": "v"}}, {"a": {"": "v"}}),
        ({"$required": ["a"], "a": "string"}, {"a": "x"}, {}),
        (
            {"$oneOf": [[["a", "b"], "c"]], "a": "string", "b": "string", "c": "string"},
            {"a": "x", "b": "y"},
            {"b": "y", "c": "z"},
        ),
        (
            {"$iff": {"w": {"c": "W"}}, "w": "string", "c": "string"},
            {"c": "W", "w": "x"},
            {"c": "W"},
        ),
        ({"a": "string"}, {"a": "x"}, {"a": "x", "b": "y"}),
    ],
)
def test_the_notation_means_what_it_says(node, good, bad):
    check = schema_notation.validator(schema_notation.json_schema(node))
    assert list(check.iter_errors(good)) == []
    assert list(check.iter_errors(bad)) != []
