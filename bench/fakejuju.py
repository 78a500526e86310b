"""A fake Juju, good enough for one hook: hook tools answering from a fixed model, a fake Pebble.

The hook tools are POSIX sh scripts, one per tool, written from the model:
each matches its argument list against the answers the model has and prints
the answer, so a call costs one shell start, as a real (native) hook tool
costs one process start. Every call is logged. Calls that would change the
model (relation-set, secret-set, open-port, ...) also go to a log of writes,
and calls the model has no answer for go to a log of their own and fail the
way Juju fails them.

The fake Pebble serves the part of Pebble's v1 HTTP API that a reconcile uses
on a unix socket, from a thread of the calling process. Reads are answered
from the container's state; anything that would change the container
(layers, service and check changes, file writes, exec) is recorded as a write
and otherwise ignored, so every run sees the same state.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socketserver
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

# Build-time keys of charmcraft.yaml that `charmcraft pack` leaves out of metadata.yaml.
_BUILD_KEYS = ("type", "base", "build-base", "bases", "platforms", "parts", "charm-libs")
# Records in the logs end with this (messages and data may span lines).
_END = "\036"
_SEP = "\037"
# Hook tools that change the model. status-set and juju-log are logged apart.
WRITE_TOOLS = (
    "relation-set",
    "secret-add",
    "secret-set",
    "secret-grant",
    "secret-revoke",
    "secret-remove",
    "open-port",
    "close-port",
    "application-version-set",
    "storage-add",
    "state-set",
    "state-delete",
)
_READS_STDIN = ("relation-set", "state-set")
# Read-only hook tools the model has no answers for: present, so that a call
# is logged and fails as Juju would fail it, rather than "command not found".
_UNANSWERED_TOOLS = (
    "network-get",
    "resource-get",
    "secret-ids",
    "state-get",
    "credential-get",
    "action-get",
    "leader-get",
)
_SINCE = "2025-01-01T00:00:00Z"


# --- the charm as packed -----------------------------------------------------------


def write_packed_metadata(charm_dir: Path) -> dict[str, Any]:
    """Split charmcraft.yaml into metadata.yaml, config.yaml and actions.yaml, as packing does.

    Returns the metadata. ops reads these three files, not charmcraft.yaml.
    """
    unified = yaml.safe_load((charm_dir / "charmcraft.yaml").read_text())
    config = unified.pop("config", None)
    actions = unified.pop("actions", None)
    for key in _BUILD_KEYS:
        unified.pop(key, None)
    (charm_dir / "metadata.yaml").write_text(yaml.safe_dump(unified, sort_keys=False))
    if config is not None:
        (charm_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if actions is not None:
        (charm_dir / "actions.yaml").write_text(yaml.safe_dump(actions, sort_keys=False))
    unified["config"] = config or {}
    return unified


def config_defaults(metadata: dict[str, Any]) -> dict[str, Any]:
    """What config-get reports for a fresh deployment: each option that has a default."""
    options = metadata.get("config", {}).get("options", {})
    return {name: o["default"] for name, o in options.items() if "default" in o}


def endpoints(metadata: dict[str, Any]) -> list[str]:
    """Every relation endpoint of the charm."""
    return [
        name
        for section in ("provides", "requires", "peers")
        for name in metadata.get(section, {}) or {}
    ]


# --- the model -----------------------------------------------------------------------


@dataclasses.dataclass
class Relation:
    """One relation as this unit sees it.

    A peer relation (see `peer`) names the unit's own application as its
    remote one and has a single application databag, `local_app_data`: the
    one every unit of the application reads and only the leader writes.
    """

    endpoint: str
    id: int
    remote_app: str
    remote_units: list[str]
    local_app_data: dict[str, str] = dataclasses.field(default_factory=dict)
    remote_app_data: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def peer(
        cls,
        endpoint: str,
        id: int,
        app: str,
        app_data: dict[str, str],
        other_units: Iterable[str] = (),
    ) -> Relation:
        """A peer relation of application `app`, its databag holding `app_data`."""
        return cls(endpoint, id, app, list(other_units), local_app_data=app_data)

    @property
    def ref(self) -> str:
        """How hook tools name it: `<endpoint>:<id>`."""
        return f"{self.endpoint}:{self.id}"


@dataclasses.dataclass
class Secret:
    """A secret this unit can read; `owner` None for one it only observes."""

    id: str  # the bare id, as Juju makes them
    content: dict[str, str]
    label: str | None = None
    owner: str | None = "application"
    revision: int = 1
    description: str | None = None


@dataclasses.dataclass
class Model:
    """Everything the hook tools answer from."""

    unit: str
    model_name: str
    model_uuid: str
    leader: bool
    config: dict[str, Any]
    endpoints: list[str]
    relations: list[Relation] = dataclasses.field(default_factory=list)
    secrets: list[Secret] = dataclasses.field(default_factory=list)
    storages: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> location
    opened_ports: list[str] = dataclasses.field(default_factory=list)
    unit_status: tuple[str, str] = ("active", "")
    app_status: tuple[str, str] = ("active", "")
    address: str = "10.1.0.10"

    @property
    def app(self) -> str:
        """The application of the unit."""
        return self.unit.split("/")[0]


def _unit_databag(address: str) -> dict[str, str]:
    return {
        "egress-subnets": f"{address}/32",
        "ingress-address": address,
        "private-address": address,
    }


def _relation_answers(model: Model) -> dict[str, list[tuple[str, Any]]]:
    answers: dict[str, list[tuple[str, Any]]] = {
        "relation-ids": [],
        "relation-list": [],
        "relation-get": [],
        "relation-model-get": [],
    }
    for endpoint in model.endpoints:
        ids = [r.ref for r in model.relations if r.endpoint == endpoint]
        answers["relation-ids"].append((f"{endpoint} --format=json", ids))
    for n, relation in enumerate(model.relations):
        remote_address = f"10.1.1.{10 + n}"
        bags = {
            f"--app - {model.app}": relation.local_app_data,
            f"- {model.unit}": _unit_databag(model.address),
        }
        if relation.remote_app != model.app:
            bags[f"--app - {relation.remote_app}"] = relation.remote_app_data
        elif relation.remote_app_data:
            # Only a peer relation has this unit's application at its other end, and
            # it has one application databag: `--app - <app>` is that one, and it
            # cannot answer with two.
            raise ValueError(
                f"{relation.ref} is a peer relation: its application databag is "
                "local_app_data, remote_app_data must stay empty"
            )
        for unit in relation.remote_units:
            bags[f"- {unit}"] = _unit_databag(remote_address)
        # ops names a relation as <endpoint>:<id> or, from older call sites, by id alone.
        for ref in (relation.ref, str(relation.id)):
            answers["relation-list"].append((f"--format=json -r {ref}", relation.remote_units))
            answers["relation-list"].append((f"--format=json --app -r {ref}", relation.remote_app))
            answers["relation-model-get"].append(
                (f"--format=json -r {ref}", {"uuid": model.model_uuid})
            )
            for member, bag in bags.items():
                answers["relation-get"].append((f"--format=json -r {ref} {member}", bag))
    return answers


def _secret_answers(model: Model) -> dict[str, list[tuple[str, Any]]]:
    gets: list[tuple[str, Any]] = []
    infos: list[tuple[str, Any]] = []
    for secret in model.secrets:
        ids = [f"secret:{secret.id}", f"secret://{model.model_uuid}/{secret.id}", secret.id]
        lookups = list(ids)
        if secret.label:
            lookups.append(f"--label {secret.label}")
            lookups += [f"{i} --label {secret.label}" for i in ids]
        for lookup in lookups:
            for flag in ("", " --refresh", " --peek"):
                gets.append((f"--format=json {lookup}{flag}", secret.content))
        if secret.owner is None:
            continue  # only owners may read a secret's metadata
        info = {
            secret.id: {
                "revision": secret.revision,
                "label": secret.label or "",
                "owner": secret.owner,
                "rotation": "never",
                "description": secret.description or "",
            }
        }
        for lookup in [*ids, *([f"--label {secret.label}"] if secret.label else [])]:
            infos.append((f"--format=json {lookup}", info))
    return {"secret-get": gets, "secret-info-get": infos}


def answers(model: Model) -> dict[str, list[tuple[str, Any]]]:
    """Each read-only hook tool's answers: (argument string, value printed as JSON)."""
    storages_by_name: dict[str, list[str]] = {}
    for storage_id in model.storages:
        storages_by_name.setdefault(storage_id.split("/")[0], []).append(storage_id)
    unit_status = {
        "status": model.unit_status[0],
        "message": model.unit_status[1],
        "status-data": {},
    }
    app_status = {
        "application-status": {
            "status": model.app_status[0],
            "message": model.app_status[1],
            "status-data": {},
        },
        "units": {model.unit: unit_status},
    }
    table: dict[str, list[tuple[str, Any]]] = {
        "is-leader": [("--format=json", model.leader)],
        "config-get": [("--format=json", model.config)]
        + [(f"--format=json {key}", value) for key, value in model.config.items()],
        "storage-list": [("--format=json", list(model.storages))]
        + [(f"--format=json {name}", ids) for name, ids in storages_by_name.items()],
        "storage-get": [
            (f"--format=json -s {sid}", {"kind": "filesystem", "location": location})
            for sid, location in model.storages.items()
        ],
        "opened-ports": [("--format=json", model.opened_ports)],
        "goal-state": [
            (
                "--format=json",
                {"units": {model.unit: {"status": "active", "since": _SINCE}}, "relations": {}},
            )
        ],
        "status-get": [
            ("--include-data --format=json --application=false", unit_status),
            ("--include-data --format=json --application=true", app_status),
        ],
    }
    table.update(_relation_answers(model))
    table.update(_secret_answers(model))
    return table


