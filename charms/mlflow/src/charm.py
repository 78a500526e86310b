#!/usr/bin/env python3
"""The mlflow charm's entrypoint, which Juju runs for every hook.

The charm itself is in `mlflow_charm`. Python compiles the script it runs
from source every time but caches the bytecode of the modules the script
imports, so keeping the charm in a module spares each hook compiling it.
"""

import ops
from mlflow_charm import MlflowCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(MlflowCharm)
