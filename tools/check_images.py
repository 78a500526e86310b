#!/usr/bin/env python3
"""List every container image the bundle and the integration tests use, and check each exists.

The images are read from:

* `bundle/bundle.yaml` and `bundle/overlays/*.yaml`: each application's
  `resources` and its `*-image` / `*-images` options;
* each charm's `charmcraft.yaml` (`charms/*` and the test charms in
  `tests/charms/*`): the `upstream-source` of every resource, and the
  defaults of its `*-image` / `*-images` config options (the images its
  workloads pull, such as istio's proxy or the notebook servers);
* `tests/integration/*.py`: every string constant that is a fully qualified
  image reference (a registry host, a path and a tag or digest).

Each is checked with `skopeo inspect --raw docker://REF`, which reads only
the manifest: seconds per image, nothing pulled. A manifest list must also
offer the platform asked for (linux/amd64 by default). The integration
workflow runs this first, so a missing tag fails the job with its name
instead of after a long wait for a pod that never starts.

    python3 tools/check_images.py            # check every image (needs skopeo)
    python3 tools/check_images.py --list     # only list them, with where each is used

Standard library only: the workflow runs it on the runner's own Python before
anything is installed.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# A fully qualified reference: a registry host (with a dot or a port, or
# localhost), a lower-case path, then a tag and/or a sha256 digest. This is
# the reference grammar of the distribution project (reference/regexp.go),
# narrowed to names that say their registry.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)(?::[0-9]+)?"
QUALIFIED_IMAGE = re.compile(
    rf"^{_HOST}/{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


_FINAL = ("manifest unknown", "name unknown", "not found", "denied", "unauthorized")


class YamlSubsetError(ValueError):
    """A YAML construct the small reader below does not handle."""


# --- a reader for the block-style YAML our bundle and charm files use ----------
#
# No PyYAML on a fresh runner's Python, so this reads the subset these files
# are written in: block mappings and sequences, plain, quoted and flow-list
# scalars, literal (|) block scalars, comments. The tests
# compare what it reads with PyYAML on every file it is used on.

_SCALARS = {
    "null": None,
    "~": None,
    "": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}


def _strip_comment(text: str) -> str:
    """The text before a comment (` #` outside quotes)."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"" and (index == 0 or text[index - 1] in " [,:"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip()
    return text.rstrip()


def _scalar(text: str) -> Any:
    """A plain, quoted or flow-list scalar."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(part) for part in inner.split(",")] if inner else []
    if text.startswith("{") and text.endswith("}"):
        if text[1:-1].strip():
            raise YamlSubsetError(f"flow mapping not supported: {text}")
        return {}
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return json.loads(text)
    if text in _SCALARS:
        return _SCALARS[text]
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", text):
        return float(text)
    if text[:1] and text[0] in "&*!|>%@`":
        raise YamlSubsetError(f"unsupported scalar: {text}")
    return text


def _split_key(text: str) -> tuple[str, str] | None:
    """`key: value` or `key:` as (key, value); None when the text is not a mapping entry."""
    match = re.match(r"""^("[^"]*"|'[^']*'|[^\s'"#\[\]{},][^#]*?)\s*:(?:\s+(.*)|$)""", text)
    if match is None:
        return None
    key = match.group(1)
    if key[0] in "'\"":
        key = key[1:-1]
    return key, match.group(2) or ""


class _Reader:
    def __init__(self, text: str) -> None:
        self.lines = text.expandtabs(8).splitlines()
        self.pos = 0

    def _indent(self, line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def _next_significant(self) -> int | None:
        """The index of the next line that is neither blank nor only a comment."""
        index = self.pos
        while index < len(self.lines):
            stripped = self.lines[index].strip()
            if stripped and not stripped.startswith("#") and stripped != "---":
                return index
            index += 1
        return None

    def node(self, parent_indent: int) -> Any:
        """The block node after the current line, indented more than parent_indent."""
        index = self._next_significant()
        if index is None:
            return None
        indent = self._indent(self.lines[index])
        if indent <= parent_indent:
            return None
        return self._block(indent)

    def _block(self, indent: int) -> Any:
        index = self._next_significant()
        assert index is not None
        if self.lines[index].strip().startswith("- ") or self.lines[index].strip() == "-":
            return self._sequence(indent)
        return self._mapping(indent)

    def _value(self, raw: str, indent: int) -> Any:
        """The value after `key:` or `- `, at a node indented `indent`."""
        value = _strip_comment(raw)
        if value[:1] and value[0] in "|>":
            return self._block_scalar(value, indent)
        if value == "":
            index = self._next_significant()
            if index is not None:
                line = self.lines[index]
                # A sequence may sit at its key's own indent.
                if self._indent(line) == indent and line.strip().startswith("-"):
                    return self._sequence(indent)
            return self.node(indent)
        return _scalar(value)

    def _block_scalar(self, header: str, indent: int) -> str:
        if not re.fullmatch(r"\|-?", header):
            raise YamlSubsetError(f"unsupported block scalar header: {header}")
        body: list[str] = []
        block_indent: int | None = None
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.strip():
                if block_indent is None:
                    block_indent = self._indent(line)
                    if block_indent <= indent:
                        break
                elif self._indent(line) < block_indent:
                    break
                body.append(line[block_indent:])
            else:
                body.append("")
            self.pos += 1
        while body and body[-1] == "":
            body.pop()
        text = "\n".join(body)
        if not body:
            return ""
        if header.endswith("-"):
            return text.rstrip("\n")
        return text.rstrip("\n") + "\n"

    def _mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            index = self._next_significant()
            if index is None:
                return result
            line = self.lines[index]
            if self._indent(line) != indent or line.strip().startswith("-"):
                if self._indent(line) > indent:
                    raise YamlSubsetError(f"line {index + 1}: unexpected indent")
                return result
            entry = _split_key(line.strip())
            if entry is None:
                raise YamlSubsetError(f"line {index + 1}: not a mapping entry: {line.strip()}")
            key, raw = entry
            self.pos = index + 1
            result[key] = self._value(raw, indent)

    def _sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while True:
            index = self._next_significant()
            if index is None:
                return result
            line = self.lines[index]
            stripped = line.strip()
            if self._indent(line) != indent or not (stripped == "-" or stripped.startswith("- ")):
                return result
            rest = stripped[1:].lstrip(" ")
            item_indent = indent + (len(stripped) - len(rest))
            entry = _split_key(rest) if rest else None
            if entry is not None and not rest.startswith(("'", '"', "[")):
                # A mapping whose first entry shares the dash's line.
                self.lines[index] = " " * item_indent + rest
                self.pos = index
                result.append(self._mapping(item_indent))
            else:
                self.pos = index + 1
                result.append(self._value(rest, indent))


def load_yaml(text: str) -> Any:
    """The document in `text`, read as the YAML subset described above."""
    reader = _Reader(text)
    return reader.node(-1)


# --- where the images are ---------------------------------------------------------


@dataclass(frozen=True)
class Use:
    """One place an image reference is named."""

    file: str  # relative to the repository root
    where: str  # e.g. "mysql resource mysql-image"

    def __str__(self) -> str:
        return f"{self.file}: {self.where}"


def _is_image_option(name: str) -> bool:
    return name.endswith(("-image", "-images"))


def _option_images(value: Any) -> list[str]:
    """The images in an `*-image` option (one) or an `*-images` option (a YAML list, as text)."""
    if not isinstance(value, str) or not value.strip():
        return []
    if value.lstrip().startswith("- ") or "\n" in value.strip():
        listed = load_yaml(value)
        if not isinstance(listed, list):
            raise YamlSubsetError(f"expected a list of images: {value!r}")
        return [str(item) for item in listed]
    return [value.strip()]


def bundle_images(path: Path, root: Path = ROOT) -> Iterator[tuple[str, Use]]:
    """Images a bundle or overlay file names: resources and image options."""
    document = load_yaml(path.read_text()) or {}
    relative = path.relative_to(root).as_posix()
    for app, spec in sorted((document.get("applications") or {}).items()):
        spec = spec or {}
        for name, ref in sorted((spec.get("resources") or {}).items()):
            if isinstance(ref, str):  # an int is a Charmhub resource revision
                yield ref, Use(relative, f"{app} resource {name}")
        for name, value in sorted((spec.get("options") or {}).items()):
            if _is_image_option(name):
                for ref in _option_images(value):
                    yield ref, Use(relative, f"{app} option {name}")


def charm_images(path: Path, root: Path = ROOT) -> Iterator[tuple[str, Use]]:
    """Images a charmcraft.yaml names: resources' upstream-source, image option defaults."""
    document = load_yaml(path.read_text()) or {}
    relative = path.relative_to(root).as_posix()
    charm = document.get("name") or path.parent.name
    for name, resource in sorted((document.get("resources") or {}).items()):
        resource = resource or {}
        if resource.get("type") == "oci-image" and resource.get("upstream-source"):
            yield str(resource["upstream-source"]), Use(relative, f"{charm} resource {name}")
    options = (document.get("config") or {}).get("options") or {}
    for name, option in sorted(options.items()):
        if _is_image_option(name):
            for ref in _option_images((option or {}).get("default")):
                yield ref, Use(relative, f"{charm} option {name} (default)")


def module_images(path: Path, root: Path = ROOT) -> Iterator[tuple[str, Use]]:
    """Fully qualified image references among a Python module's string constants."""
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = path.relative_to(root).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if QUALIFIED_IMAGE.match(node.value) and ":" in node.value.split("/", 1)[1]:
                yield node.value, Use(relative, f"line {node.lineno}")


def sources(root: Path = ROOT) -> list[tuple[Path, Callable[[Path, Path], Iterator]]]:
    """Every file read, with the function that reads it."""
    files: list[tuple[Path, Callable[[Path, Path], Iterator]]] = []
    files.append((root / "bundle" / "bundle.yaml", bundle_images))
    files += [(p, bundle_images) for p in sorted((root / "bundle" / "overlays").glob("*.yaml"))]
    files += [(p, charm_images) for p in sorted((root / "charms").glob("*/charmcraft.yaml"))]
    files += [
        (p, charm_images) for p in sorted((root / "tests" / "charms").glob("*/charmcraft.yaml"))
    ]
    files += [(p, module_images) for p in sorted((root / "tests" / "integration").glob("*.py"))]
    return files


def collect(root: Path = ROOT) -> dict[str, list[Use]]:
    """Every image reference, each with the places that name it."""
    found: dict[str, list[Use]] = {}
    for path, reader in sources(root):
        for ref, use in reader(path, root):
            found.setdefault(ref, []).append(use)
    return dict(sorted(found.items()))


# --- checking them -------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What the registry said about one reference."""

    ref: str
    ok: bool
    detail: str = ""


def _platforms(manifest: dict[str, Any]) -> set[str]:
    """`os/architecture` of each entry of an image index (OCI image-spec, image-index.md)."""
    platforms = set()
    for entry in manifest.get("manifests") or []:
        platform = entry.get("platform") or {}
        platforms.add(f"{platform.get('os')}/{platform.get('architecture')}")
    return platforms


def check(ref: str, skopeo: str, platform: str, attempts: int = 3, pause: float = 5.0) -> Result:
    """Ask the registry for the manifest of `ref`; retry what may be a passing fault."""
    # containers/image parses docker://NAME with the distribution project's
    # normalisation (docker/docker_transport.go, ParseReference), so short
    # names such as mysql:8.4 mean docker.io/library/mysql:8.4 as Juju reads them.
    argv = [skopeo, "inspect", "--raw", f"docker://{ref}"]
    message = ""
    for attempt in range(attempts):
        process = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if process.returncode == 0:
            try:
                manifest = json.loads(process.stdout)
            except json.JSONDecodeError:
                return Result(ref, False, "the registry answered with something not JSON")
            offered = _platforms(manifest)
            if offered and platform not in offered:
                return Result(
                    ref, False, f"no {platform} image (has {', '.join(sorted(offered))})"
                )
            return Result(ref, True, ", ".join(sorted(offered)) or "single manifest")
        lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"skopeo exited {process.returncode}"
        # The registry's own answers (distribution-spec error codes MANIFEST_UNKNOWN,
        # NAME_UNKNOWN, DENIED, UNAUTHORIZED) are final: retrying will not make the
        # tag appear. Anything else (a timeout, a 5xx) may pass, so try again.
        if any(word in message.lower() for word in _FINAL):
            break
        if attempt + 1 < attempts:
            time.sleep(pause)
    return Result(ref, False, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="list the images; check nothing")
    parser.add_argument(
        "--platform", default="linux/amd64", help="platform a manifest list must offer"
    )
    parser.add_argument("--jobs", type=int, default=6, help="registry queries at once")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    images = collect(args.root)
    if args.list:
        for ref, uses in images.items():
            print(ref)
            for use in uses:
                print(f"    {use}")
        return 0

    skopeo = shutil.which("skopeo")
    if skopeo is None:
        print("skopeo is not installed (Ubuntu: sudo apt-get install skopeo)", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda ref: check(ref, skopeo, args.platform), images))
    missing = [result for result in results if not result.ok]
    for result in results:
        print(f"{'ok' if result.ok else 'MISSING':8} {result.ref}  ({result.detail})")
    if missing:
        print(f"\n{len(missing)} of {len(results)} images cannot be pulled:", file=sys.stderr)
        for result in missing:
            print(f"  {result.ref}: {result.detail}", file=sys.stderr)
            for use in images[result.ref]:
                print(f"      used by {use}", file=sys.stderr)
        return 1
    print(f"all {len(results)} images exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