# --- hook tools as shell scripts ---------------------------------------------------------


def _q(text: str) -> str:
    """Quote for sh: one single-quoted word."""
    return "'" + text.replace("'", "'\\''") + "'"


@dataclasses.dataclass
class ToolLogs:
    """Where the hook tools write what they were asked."""

    calls: Path
    writes: Path
    unanswered: Path
    status: Path
    juju_log: Path

    def reset(self) -> None:
        """Empty every log."""
        for path in dataclasses.astuple(self):
            Path(path).write_text("")

    def records(self, which: str) -> list[str]:
        """The records of one log (`calls`, `writes`, `unanswered`, `status`, `juju_log`)."""
        return [r for r in getattr(self, which).read_text().split(_END) if r]

    def log_lines(self) -> list[tuple[str, str]]:
        """(level, message) of every juju-log call."""
        out: list[tuple[str, str]] = []
        for record in self.records("juju_log"):
            level, _, message = record.partition(_SEP)
            out.append((level, message))
        return out


def _read_tool(tool: str, entries: list[tuple[str, Any]], logs: ToolLogs) -> str:
    not_found = tool in ("secret-get", "secret-info-get")
    error = "secret not found" if not_found else f"{tool}: no such answer in the bench's model"
    lines = [
        "#!/bin/sh",
        f"# {tool}: answers of the bench's settled model.",
        f"printf '%s %s{_END}' {_q(tool)} \"$*\" >>{_q(str(logs.calls))}",
        'case "$*" in',
    ]
    for args, value in entries:
        lines.append(f"{_q(args)}) printf '%s\\n' {_q(json.dumps(value))} ;;")
    lines += [
        f"*) printf '%s %s{_END}' {_q(tool)} \"$*\" >>{_q(str(logs.unanswered))}",
        f"   printf 'ERROR %s\\n' {_q(error)} >&2",
        "   exit 1 ;;",
        "esac",
    ]
    return "\n".join(lines) + "\n"


