"""What the fake `az`, `juju`, `kubectl` and deploy interpreter share.

Each fake appends its argv as one JSON list a line to the file named by
`$CALLS`, and keeps what it "created" in a JSON document at `$STUB_STATE`, so
a second run of tools/aks-up.sh finds what the first one made. A test can
write that document first to start from a given state (a Failed cluster, a
rebuilt one).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
OUTBOUND_IP = "20.0.0.7"


def record(argv: list[str]) -> None:
    """Append the call to $CALLS."""
    with open(os.environ["CALLS"], "a") as f:
        f.write(json.dumps(argv) + "\n")


def load() -> dict[str, Any]:
    """The fakes' shared state (empty before the first creating call)."""
    path = Path(os.environ["STUB_STATE"])
    return json.loads(path.read_text()) if path.exists() else {}


def save(state: dict[str, Any]) -> None:
    """Write the shared state back."""
    Path(os.environ["STUB_STATE"]).write_text(json.dumps(state, indent=1, sort_keys=True))


def parse(args: list[str], flags: frozenset[str] = frozenset()) -> tuple[list[str], dict]:
    """Positional words and `--option value` pairs; `flags` take no value."""
    words: list[str] = []
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            if arg in flags or i + 1 == len(args):
                options[arg] = True
            else:
                options[arg] = args[i + 1]
                i += 1
        else:
            words.append(arg)
        i += 1
    return words, options


def fail(message: str, code: int = 1) -> None:
    """Print an error the way the real tools do and exit."""
    sys.stderr.write(message + "\n")
    sys.exit(code)


def out(value: Any, output: str | bool | None) -> None:
    """Print a value as `--output tsv` (one item a line) or as JSON."""
    if output == "none":
        return
    if output == "tsv":
        items = value if isinstance(value, list) else [value]
        sys.stdout.write("".join(f"{item}\n" for item in items))
    else:
        sys.stdout.write(json.dumps(value) + "\n")
