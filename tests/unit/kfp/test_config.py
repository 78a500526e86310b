"""Every config option of the kfp charm, valid and invalid."""

from __future__ import annotations

import dataclasses

import ops
import pytest
from ops import testing
from unit.kfp.helpers import CHARM, kfp_config, workloads

KfpConfig = kfp_config.KfpConfig

VALID = [
    ("default-pipeline-root", "minio://mlpipeline/private-artifacts/{namespace}/v2/artifacts"),
    ("default-pipeline-root", "s3://mlpipeline/private-artifacts/{namespace}/"),
    ("default-pipeline-root", "minio://mlpipeline/private-artifacts/{namespace}/runs_v2.x"),
    ("log-level", "debug"),
    ("log-level", "error"),
    ("workflow-ttl", 1),
    ("workflow-ttl", 604800),
    ("max-concurrent-runs", 0),
    ("max-concurrent-runs", 25),
    ("default-node-selector", ""),
    ("default-node-selector", '{"agentpool": "user", "kubernetes.io/os": "linux"}'),
    ("default-tolerations", ""),
    (
        "default-tolerations",
        '[{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]',
    ),
    ("default-tolerations", '[{"operator": "Exists"}]'),
    (
        "default-tolerations",
        '[{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}]',
    ),
    ("archive-logs", True),
    ("archive-logs", False),
    ("cache", True),
    ("cache", False),
]

INVALID = [
    (
        "default-pipeline-root",
        "gs://mlpipeline/private-artifacts/{namespace}/",
        "minio:// or s3://",
    ),
    ("default-pipeline-root", "mlpipeline/private-artifacts/{namespace}/", "minio:// or s3://"),
    ("default-pipeline-root", "minio://other/private-artifacts/{namespace}/", "bucket mlpipeline"),
    ("default-pipeline-root", "minio://mlpipeline/v2/artifacts", "private-artifacts/{namespace}/"),
    (
        "default-pipeline-root",
        "minio://mlpipeline/private-artifacts/shared/",
        "private-artifacts/{namespace}/",
    ),
    (
        "default-pipeline-root",
        "minio://mlpipeline/private-artifacts/{namespace}/../x",
        "plain path segment",
    ),
    (
        "default-pipeline-root",
        "minio://mlpipeline/private-artifacts/{namespace}/{namespace}",
        "plain path segment",
    ),
    ("log-level", "verbose", "debug, info, warn, error"),
    ("log-level", "INFO", "debug, info, warn, error"),
    ("workflow-ttl", 0, "between 1 and"),
    ("workflow-ttl", -5, "between 1 and"),
    ("workflow-ttl", 10**12, "between 1 and"),
    ("max-concurrent-runs", -1, "between 0 (no limit)"),
    ("max-concurrent-runs", 10**9, "between 0 (no limit)"),
    ("default-node-selector", "agentpool=user", "JSON object"),
    ("default-node-selector", '["a"]', "JSON object"),
    ("default-node-selector", '{"Not A Key": "x"}', "is not a label key"),
    ("default-node-selector", '{"pool": 3}', "is not a label value"),
    ("default-node-selector", '{"pool": "has space"}', "is not a label value"),
    ("default-tolerations", "{}", "JSON list"),
    ("default-tolerations", "[nope", "JSON list"),
    ("default-tolerations", '["x"]', "item 0: must be a JSON object"),
    ("default-tolerations", '[{"key": "k", "colour": "red"}]', "unknown key 'colour'"),
    ("default-tolerations", '[{"key": "k", "operator": "In"}]', "item 0.operator"),
    (
        "default-tolerations",
        '[{"key": "k", "operator": "Exists", "value": "v"}]',
        "empty with operator Exists",
    ),
    ("default-tolerations", '[{"value": "v"}]', "without a key must use operator Exists"),
    ("default-tolerations", '[{"key": "k", "effect": "Never"}]', "item 0.effect"),
    (
        "default-tolerations",
        '[{"key": "k", "tolerationSeconds": 5}]',
        "only with effect NoExecute",
    ),
    (
        "default-tolerations",
        '[{"key": "k", "effect": "NoExecute", "tolerationSeconds": "5"}]',
        "must be an integer",
    ),
    ("default-tolerations", '[{"key": "bad key"}]', "item 0.key"),
    ("archive-logs", "yes", "must be true or false"),
    ("archive-logs", 1, "must be true or false"),
    ("cache", "false", "must be true or false"),
    ("cache", None, "must be true or false"),
]


def _config(option: str, value: object) -> KfpConfig:
    return KfpConfig(**{option.replace("-", "_"): value})


@pytest.mark.parametrize(("option", "value"), VALID)
def test_valid_option(option, value):
    config = _config(option, value)
    assert getattr(config, option.replace("-", "_")) == value


@pytest.mark.parametrize(("option", "value", "problem"), INVALID)
def test_invalid_option_names_it(option, value, problem):
    with pytest.raises(ValueError, match="^" + option + ": ") as e:
        _config(option, value)
    assert problem in str(e.value)


def test_every_option_is_covered():
    meta_options = set(CHARM_OPTIONS)
    assert {o for o, _ in VALID} == meta_options
    assert {o for o, _, _ in INVALID} == meta_options
    assert {f.name.replace("_", "-") for f in dataclasses.fields(KfpConfig)} == meta_options


def test_defaults_match_charmcraft():
    defaults = KfpConfig()
    for option, spec in CHARM_OPTIONS.items():
        assert getattr(defaults, option.replace("-", "_")) == spec["default"], option


def test_pipeline_root_per_namespace():
    config = KfpConfig()
    assert config.pipeline_root("alice") == (
        "minio://mlpipeline/private-artifacts/alice/v2/artifacts"
    )
    with pytest.raises(ValueError, match="not a namespace name"):
        config.pipeline_root("Not/Valid")


def test_parsed_selector_and_tolerations():
    config = KfpConfig(
        default_node_selector='{"agentpool": "user"}',
        default_tolerations='[{"key": "sku", "operator": "Exists"}]',
    )
    assert config.node_selector == {"agentpool": "user"}
    assert config.tolerations == [{"key": "sku", "operator": "Exists"}]
    assert KfpConfig().node_selector == {}
    assert KfpConfig().tolerations == []


# Juju itself refuses a value of the wrong type for a boolean option (`juju config`
# fails), as ops.testing does: the typed check above is for values set otherwise.
BOOLEAN_OPTIONS = ("archive-logs", "cache")


@pytest.mark.parametrize(
    ("option", "value", "problem"), [i for i in INVALID if i[0] not in BOOLEAN_OPTIONS][::6]
)
def test_bad_option_blocks_and_changes_nothing(option, value, problem):
    ctx = testing.Context(CHARM.KfpCharm)
    containers = {testing.Container(w.container, can_connect=True) for w in workloads.WORKLOADS}
    state = testing.State(leader=True, containers=containers, config={option: value})
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}: ")
    assert problem in out.unit_status.message
    for container in out.containers:
        assert container.layers == {}, container.name
        assert container.service_statuses == {}, container.name


def _charm_options() -> dict[str, dict]:
    import yaml
    from charm_loader import charm_dir

    meta = yaml.safe_load((charm_dir("kfp") / "charmcraft.yaml").read_text())
    return meta["config"]["options"]


CHARM_OPTIONS = _charm_options()