def _write_tool(tool: str, logs: ToolLogs) -> str:
    stdin = "  printf ' <<< '; cat\n" if tool in _READS_STDIN else ""
    answer = "printf '%s\\n' 'secret:d0bench00000000000000'\n" if tool == "secret-add" else ""
    return (
        "#!/bin/sh\n"
        f"# {tool}: changes the model; recorded, never applied.\n"
        f"printf '%s %s{_END}' {_q(tool)} \"$*\" >>{_q(str(logs.calls))}\n"
        "{\n"
        f"  printf '%s' {_q(tool)}\n"
        '  for a in "$@"; do\n'
        "    case $a in\n"
        "      *'#file='*) printf ' %s=' \"${a%%#file=*}\"; cat \"${a#*#file=}\" ;;\n"
        "      *) printf ' %s' \"$a\" ;;\n"
        "    esac\n"
        "  done\n"
        f"{stdin}"
        f"  printf '{_END}'\n"
        f"}} >>{_q(str(logs.writes))}\n"
        f"{answer}"
    )


def _logging_tool(tool: str, target: Path, logs: ToolLogs, fields: str) -> str:
    return (
        "#!/bin/sh\n"
        f"# {tool}: recorded.\n"
        f"printf '%s %s{_END}' {_q(tool)} \"$*\" >>{_q(str(logs.calls))}\n"
        f'printf {_q(fields)} "$@" >>{_q(str(target))}\n'
    )


