"""The kfp charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`, as in the other charms;
it imports nothing heavier than `json` so that a settled hook stays cheap.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kubeflow_charms.placement import named, parse_node_selector, parse_tolerations

# The bucket the API server, Argo and the v2 launcher share, and each
# profile's own prefix in it: the minio charm's per-profile policy lets a
# profile's keys write only under private-artifacts/<namespace>/ there.
BUCKET = "mlpipeline"
PROFILE_PREFIX = "private-artifacts/{namespace}/"
NAMESPACE_PLACEHOLDER = "{namespace}"
DEFAULT_PIPELINE_ROOT = f"minio://{BUCKET}/{PROFILE_PREFIX}v2/artifacts"
# Where Argo puts each step's archived log (and any output it keeps itself) in the
# bucket: upstream's key format (kubeflow/manifests v1.10.0, third-party/argo/base/
# workflow-controller-configmap-patch.yaml) under the workflow's profile prefix. Argo
# fills in the workflow.* variables and pod.name when it makes the pod (argo-workflows
# v3.4.17 workflow/controller/operator.go:589-608, workflowpod.go:499-506).
ARGO_KEY_FORMAT = (
    "private-artifacts/{{workflow.namespace}}/artifacts/{{workflow.name}}/"
    "{{workflow.creationTimestamp.Y}}/{{workflow.creationTimestamp.m}}/"
    "{{workflow.creationTimestamp.d}}/{{pod.name}}"
)
# The schemes the v2 driver resolves through an S3 client (minio or s3 providers).
ROOT_SCHEMES = ("minio", "s3")
LOG_LEVELS = ("debug", "info", "warn", "error")
DEFAULT_WORKFLOW_TTL = 86400  # a day, as the persistence agent's image and manifest set it
MAX_WORKFLOW_TTL = 10 * 365 * 86400
MAX_CONCURRENT_RUNS = 100_000

# A root's path after the bucket: plain path segments, no "." or ".." segment.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A namespace name: a DNS label.
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def parse_pipeline_root(template: str) -> tuple[str, str]:
    """The scheme and the path after the bucket of a `default-pipeline-root` template.

    The template must name the bucket `mlpipeline` and begin its path with
    `private-artifacts/{namespace}/`, the only prefix a profile may write.
    """
    scheme, sep, rest = template.partition("://")
    if not sep or scheme not in ROOT_SCHEMES:
        raise ValueError(f"must start with {' or '.join(s + '://' for s in ROOT_SCHEMES)}")
    bucket, _, path = rest.partition("/")
    if bucket != BUCKET:
        raise ValueError(f"must be in the bucket {BUCKET}, not {bucket!r}")
    if not path.startswith(PROFILE_PREFIX):
        raise ValueError(
            f"its path must start with {PROFILE_PREFIX} (the profile's own prefix), "
            f"e.g. {DEFAULT_PIPELINE_ROOT}"
        )
    tail = path[len(PROFILE_PREFIX) :].rstrip("/")
    for segment in tail.split("/") if tail else ():
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"{segment!r} is not a plain path segment (letters, digits, . _ -; "
                "{namespace} only once, right after private-artifacts/)"
            )
    return scheme, path


@dataclasses.dataclass(frozen=True, kw_only=True)
class KfpConfig:
    """The charm's config options, validated; errors name the option."""

    default_pipeline_root: str = DEFAULT_PIPELINE_ROOT
    log_level: str = "info"
    workflow_ttl: int = DEFAULT_WORKFLOW_TTL
    max_concurrent_runs: int = 0
    default_node_selector: str = ""
    default_tolerations: str = ""
    archive_logs: bool = True
    cache: bool = True

    def __post_init__(self):
        for option in ("archive-logs", "cache"):
            if not isinstance(getattr(self, option.replace("-", "_")), bool):
                raise ValueError(f"{option}: must be true or false")
        try:
            parse_pipeline_root(self.default_pipeline_root)
        except ValueError as e:
            raise ValueError(f"default-pipeline-root: {e}") from None
        if self.log_level not in LOG_LEVELS:
            raise ValueError(
                f"log-level: must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if not 1 <= self.workflow_ttl <= MAX_WORKFLOW_TTL:
            raise ValueError(
                f"workflow-ttl: must be between 1 and {MAX_WORKFLOW_TTL} seconds (ten years)"
            )
        if not 0 <= self.max_concurrent_runs <= MAX_CONCURRENT_RUNS:
            raise ValueError(
                f"max-concurrent-runs: must be between 0 (no limit) and {MAX_CONCURRENT_RUNS}"
            )
        named("default-node-selector", parse_node_selector, self.default_node_selector)
        named("default-tolerations", parse_tolerations, self.default_tolerations)

    def pipeline_root(self, namespace: str) -> str:
        """The pipeline root of one profile namespace (its `kfp-launcher` ConfigMap)."""
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"{namespace!r} is not a namespace name")
        return self.default_pipeline_root.replace(NAMESPACE_PLACEHOLDER, namespace)

    @property
    def node_selector(self) -> dict[str, str]:
        """The nodeSelector every run's pods get by default."""
        return parse_node_selector(self.default_node_selector)

    @property
    def tolerations(self) -> list[dict[str, Any]]:
        """The tolerations every run's pods get by default (a step's own replace them)."""
        return parse_tolerations(self.default_tolerations)
