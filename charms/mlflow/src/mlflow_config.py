"""The mlflow charm's config options, checked: each error names the option.

A frozen class loaded with `CharmBase.load_config`; it imports nothing
heavier than `re`, so that a settled hook stays cheap.
"""

from __future__ import annotations

import dataclasses
import re

from kubeflow_interfaces.s3 import is_valid_bucket_name

MAX_WORKERS = 64
MAX_REQUEST_TIMEOUT = 3600
# A key prefix inside the bucket: path segments of letters, digits and `._-`.
_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
# MLflow 2.22.0's experiments.name is a String(256) (mlflow/store/tracking/dbmodels/models.py).
MAX_EXPERIMENT_NAME = 256


def _int_in(option: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{option}: must be a whole number from {low} to {high}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MlflowConfig:
    """The charm's config options, validated; errors name the option."""

    workers: int = 4
    request_timeout: int = 60
    artifact_bucket: str = "mlflow"
    artifact_path: str = "artifacts"
    default_experiment: str = ""

    def __post_init__(self):
        _int_in("workers", self.workers, 1, MAX_WORKERS)
        _int_in("request-timeout", self.request_timeout, 1, MAX_REQUEST_TIMEOUT)
        if not is_valid_bucket_name(self.artifact_bucket):
            raise ValueError(
                "artifact-bucket: must be an S3 bucket name (3 to 63 lower-case letters, "
                "digits, dots and hyphens, starting and ending with a letter or digit)"
            )
        path = self.artifact_path.strip("/")
        if path and (not _PATH.match(path) or ".." in path.split("/")):
            raise ValueError(
                "artifact-path: must be a key prefix like `mlflow/artifacts`: letters, digits, "
                "`.`, `_`, `-` and `/` between segments"
            )
        name = self.default_experiment
        if name != name.strip() or len(name) > MAX_EXPERIMENT_NAME or not name.isprintable():
            raise ValueError(
                f"default-experiment: must be at most {MAX_EXPERIMENT_NAME} printable characters "
                "without leading or trailing spaces"
            )

    @property
    def path(self) -> str:
        """The artifact path without leading or trailing slashes ('' for the bucket's root)."""
        return self.artifact_path.strip("/")