def write_hook_tools(model: Model, bin_dir: Path, log_dir: Path) -> ToolLogs:
    """Write one sh script per hook tool into `bin_dir`; return where they log."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = ToolLogs(
        calls=log_dir / "calls.log",
        writes=log_dir / "writes.log",
        unanswered=log_dir / "unanswered.log",
        status=log_dir / "status.log",
        juju_log=log_dir / "juju-log.log",
    )
    logs.reset()
    table = {tool: [] for tool in _UNANSWERED_TOOLS} | answers(model)
    scripts = {tool: _read_tool(tool, entries, logs) for tool, entries in table.items()}
    for tool in WRITE_TOOLS:
        scripts[tool] = _write_tool(tool, logs)
    # juju-log --log-level LEVEL -- MESSAGE
    scripts["juju-log"] = (
        "#!/bin/sh\n"
        "# juju-log: recorded.\n"
        f"printf '%s{_END}' juju-log >>{_q(str(logs.calls))}\n"
        f'printf \'%s{_SEP}%s{_END}\' "$2" "$4" >>{_q(str(logs.juju_log))}\n'
    )
    # status-set --application=BOOL STATUS [-- MESSAGE]
    scripts["status-set"] = _logging_tool("status-set", logs.status, logs, f"%s %s %s %s{_END}")
    for tool, text in scripts.items():
        path = bin_dir / tool
        path.write_text(text)
        path.chmod(0o755)
    return logs


# --- Pebble ------------------------------------------------------------------------------


@dataclasses.dataclass
class File:
    """A file or directory in a workload container."""

    content: bytes | None  # None for a directory
    permissions: int = 0o644
    user: str = "root"
    group: str = "root"


@dataclasses.dataclass
class Container:
    """A workload container's state, as its Pebble reports it."""

    name: str
    plan: dict[str, Any]  # {"services": {...}, "checks": {...}}
    running: set[str] = dataclasses.field(default_factory=set)
    files: dict[str, File] = dataclasses.field(default_factory=dict)

    def add_file(self, path: str, content: str | bytes, **kwargs: Any) -> None:
        """Add a file and the directories above it."""
        data = content.encode() if isinstance(content, str) else content
        self.files[path] = File(data, **kwargs)
        self.add_dir(path.rsplit("/", 1)[0] or "/")

    def add_dir(self, path: str, **kwargs: Any) -> None:
        """Add a directory and the ones above it."""
        while path and path != "/":
            self.files.setdefault(path, File(None, **{"permissions": 0o755, **kwargs}))
            kwargs = {}
            path = path.rsplit("/", 1)[0]


# Users of the workload images, by name (oauth2-proxy's distroless image runs as `nonroot`).
_IDS = {"root": 0, "mysql": 999, "minio": 1000, "dex": 1001, "nonroot": 65532}


def _file_info(path: str, entry: File) -> dict[str, Any]:
    info: dict[str, Any] = {
        "path": path,
        "name": path.rsplit("/", 1)[-1] or "/",
        "type": "directory" if entry.content is None else "file",
        "permissions": f"{entry.permissions:o}",
        "last-modified": _SINCE,
        "user-id": _IDS.get(entry.user, 1000),
        "user": entry.user,
        "group-id": _IDS.get(entry.group, 1000),
        "group": entry.group,
    }
    if entry.content is not None:
        info["size"] = len(entry.content)
    return info


def _sync(result: Any) -> dict[str, Any]:
    return {"type": "sync", "status-code": 200, "status": "OK", "result": result}


def _error(code: int, message: str, kind: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"message": message}
    if kind:
        result["kind"] = kind
    return {"type": "error", "status-code": code, "status": "Error", "result": result}


class _Handler(http.server.BaseHTTPRequestHandler):
    """One Pebble API request."""

    server: _PebbleServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet, and the base would want a peer address a unix socket does not have

    def do_GET(self) -> None:
        self.server.pebble.handle(self, "GET", b"")

    def do_POST(self) -> None:
        self.server.pebble.handle(self, "POST", self._body())

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, payload: dict[str, Any]) -> None:
        self.reply(payload["status-code"], json.dumps(payload).encode())


