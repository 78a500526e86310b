"""A Kubernetes API in memory, for lightkube clients, that checks every object it is sent.

`FakeKubernetes().client()` is a real `lightkube.Client` whose HTTP goes to
this object instead of a cluster. It answers what charms do with lightkube
and `lightkube-extensions`' KubernetesResourceManager: server-side apply,
create, get, list (all namespaces or one, with equality label selectors) and
delete, and TokenRequests for existing ServiceAccounts (a made-up token).
Every object written is validated first:

- built-in kinds against the real Kubernetes OpenAPI schemas
  (`kubernetes-validate`, offline, strict: unknown fields are errors);
- custom resources against a CustomResourceDefinition applied before them:
  the group, version and kind must be served, and the object must satisfy
  the version's `openAPIV3Schema`.

An invalid object is refused with HTTP 422, as the API server would, and
recorded in `rejected`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.31"
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status|token))?$"
)


@dataclass
class Stored:
    """One object in the fake cluster."""

    api_version: str
    plural: str
    namespace: str | None
    body: dict[str, Any]


@dataclass
class FakeKubernetes:
    """The cluster's objects, and the requests that changed them."""

    objects: dict[tuple[str, str, str | None, str], Stored] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # verb, kind, name
    rejected: list[str] = field(default_factory=list)
    tokens_issued: int = 0  # TokenRequests answered (not objects: not in `writes`)

    def __deepcopy__(self, memo: dict[int, Any]) -> FakeKubernetes:
        # The cluster is one: a client that gets copied still talks to it.
        return self

    def kubeconfig(self, namespace: str = "kubeflow") -> Any:
        """A kubeconfig for this fake cluster (the token is never checked)."""
        from lightkube import KubeConfig

        return KubeConfig.from_dict(
            {
                "current-context": "fake",
                "clusters": [
                    {"name": "fake", "cluster": {"server": "https://kubernetes.invalid"}}
                ],
                "users": [{"name": "charm", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "charm", "namespace": namespace},
                    }
                ],
            }
        )

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that hands every request to this fake cluster."""
        return httpx.MockTransport(self.handle)

    def client(self, field_manager: str = "simulation", namespace: str = "kubeflow") -> Any:
        """A lightkube Client talking to this fake cluster."""
        from lightkube import Client

        return Client(
            config=self.kubeconfig(namespace),
            field_manager=field_manager,
            transport=self.transport(),
        )

    # --- what tests read

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """An object by kind and name, or None."""
        for stored in self.objects.values():
            meta = stored.body["metadata"]
            if (
                stored.body["kind"] == kind
                and meta["name"] == name
                and meta.get("namespace") == namespace
            ):
                return stored.body
        return None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a kind."""
        return [s.body for s in self.objects.values() if s.body["kind"] == kind]

    # --- the HTTP side

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request."""
        match = _PATH.match(request.url.path)
        if not match:
            return _status(404, "NotFound", f"no route for {request.url.path}")
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        plural, name, ns = match["plural"], match["name"], match["ns"]
        query = parse_qs(request.url.query.decode())
        if request.method == "GET" and name:
            stored = self.objects.get((api_version, plural, ns, name))
            if stored is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            return httpx.Response(200, json=stored.body)
        if request.method == "GET":
            return self._list(api_version, plural, ns, query.get("labelSelector", [""])[0])
        if request.method == "DELETE":
            stored = self.objects.pop((api_version, plural, ns, name or ""), None)
            if stored is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            self.writes.append(("delete", stored.body["kind"], name or ""))
            return _status(200, "Success", "deleted")
        if request.method in ("PATCH", "POST", "PUT"):
            body = _decode(request)
            return self._write(request.method, api_version, plural, ns, name, body, match["sub"])
        return _status(405, "MethodNotAllowed", request.method)

    def _list(
        self, api_version: str, plural: str, ns: str | None, selector: str
    ) -> httpx.Response:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = [
            s.body
            for (av, pl, namespace, _), s in sorted(self.objects.items(), key=lambda kv: kv[0][1:])
            if av == api_version
            and pl == plural
            and (ns is None or namespace == ns)
            and all(s.body["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        kind = items[0]["kind"] if items else ""
        return httpx.Response(
            200,
            json={
                "apiVersion": api_version,
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            },
        )

    def _write(
        self,
        method: str,
        api_version: str,
        plural: str,
        ns: str | None,
        name: str | None,
        body: dict[str, Any],
        sub: str | None,
    ) -> httpx.Response:
        name = name or body.get("metadata", {}).get("name", "")
        key = (api_version, plural, ns, name)
        existing = self.objects.get(key)
        if sub == "token":
            return self._token(api_version, plural, ns, name, body)
        if sub == "status":
            if existing is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            existing.body["status"] = body.get("status", {})
            return httpx.Response(200, json=existing.body)
        if method == "POST" and existing is not None:
            return _status(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", api_version)
        if ns is not None:
            obj.setdefault("metadata", {})["namespace"] = ns
        problem = self.validate(obj)
        if problem:
            self.rejected.append(f"{obj.get('kind')}/{name}: {problem}")
            return _status(422, "Invalid", problem)
        obj["metadata"].setdefault("uid", f"uid-{len(self.writes)}")
        obj["metadata"]["resourceVersion"] = str(len(self.writes) + 1)
        self.objects[key] = Stored(api_version, plural, ns, obj)
        self.writes.append(("apply" if method == "PATCH" else "create", obj["kind"], name))
        return httpx.Response(201 if existing is None else 200, json=obj)

    # --- validation

    def _token(
        self, api_version: str, plural: str, ns: str | None, name: str, body: dict[str, Any]
    ) -> httpx.Response:
        """A TokenRequest for a ServiceAccount: a made-up token, valid as long as asked."""
        if plural != "serviceaccounts" or (api_version, plural, ns, name) not in self.objects:
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        seconds = int(body.get("spec", {}).get("expirationSeconds") or 3600)
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=seconds
        )
        self.tokens_issued += 1
        return httpx.Response(
            201,
            json={
                **body,
                "status": {
                    "token": f"fake-token-{name}-{self.tokens_issued}-{secrets.token_hex(8)}",
                    "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        )

    def validate(self, obj: dict[str, Any]) -> str | None:
        """Why the API server would refuse this object, or None."""
        crd = self._crd_for(obj)
        if crd is None and "." in obj.get("apiVersion", "").split("/")[0]:
            group = obj["apiVersion"].split("/")[0]
            if not group.endswith(".k8s.io") and group not in _BUILTIN_GROUPS:
                return f"no CustomResourceDefinition serves {obj['apiVersion']} {obj.get('kind')}"
        if crd is not None:
            return _validate_custom(obj, crd)
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            return f"{e.message} at {'/'.join(str(p) for p in e.path)}"
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError):
            return f"unknown kind {obj.get('apiVersion')} {obj.get('kind')}"
        return None

    def _crd_for(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        group, _, version = obj.get("apiVersion", "").rpartition("/")
        for crd in self.of_kind("CustomResourceDefinition"):
            spec = crd["spec"]
            if spec["group"] == group and spec["names"]["kind"] == obj.get("kind"):
                served = [v for v in spec["versions"] if v["name"] == version and v.get("served")]
                return {"crd": crd, "version": served[0] if served else None}
        return None

    def crds(self) -> Iterator[dict[str, Any]]:
        """Every CustomResourceDefinition applied."""
        yield from self.of_kind("CustomResourceDefinition")


_BUILTIN_GROUPS = {"apps", "batch", "policy", "autoscaling"}


def _validate_custom(obj: dict[str, Any], found: dict[str, Any]) -> str | None:
    version = found["version"]
    if version is None:
        return f"{obj['apiVersion']} is not a served version of {obj['kind']}"
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if not schema:
        return None
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    try:
        jsonschema.validate(body, _json_schema(schema))
    except jsonschema.ValidationError as e:
        return f"{e.message} at {'/'.join(str(p) for p in e.path)}"
    return None


def _json_schema(schema: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """An OpenAPI v3 structural schema as plain JSON Schema (the Kubernetes extensions dropped).

    At the root, apiVersion, kind and metadata are the API server's to check.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {k: _json_schema(v, root=False) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _json_schema(value, root=False)
        else:
            out[key] = value
    if root:
        for field in ("metadata", "apiVersion", "kind"):
            out.get("properties", {}).pop(field, None)
    return out


def _decode(request: httpx.Request) -> dict[str, Any]:
    content = request.content.decode() or "{}"
    if "yaml" in request.headers.get("content-type", ""):
        return yaml.safe_load(content)
    return json.loads(content)


def _status(code: int, reason: str, message: str) -> httpx.Response:
    return httpx.Response(
        code,
        json={
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure" if code >= 400 else "Success",
            "reason": reason,
            "message": message,
            "code": code,
        },
    )


@contextlib.contextmanager
def routed_lightkube(
    fake: FakeKubernetes, namespace: str = "kubeflow"
) -> Iterator[FakeKubernetes]:
    """Send every lightkube Client a charm builds to `fake`, for the duration of the block.

    A client built with an explicit transport (a test's own, from
    `fake.client()`) is left alone.
    """
    import lightkube

    original = lightkube.Client.__init__

    def routed(client: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            ns = kwargs.get("namespace") or namespace
            kwargs.update(config=fake.kubeconfig(ns), transport=fake.transport())
        original(client, *args, **kwargs)

    lightkube.Client.__init__ = routed  # type: ignore[method-assign]
    try:
        yield fake
    finally:
        lightkube.Client.__init__ = original  # type: ignore[method-assign]
