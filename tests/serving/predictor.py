"""A predictor that loads its model as KServe v0.14.1's sklearnserver does, and serves it.

Run with the runtime's arguments (`--model_name`, `--model_dir`,
`--http_port`; kserve/kserve v0.14.1 config/runtimes/kserve-sklearnserver.yaml)
plus `--grpc_port` so that it takes no fixed port on the test machine. The
model directory holds exactly one `*.joblib`, `*.pkl` or `*.pickle` file,
loaded with `joblib.load`; `predict` answers the v1 protocol
(python/sklearnserver/sklearnserver/model.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import kserve
from kserve.errors import ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

EXTENSIONS = (".joblib", ".pkl", ".pickle")


class RegistryModel(kserve.Model):
    """A scikit-learn model from the directory the storage initializer filled."""

    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.estimator: Any = None

    def load(self) -> bool:
        found = sorted(
            p for p in self.model_dir.iterdir() if p.is_file() and p.name.endswith(EXTENSIONS)
        )
        if not found:
            raise ModelMissingError(str(self.model_dir))
        if len(found) > 1:
            raise RuntimeError(f"more than one model file in {self.model_dir}: {found}")
        self.estimator = joblib.load(found[0])
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: Any = None) -> Any:
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.estimator.predict(instances), self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True)
    args, _ = parser.parse_known_args()
    model = RegistryModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port).start([model])