class _PebbleServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    pebble: FakePebble


class FakePebble:
    """Pebble's API for one container, on a unix socket, served from a thread."""

    def __init__(self, container: Container, socket_path: Path):
        self.container = container
        self.socket_path = socket_path
        self.writes: list[str] = []
        self.unanswered: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()
        self._change = 0
        self._server: _PebbleServer | None = None
        self._routes = {
            ("GET", "/v1/system-info"): self._system_info,
            ("GET", "/v1/plan"): self._plan,
            ("GET", "/v1/services"): self._services,
            ("GET", "/v1/checks"): self._checks,
            ("GET", "/v1/files"): self._files,
            ("GET", "/v1/warnings"): lambda *_: _sync([]),
            ("GET", "/v1/notices"): lambda *_: _sync([]),
            ("POST", "/v1/layers"): self._post_layers,
            ("POST", "/v1/services"): self._post_services,
            ("POST", "/v1/checks"): self._post_checks,
            ("POST", "/v1/files"): self._post_files,
            ("POST", "/v1/exec"): self._post_exec,
            ("POST", "/v1/signals"): self._post_signals,
        }

    def __enter__(self) -> FakePebble:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._server = _PebbleServer(str(self.socket_path), _Handler)
        self._server.pebble = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.socket_path.unlink(missing_ok=True)

    def reset(self) -> None:
        """Forget the calls and writes so far (before each run)."""
        with self._lock:
            self.writes.clear()
            self.unanswered.clear()
            self.calls = 0

    def _write(self, what: str) -> None:
        with self._lock:
            self.writes.append(f"pebble[{self.container.name}] {what}")

    # --- dispatch

    def handle(self, request: _Handler, method: str, body: bytes) -> None:
        """Answer one request, recording it."""
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        query_lists = parse_qs(url.query)
        with self._lock:
            self.calls += 1
        if url.path.startswith("/v1/changes/"):
            request.reply_json(self._change_done(url.path.split("/")[3]))
            return
        route = self._routes.get((method, url.path))
        if route is None:
            with self._lock:
                self.unanswered.append(f"pebble[{self.container.name}] {method} {request.path}")
            request.reply_json(_error(404, f"not found: {url.path}"))
            return
        if url.path == "/v1/files" and method == "GET" and query.get("action") == "read":
            self._read_file(request, query.get("path", ""))
            return
        request.reply_json(route(query, query_lists, body))

    # --- reads

    def _system_info(self, *_: Any) -> dict[str, Any]:
        return _sync({"version": "v1.19.0", "boot-id": "bench"})

    def _plan(self, *_: Any) -> dict[str, Any]:
        return _sync(yaml.safe_dump(self.container.plan, sort_keys=True))

    def _services(self, query: dict[str, str], *_: Any) -> dict[str, Any]:
        names = query.get("names", "").split(",") if query.get("names") else None
        result = []
        for name, service in self.container.plan.get("services", {}).items():
            if names is not None and name not in names:
                continue
            result.append(
                {
                    "name": name,
                    "startup": service.get("startup", "disabled"),
                    "current": "active" if name in self.container.running else "inactive",
                    "current-since": _SINCE,
                }
            )
        return _sync(result)

    def _checks(self, query: dict[str, str], lists: dict[str, list[str]], _: bytes) -> Any:
        names = [n for value in lists.get("names", []) for n in value.split(",")]
        result = []
        for name, check in self.container.plan.get("checks", {}).items():
            if (names and name not in names) or (
                "level" in query and check.get("level") != query["level"]
            ):
                continue
            started = check.get("startup", "enabled") != "disabled"
            info = {
                "name": name,
                "level": check.get("level", ""),
                "startup": check.get("startup", "enabled"),
                "status": "up" if started else "inactive",
                "failures": 0,
                "threshold": check.get("threshold", 3),
                "successes": 360,
            }
            if started:
                info["change-id"] = "2"
            result.append(info)
        return _sync(result)

    def _files(self, query: dict[str, str], *_: Any) -> dict[str, Any]:
        path = query.get("path", "")
        entry = self.container.files.get(path)
        if entry is None:
            return _error(404, f"stat {path}: no such file or directory", "not-found")
        if entry.content is not None or query.get("itself") == "true":
            return _sync([_file_info(path, entry)])
        prefix = path.rstrip("/") + "/"
        children = [
            _file_info(p, e)
            for p, e in sorted(self.container.files.items())
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]
        return _sync(children)

    def _read_file(self, request: _Handler, path: str) -> None:
        """Answer a read the way Pebble does: multipart, the file then the response."""
        boundary = "benchboundary0123456789"
        entry = self.container.files.get(path)
        parts = []
        if entry is None or entry.content is None:
            kind, message = (
                ("not-found", f"stat {path}: no such file or directory")
                if entry is None
                else ("generic-file-error", f"can only read a regular file: {path!r}")
            )
            response = {"path": path, "error": {"kind": kind, "message": message}}
        else:
            parts.append(
                (
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                    f'Content-Disposition: form-data; name="files"; filename="{path}"\r\n\r\n'
                ).encode()
                + entry.content
                + b"\r\n"
            )
            response = {"path": path}
        meta = json.dumps(_sync([response])).encode()
        parts.append(
            (
                f"--{boundary}\r\nContent-Type: application/json\r\n"
                'Content-Disposition: form-data; name="response"\r\n\r\n'
            ).encode()
            + meta
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request.reply(200, b"".join(parts), f"multipart/form-data; boundary={boundary}")

    def _change_done(self, change_id: str) -> dict[str, Any]:
        return _sync(
            {
                "id": change_id,
                "kind": "bench",
                "summary": "recorded by the bench, not carried out",
                "status": "Done",
                "ready": True,
                "spawn-time": _SINCE,
                "ready-time": _SINCE,
                "tasks": [],
            }
        )

    def _async(self) -> dict[str, Any]:
        with self._lock:
            self._change += 1
            change = str(100 + self._change)
        return {
            "type": "async",
            "status-code": 202,
            "status": "Accepted",
            "change": change,
            "result": None,
        }

    # --- writes: recorded, not applied

    def _post_layers(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        layer = yaml.safe_load(request.get("layer") or "") or {}
        how = "combine" if request.get("combine") else "add"
        self._write(
            f"layer {request.get('label')!r} ({how}): services "
            f"{sorted(layer.get('services', {}))}, checks {sorted(layer.get('checks', {}))}"
        )
        return _sync(True)

    def _post_services(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        self._write(f"services {request.get('action')} {request.get('services') or []}")
        return self._async()

    def _post_checks(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        self._write(f"checks {request.get('action')} {request.get('checks') or []}")
        return _sync({"changed": request.get("checks") or []})

    def _post_files(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        if body.startswith(b"{"):
            request = json.loads(body)
            paths = [d["path"] for d in request.get("dirs") or request.get("paths") or []]
            self._write(f"files {request.get('action')} {paths}")
            return _sync([{"path": p} for p in paths])
        request, size = _push_request(body)
        files = request.get("files", [])
        for info in files:
            mode = info.get("permissions", "")
            self._write(f"files write {info.get('path')} ({size} bytes, mode {mode or '644'})")
        return _sync([{"path": info.get("path")} for info in files])

    def _post_exec(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        self._write(f"exec {request.get('command')}")
        return _error(400, "exec is not served by the bench's fake Pebble")

    def _post_signals(self, _q: Any, _l: Any, body: bytes) -> dict[str, Any]:
        request = json.loads(body)
        self._write(f"signal {request.get('signal')} {request.get('services')}")
        return _sync(True)


def _push_request(body: bytes) -> tuple[dict[str, Any], int]:
    """The metadata part of a push, and the size of the file part."""
    head, _, rest = body.partition(b"\r\n\r\n")
    boundary = head.split(b"\r\n", 1)[0]
    meta, _, rest = rest.partition(b"\r\n" + boundary)
    _, _, content = rest.partition(b"\r\n\r\n")
    content = content.rsplit(b"\r\n" + boundary, 1)[0]
    return json.loads(meta), len(content)


def join_records(records: Iterable[str]) -> list[str]:
    """Records made printable: one line each, long ones cut."""
    out = []
    for record in records:
        line = " ".join(record.split())
        out.append(line if len(line) <= 300 else line[:297] + "...")
    return out
