#!/usr/bin/env python3
"""The kserve charm's entrypoint, which Juju runs for every hook.

The charm itself is in `kserve_charm`, so that its bytecode is cached.
"""

import ops
from kserve_charm import KServeCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(KServeCharm)
