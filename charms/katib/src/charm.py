#!/usr/bin/env python3
"""The katib charm's entrypoint, which Juju runs for every hook.

The charm itself is in `katib_charm`. Python compiles the script it runs
from source every time but caches the bytecode of the modules the script
imports, so keeping the charm in a module spares each hook compiling it.
"""

import ops
from katib_charm import KatibCharm

if __name__ == "__main__":  # pragma: nocover
    ops.main(KatibCharm)
