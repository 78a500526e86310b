"""Node selectors and tolerations in options, checked as the API server checks them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kubeflow_charms import placement

# Label keys and values as kubernetes/apimachinery checks them (pkg/api/validate/content,
# kube.go IsLabelKey and IsLabelValue, dns.go IsDNS1123Subdomain; commit eed236ce).
GOOD_KEYS = [
    "pool",
    "kubernetes.io/arch",
    "kubernetes.azure.com/accelerator",
    "a" * 63,
    f"{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 61}/x",  # a 253-character prefix
    "A_b.c-D",
]
BAD_KEYS = [
    "",
    "a b",
    "/pool",
    "example.com/",
    "a/b/c",
    "Example.com/pool",
    "a..b/pool",
    "-a.com/pool",
    f"{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 62}/x",  # 254
    "a" * 64,
    "-pool",
    "pool\n",
    3,
    None,
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_label_keys_the_api_server_takes(key):
    assert placement.is_label_key(key)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_label_keys_the_api_server_refuses(key):
    assert not placement.is_label_key(key)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("gpu", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("a b", False),
        ("-x", False),
        ("x\n", False),
        (3, False),
        (None, False),
    ],
)
def test_label_values(value, ok):
    assert placement.is_label_value(value) is ok


def test_empty_options_place_nothing():
    assert placement.parse_node_selector("  ") == {}
    assert placement.parse_tolerations("") == []


def test_good_options_come_back_as_objects():
    assert placement.parse_node_selector('{"kubernetes.io/arch": "arm64"}') == {
        "kubernetes.io/arch": "arm64"
    }
    toleration = {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    evict = {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    assert placement.check_tolerations([toleration, evict]) == [toleration, evict]


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (placement.parse_node_selector, "pool=gpu", "must be a JSON object"),
        (placement.parse_node_selector, '["pool"]', "must be a JSON object"),
        (placement.parse_node_selector, '{"a b": "x"}', "'a b' is not a label key"),
        (placement.parse_node_selector, '{"pool": 1}', "pool: 1 is not a label value"),
        (placement.parse_tolerations, "{}", "must be a JSON list of tolerations"),
        (placement.parse_tolerations, "[x", "must be a JSON list of tolerations"),
        (placement.parse_tolerations, "[1]", "item 0: must be a JSON object"),
        (placement.parse_tolerations, '[{"colour": "red"}]', "item 0: unknown key 'colour'"),
        (placement.parse_tolerations, '[{"key": "a b"}]', "item 0.key"),
        (placement.parse_tolerations, '[{"key": "k", "operator": "In"}]', "item 0.operator"),
        (placement.parse_tolerations, '[{"key": "k", "value": "a b"}]', "item 0.value"),
        (
            placement.parse_tolerations,
            '[{"key": "k", "operator": "Exists", "value": "v"}]',
            "item 0.value: must be empty with operator Exists",
        ),
        (placement.parse_tolerations, '[{"value": "v"}]', "item 0: a toleration without a key"),
        (placement.parse_tolerations, '[{"key": "k", "effect": "Never"}]', "item 0.effect"),
        (
            placement.parse_tolerations,
            '[{"key": "k", "effect": "NoExecute", "tolerationSeconds": true}]',
            "item 0.tolerationSeconds: must be an integer",
        ),
        (
            placement.parse_tolerations,
            '[{"key": "k", "tolerationSeconds": 5}]',
            "item 0.tolerationSeconds: only with effect NoExecute",
        ),
    ],
)
def test_a_wrong_value_says_what_is_wrong_and_named_names_the_option(parse, text, message):
    with pytest.raises(ValueError) as error:
        placement.named("the-option", parse, text)
    assert str(error.value).startswith(f"the-option: {message}")


def test_it_imports_nothing_heavy():
    # The charms load their config in every hook, the settled one too.
    tree = ast.parse(Path(placement.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "json", "re", "collections.abc", "typing"}
