#!/usr/bin/env python3
"""The kubeflow-trainer charm's entrypoint, which Juju runs for every hook.

The charm itself is in `kubeflow_trainer_charm`, so that its bytecode is cached.
"""

import ops
from kubeflow_trainer_charm import KubeflowTrainerCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(KubeflowTrainerCharm)
