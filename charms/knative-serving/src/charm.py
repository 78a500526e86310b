#!/usr/bin/env python3
"""The knative-serving charm's entrypoint, which Juju runs for every hook.

The charm itself is in `knative_serving_charm`, so that its bytecode is cached.
"""

import ops
from knative_serving_charm import KnativeServingCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(KnativeServingCharm)
