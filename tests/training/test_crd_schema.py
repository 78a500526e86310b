"""tests/crd_schema.py itself: what it refuses and keeps, as the API server would."""

from __future__ import annotations

import pytest
from crd_schema import CustomResourceSchema, Rejected, structural_problems


def _crd(spec_schema: dict) -> dict:
    return {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"metadata": {"type": "object"}, "spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


SPEC = {
    "type": "object",
    "required": ["size"],
    "properties": {
        "size": {"type": "integer", "minimum": 1},
        "port": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        },
        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        "note": {"type": "string", "nullable": True},
        "when": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "template": {
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        },
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def _widget(**spec) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1} | spec,
    }


def test_the_api_server_fills_defaults_drops_nulls_and_keeps_the_rest():
    schema = CustomResourceSchema(_crd(SPEC))
    stored = schema.admit(
        _widget(port="http", note=None, when="2026-01-02T03:04:05Z", open={"x": 1}, size=2.0)
    )
    assert stored["spec"]["mode"] == "a"  # defaulted
    assert stored["spec"]["note"] is None  # nullable: kept
    assert stored["spec"]["size"] == 2.0  # an integral float is an integer (kube-openapi)
    assert schema.admit(_widget(mode=None))["spec"]["mode"] == "a"
    assert "tags" not in schema.admit(_widget(tags=None))["spec"]  # null, no default: dropped


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"size": "1"}, "spec.size"),
        ({"size": 0}, "spec.size"),
        ({"size": 1.5}, "spec.size"),
        ({"port": 1.5}, "spec.port"),
        ({"mode": "c"}, "spec.mode"),
        ({"when": "yesterday"}, "spec.when"),
        ({"tags": ["x", "x"]}, "spec.tags[1]"),
        ({"colour": "red"}, "spec.colour"),
        ({"template": {"spec": {}}}, "spec.template.apiVersion"),
    ],
)
def test_what_the_api_server_refuses_or_would_prune(spec: dict, where: str):
    problems = CustomResourceSchema(_crd(SPEC)).problems(_widget(**spec))
    assert any(p.startswith(where) for p in problems), problems


def test_the_name_and_kind_are_checked():
    schema = CustomResourceSchema(_crd(SPEC))
    with pytest.raises(Rejected, match="DNS-1123"):
        schema.admit(_widget() | {"metadata": {"name": "Not_A_Name"}})
    assert schema.problems(_widget() | {"kind": "Gadget"})


def _env_list(items: dict) -> dict:
    """A schema with a map list `env` keyed by `name`, of these items."""
    return {
        "type": "object",
        "properties": {
            "env": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": items,
            }
        },
    }


@pytest.mark.parametrize(
    ("schema", "found"),
    [
        ({"type": "object", "properties": {"a": {}}}, "type must not be empty"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "items must be specified"),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "type": "object",
                        "properties": {},
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            "mutually exclusive",
        ),
        ({"type": "object", "anyOf": [{"type": "object"}]}, "type must be empty"),
        ({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}}, "$ref"),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            "name and generateName",
        ),
        (
            _env_list({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
            "a property",
        ),
        (
            _env_list({"type": "object", "properties": {"name": {"type": "string"}}}),
            "must be required or have a default",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "x-kubernetes-map-type": "atomic"}},
            },
            "x-kubernetes-map-type",
        ),
    ],
)
def test_a_schema_that_is_not_structural_is_found(schema: dict, found: str):
    assert any(found in p for p in structural_problems(schema)), structural_problems(schema)


def test_the_cel_rules_left_unevaluated_are_listed():
    spec = SPEC | {"x-kubernetes-validations": [{"rule": "self.size < 10"}]}
    schema = CustomResourceSchema(_crd(spec))
    assert schema.cel_rules(_widget()) == [("spec", "self.size < 10")]
