#!/usr/bin/env python3
"""Pack charms into build/<charm>_<platform>.charm, the artefacts bundle/bundle.yaml uses.

Each charm is staged with tools/stage.py (its tree plus the `lib/` modules it
imports) into `<out>/<charm>/`, then `charmcraft pack --project-dir` runs on
the staged copy and the `.charm` files it writes are moved up into `<out>/`.

charmcraft builds in an LXD (or Multipass) instance of the charm's base,
Ubuntu 24.04, so it needs one of those set up. `--destructive-mode` builds on
this machine instead, which then has to be Ubuntu 24.04 itself (a GitHub
`ubuntu-24.04` runner is). Either way charmcraft only runs on Ubuntu.

    python tools/pack.py [--destructive-mode] [--platform amd64] [--out build] [CHARM ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import stage

ROOT = stage.ROOT
BUILD = ROOT / "build"

MISSING_CHARMCRAFT = """\
charmcraft is not installed (or not on PATH).
Install it on Ubuntu with:   sudo snap install charmcraft --classic
It packs inside LXD or Multipass (sudo snap install lxd && lxd init --auto),
or on an Ubuntu 24.04 host itself with: python tools/pack.py --destructive-mode
"""


class PackError(Exception):
    """Packing cannot start or did not produce what was expected."""


def find_charmcraft() -> str:
    """The charmcraft executable, or a PackError that says how to get it."""
    path = shutil.which("charmcraft")
    if path is None:
        raise PackError(MISSING_CHARMCRAFT)
    return path


def pack_command(
    charmcraft: str, project: Path, *, destructive: bool = False, platform: str | None = None
) -> list[str]:
    """The `charmcraft pack` argv for one staged charm."""
    argv = [charmcraft, "pack", "--verbose", f"--project-dir={project}"]
    if destructive:
        argv.append("--destructive-mode")
    if platform:
        argv.append(f"--platform={platform}")
    return argv


def pack_charm(
    name: str,
    out: Path,
    charmcraft: str,
    *,
    destructive: bool = False,
    platform: str | None = None,
) -> list[Path]:
    """Stage one charm, pack it, and return the `.charm` files now in `out`."""
    try:
        staged = stage.stage(name, out)
    except SystemExit as e:  # stage.py exits with a message for an unknown charm
        raise PackError(str(e.code)) from None
    for stale in staged.glob("*.charm"):
        stale.unlink()
    argv = pack_command(charmcraft, staged, destructive=destructive, platform=platform)
    sys.stdout.write(f"packing {name}: {' '.join(argv)}\n")
    sys.stdout.flush()
    result = subprocess.run(argv, cwd=staged, check=False)
    if result.returncode != 0:
        raise PackError(f"charmcraft pack failed for {name} (exit code {result.returncode})")
    produced = sorted(staged.glob("*.charm"))
    if not produced:
        raise PackError(f"charmcraft pack wrote no .charm file for {name} in {staged}")
    artefacts = []
    for charm in produced:
        target = out / charm.name
        if target.exists():
            target.unlink()
        shutil.move(str(charm), target)
        artefacts.append(target)
    return artefacts


def all_charms() -> list[str]:
    """Every charm in the repository, by folder name."""
    return sorted(p.parent.name for p in stage.CHARMS.glob("*/charmcraft.yaml"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("charms", nargs="*", help="charm names (default: every charm)")
    parser.add_argument("--out", type=Path, default=BUILD, help="output folder (default: build)")
    parser.add_argument(
        "--destructive-mode",
        action="store_true",
        help="build on this host (Ubuntu 24.04 only) instead of in LXD/Multipass",
    )
    parser.add_argument(
        "--platform", help="pack only this platform of each charm, e.g. amd64 (default: all)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Pack the named charms, or all of them; 0 when every one packed."""
    args = parse_args(argv)
    try:
        charmcraft = find_charmcraft()
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.charms or all_charms():
            for artefact in pack_charm(
                name,
                args.out,
                charmcraft,
                destructive=args.destructive_mode,
                platform=args.platform,
            ):
                sys.stdout.write(f"packed {artefact}\n")
    except PackError as e:
        sys.stderr.write(f"error: {str(e).rstrip()}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
