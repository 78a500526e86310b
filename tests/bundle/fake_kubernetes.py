"""A Kubernetes API in memory, for lightkube clients, that checks every object it is sent.

`FakeKubernetes().client()` is a real `lightkube.Client` whose HTTP goes to
this object instead of a cluster. It answers what charms do with lightkube
and `lightkube-extensions`' KubernetesResourceManager: server-side apply,
create, get, list (all namespaces or one, with label selectors of equality,
inequality and existence, page by page with `limit` and `continue`, and as
a PartialObjectMetadataList when the client asks for one), delete, and
TokenRequests for existing ServiceAccounts (a made-up token).
`FakeKubernetes.send` answers the raw requests of `kubeflow_charms.drift` the
same way.

Metadata follows the API server's rules: `uid` is set on create and kept;
`resourceVersion` is a cluster-wide counter, moved on by every write that
changes an object (a write that changes nothing is not stored, as the API
server does not store a no-op update); `generation` starts at 1 and counts
changes of the spec, only for the kinds whose registry strategy keeps it
(read from kubernetes/kubernetes: pkg/registry/apps/deployment/strategy.go
(spec or annotations), pkg/registry/admissionregistration/
mutatingwebhookconfiguration/strategy.go (webhooks),
staging/src/k8s.io/apiextensions-apiserver/pkg/registry/customresource/
strategy.go (anything but metadata and status), the CustomResourceDefinition
strategy (spec)); ConfigMaps, Secrets, Services, ServiceAccounts and RBAC
objects have none (pkg/registry/rbac/clusterrole/strategy.go sets nothing).

Every object written is validated first:

- built-in kinds against the real Kubernetes OpenAPI schemas
  (`kubernetes-validate`, offline, strict: unknown fields are errors);
- custom resources against a CustomResourceDefinition applied before them:
  the group, version and kind must be served, and the object must satisfy
  the version's `openAPIV3Schema`;
- custom resources of an upstream kind recorded in tests/conformance/facts/
  schemas/ (Istio's) also against the upstream release's own schema, which
  our CRDs may leave open (`upstream_schemas`).

An invalid object is refused with HTTP 422, as the API server would, and
recorded in `rejected`: so are names that are not what Kubernetes requires of
the kind (a DNS-1123 subdomain for most, a DNS-1123 label for a Namespace, a
DNS-1035 label for a Service, a path segment for RBAC objects), and label keys
and values it rejects (k8s.io/apimachinery pkg/util/validation/validation.go
and pkg/api/validation/generic.go, kubernetes pkg/apis/core/validation and
pkg/apis/rbac/validation).

Paths are checked as the API server routes them: a kind the cluster does not
serve (a custom resource whose CustomResourceDefinition was never applied, or
a version it does not serve) is 404 for every verb, list included; a
namespaced kind named at a cluster path (other than listing across all
namespaces) or a cluster-scoped kind under a namespace is 404; a write into
a namespace that does not exist is 404 (`namespaces "x" not found`, as the
NamespaceLifecycle admission answers). The model's namespace exists from the
start, as Juju creates it with the model.

Requests are authorized as the API server's RBAC would: a charm's client
carries its application's bearer token (`service_account`, the token of the
service account Juju made for the application's pods), and an application
Juju does not trust gets 403 Forbidden for anything outside the rules Juju
gives an untrusted application (`fake_rbac.py`, beside this file). A test's
own requests (`client()` without an application, or no bearer token at all)
are not restricted.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import functools
import importlib
import json
import pkgutil
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
from bundle.fake_rbac import TEST_TOKEN, Attributes, ServiceAccount, refusal

from bundle import upstream_schemas

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


# Kinds whose generation counts changes, and which part of the object it follows
# (None: everything but metadata and status, as for custom resources).
_GENERATION: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "metadata.annotations"),
    "StatefulSet": ("spec",),
    "DaemonSet": ("spec",),
    "CustomResourceDefinition": ("spec",),
    "MutatingWebhookConfiguration": ("webhooks",),
    "ValidatingWebhookConfiguration": ("webhooks",),
}
PARTIAL_METADATA = "as=PartialObjectMetadataList"


@dataclass
class FakeKubernetes:
    """The cluster's objects, and the requests that changed them."""

    objects: dict[tuple[str, str, str | None, str], Stored] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # verb, kind, name
    rejected: list[str] = field(default_factory=list)
    revision: int = 0  # the last resourceVersion handed out
    uids: int = 0
    lists: int = 0  # list requests answered
    tokens_issued: int = 0  # TokenRequests answered (not objects: not in `writes`)
    model_namespace: str | None = "kubeflow"  # exists from the start, as Juju made it
    forbidden: list[str] = field(default_factory=list)  # the messages of every 403 answered
    _given: set[tuple[str, str, str | None, str]] = field(default_factory=set, init=False)
    _accounts: dict[str, ServiceAccount] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.model_namespace and not self.objects:
            namespace = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.model_namespace},
            }
            self._store("v1", "namespaces", None, namespace, None)
        self._given = set(self.objects)

    def made(self) -> dict[tuple[str, str, str | None, str], Stored]:
        """The objects written since the cluster was made (not the model's namespace)."""
        return {k: v for k, v in self.objects.items() if k not in self._given}

    def delete_made(self) -> None:
        """Delete every object written since the cluster was made, behind every charm's back."""
        for key in self.made():
            del self.objects[key]

    def __deepcopy__(self, memo: dict[int, Any]) -> FakeKubernetes:
        # The cluster is one: a client that gets copied still talks to it.
        return self

    def service_account(self, app: str, *, trusted: bool) -> str:
        """The bearer token of the service account Juju made for `app`'s pods, with its trust.

        Juju names the account after the application, in the model's
        namespace, and binds it to a Role and a ClusterRole whose rules
        `juju trust` switches (see fake_rbac.py). Asking again with another
        `trusted` is `juju trust` (or `--remove`): the same token, its rules
        changed.
        """
        namespace = self.model_namespace or "default"
        token = f"serviceaccount-token-{namespace}-{app}"
        self._accounts[token] = ServiceAccount(app, namespace, trusted)
        return token

    def kubeconfig(self, namespace: str = "kubeflow", token: str = TEST_TOKEN) -> Any:
        """A kubeconfig for this fake cluster, with a bearer token (the test's own by default)."""
        from lightkube import KubeConfig

        return KubeConfig.from_dict(
            {
                "current-context": "fake",
                "clusters": [
                    {"name": "fake", "cluster": {"server": "https://kubernetes.invalid"}}
                ],
                "users": [{"name": "charm", "user": {"token": token}}],
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

    def client(
        self,
        field_manager: str = "simulation",
        namespace: str = "kubeflow",
        *,
        app: str | None = None,
        trusted: bool = False,
    ) -> Any:
        """A lightkube Client talking to this fake cluster: a test's, or as `app`'s pod would."""
        from lightkube import Client

        token = TEST_TOKEN if app is None else self.service_account(app, trusted=trusted)
        return Client(
            config=self.kubeconfig(namespace, token),
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

    def delete(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Delete an object behind every charm's back (as `kubectl delete` would); return it."""
        for key, stored in list(self.objects.items()):
            meta = stored.body["metadata"]
            if (
                stored.body["kind"] == kind
                and meta["name"] == name
                and meta.get("namespace") == namespace
            ):
                del self.objects[key]
                return stored.body
        raise KeyError(f"no {kind} {namespace}/{name}")

    def edit(self, kind: str, name: str, namespace: str | None, change: Any) -> dict[str, Any]:
        """Change an object behind every charm's back: `change(body)` edits a copy in place."""
        for stored in self.objects.values():
            meta = stored.body["metadata"]
            if (
                stored.body["kind"] == kind
                and meta["name"] == name
                and meta.get("namespace") == namespace
            ):
                body = copy.deepcopy(stored.body)
                change(body)
                self._store(stored.api_version, stored.plural, stored.namespace, body, stored)
                return stored.body
        raise KeyError(f"no {kind} {namespace}/{name}")

    # --- the HTTP side

    def send(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """`kubeflow_charms.drift.send`, answered by this cluster."""
        request = httpx.Request(method, f"https://kubernetes.invalid{path}", headers=headers)
        response = self.handle(request)
        return response.status_code, response.content

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one API request."""
        match = _PATH.match(request.url.path)
        if not match:
            return _status(404, "NotFound", f"no route for {request.url.path}")
        api_version = match["core"] or f"{match['group']}/{match['version']}"
        plural, name, ns = match["plural"], match["name"], match["ns"]
        query = parse_qs(request.url.query.decode())
        refused = self._authorize(request, match, query)
        if refused is not None:
            return refused
        namespaced = self._scope(api_version, plural)
        if namespaced is None or (ns is not None and not namespaced):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if namespaced and ns is None and (request.method != "GET" or name):
            return _status(404, "NotFound", "the server could not find the requested resource")
        if (
            ns is not None
            and request.method in ("PATCH", "POST", "PUT")
            and ("v1", "namespaces", None, ns) not in self.objects
        ):
            return _status(404, "NotFound", f'namespaces "{ns}" not found')
        if request.method == "GET" and name:
            stored = self.objects.get((api_version, plural, ns, name))
            if stored is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            return httpx.Response(200, json=stored.body)
        if request.method == "GET":
            return self._list(
                api_version,
                plural,
                ns,
                query,
                partial=PARTIAL_METADATA in request.headers.get("accept", ""),
            )
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

    def _authorize(
        self, request: httpx.Request, match: re.Match[str], query: dict[str, list[str]]
    ) -> httpx.Response | None:
        """401 for a token nobody was given, 403 for what its account may not do; else None.

        Authorization comes before routing, as in the API server: a
        forbidden request to a kind nobody serves is 403, not 404.
        """
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token == TEST_TOKEN:
            return None  # a test's own request
        account = self._accounts.get(token)
        if account is None:
            return _status(401, "Unauthorized", "Unauthorized")
        asked = Attributes.of(request.method, match.groupdict(), query)
        refused = refusal(account, asked)
        if refused is None:
            return None
        self.forbidden.append(refused["message"])
        return httpx.Response(403, json=refused)

    def _scope(self, api_version: str, plural: str) -> bool | None:
        """Whether this kind is served namespaced (True), cluster-wide (False), or not at all.

        Built-in kinds as lightkube's resources (generated from the Kubernetes
        API) declare them; custom resources as the CustomResourceDefinition
        serving this group, version and plural declares them.
        """
        builtin = _builtin_scopes().get((api_version, plural))
        if builtin is not None:
            return builtin
        group, _, version = api_version.rpartition("/")
        for crd in self.of_kind("CustomResourceDefinition"):
            spec = crd["spec"]
            if (
                spec["group"] == group
                and spec["names"]["plural"] == plural
                and any(v["name"] == version and v.get("served") for v in spec["versions"])
            ):
                return spec.get("scope", "Namespaced") == "Namespaced"
        return None

    def _list(
        self,
        api_version: str,
        plural: str,
        ns: str | None,
        query: dict[str, list[str]],
        *,
        partial: bool,
    ) -> httpx.Response:
        self.lists += 1
        try:
            matches = _selector(query.get("labelSelector", [""])[0])
        except ValueError as e:
            return _status(400, "BadRequest", str(e))
        items = [
            s.body
            for (av, pl, namespace, _), s in sorted(self.objects.items(), key=lambda kv: kv[0][1:])
            if av == api_version
            and pl == plural
            and (ns is None or namespace == ns)
            and matches(s.body["metadata"].get("labels") or {})
        ]
        start = int(query.get("continue", ["0"])[0])
        limit = int(query.get("limit", ["0"])[0]) or len(items)
        page, rest = items[start : start + limit], items[start + limit :]
        meta: dict[str, Any] = {"resourceVersion": str(self.revision)}
        if rest:
            meta["continue"] = str(start + limit)
        if partial:
            listed = [
                {
                    "apiVersion": "meta.k8s.io/v1",
                    "kind": "PartialObjectMetadata",
                    "metadata": copy.deepcopy(i["metadata"]),
                }
                for i in page
            ]
            body = {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList"}
        else:
            listed = page
            kind = page[0]["kind"] if page else ""
            body = {"apiVersion": api_version, "kind": f"{kind}List"}
        return httpx.Response(200, json={**body, "metadata": meta, "items": listed})

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
            updated = {**copy.deepcopy(existing.body), "status": body.get("status", {})}
            self._store(api_version, plural, ns, updated, existing)
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
        stored = self._store(api_version, plural, ns, obj, existing)
        self.writes.append(("apply" if method == "PATCH" else "create", obj["kind"], name))
        return httpx.Response(201 if existing is None else 200, json=stored.body)

    def _store(
        self,
        api_version: str,
        plural: str,
        ns: str | None,
        obj: dict[str, Any],
        existing: Stored | None,
    ) -> Stored:
        """Keep `obj`, its uid, generation and resourceVersion as the API server sets them."""
        meta = obj["metadata"]
        for server_set in ("uid", "resourceVersion", "generation", "creationTimestamp"):
            meta.pop(server_set, None)
        key = (api_version, plural, ns, meta["name"])
        if existing is None:
            self.uids += 1
            meta["uid"] = f"00000000-0000-4000-8000-{self.uids:012d}"
            if _generation_of(obj) is not None:
                meta["generation"] = 1
        else:
            old = existing.body
            if "status" in old and "status" not in obj:
                obj["status"] = copy.deepcopy(old["status"])  # an apply does not clear it
            meta["uid"] = old["metadata"]["uid"]
            if "generation" in old["metadata"]:
                bump = _generation_of(obj) != _generation_of(old)
                meta["generation"] = old["metadata"]["generation"] + int(bump)
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old:
                return existing  # a no-op write is not stored
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        stored = Stored(api_version, plural, ns, obj)
        self.objects[key] = stored
        return stored

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
        problem = _metadata_problem(obj)
        if problem:
            return problem
        crd = self._crd_for(obj)
        if crd is None and "." in obj.get("apiVersion", "").split("/")[0]:
            group = obj["apiVersion"].split("/")[0]
            if not group.endswith(".k8s.io") and group not in _BUILTIN_GROUPS:
                return f"no CustomResourceDefinition serves {obj['apiVersion']} {obj.get('kind')}"
        if crd is not None:
            return _validate_custom(obj, crd) or upstream_schemas.problem(obj)
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


@functools.cache
def _builtin_scopes() -> dict[tuple[str, str], bool]:
    """Each built-in (apiVersion, plural) and whether it is namespaced, from lightkube."""
    import lightkube.resources
    from lightkube.core.resource import NamespacedResource

    scopes: dict[tuple[str, str], bool] = {}
    for module_info in pkgutil.iter_modules(lightkube.resources.__path__):
        module = importlib.import_module(f"lightkube.resources.{module_info.name}")
        for resource in vars(module).values():
            info = getattr(resource, "_api_info", None)
            if not isinstance(resource, type) or info is None or info.parent is not None:
                continue
            group, version = info.resource.group, info.resource.version
            api_version = f"{group}/{version}" if group else version
            scopes[(api_version, info.plural)] = issubclass(resource, NamespacedResource)
    return scopes


# Names and labels, as k8s.io/apimachinery pkg/util/validation/validation.go checks them.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def _name_problem(kind: str, name: str) -> str | None:
    """Why Kubernetes refuses this name for this kind, or None.

    Namespace: a DNS-1123 label (apimachinery pkg/api/validation/generic.go
    ValidateNamespaceName); Service: a DNS-1035 label (kubernetes
    pkg/apis/core/validation ValidateServiceName); RBAC objects: a path
    segment (pkg/apis/rbac/validation ValidateRBACName); everything else,
    custom resources included: a DNS-1123 subdomain.
    """
    if not name:
        return "metadata.name: Required value: name or generateName is required"
    if kind in _RBAC_KINDS:
        bad = name in (".", "..") or "/" in name or "%" in name
        return f"metadata.name: Invalid value: {name!r}: not a path segment" if bad else None
    if kind == "Namespace":
        pattern, limit, what = _DNS1123_LABEL, 63, "a lowercase RFC 1123 label"
    elif kind == "Service":
        pattern, limit, what = _DNS1035_LABEL, 63, "a DNS-1035 label"
    else:
        pattern, limit, what = _DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"
    if len(name) > limit or not pattern.fullmatch(name):
        return f"metadata.name: Invalid value: {name!r}: must be {what}"
    return None


def _label_problem(key: str, value: Any) -> str | None:
    """Why Kubernetes refuses this label, or None (a qualified name key, a label value)."""
    prefix, _, local = key.rpartition("/")
    if (
        not _QUALIFIED_NAME.fullmatch(local)
        or len(local) > 63
        or (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)))
        or ("/" in key and not prefix)
    ):
        return f"metadata.labels: Invalid value: {key!r}: name part must be a qualified name"
    if not isinstance(value, str) or len(value) > 63:
        return f"metadata.labels: Invalid value: {value!r}: must be no more than 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return (
            f"metadata.labels: Invalid value: {value!r}: a valid label must be an empty string "
            "or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character"
        )
    return None


def _metadata_problem(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata") or {}
    problem = _name_problem(obj.get("kind", ""), meta.get("name") or "")
    if problem:
        return problem
    for key, value in (meta.get("labels") or {}).items():
        problem = _label_problem(key, value)
        if problem:
            return problem
    return None


def _generation_of(obj: dict[str, Any]) -> Any:
    """What an object's generation follows, or None for kinds that keep no generation."""
    kind = obj.get("kind", "")
    group = obj.get("apiVersion", "").rpartition("/")[0]
    if kind in _GENERATION:
        parts = []
        for path in _GENERATION[kind]:
            value: Any = obj
            for step in path.split("."):
                value = value.get(step) if isinstance(value, dict) else None
            parts.append(value)
        return parts
    if "." in group and not group.endswith(".k8s.io"):  # a custom resource
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return None


def _selector(text: str) -> Any:
    """A label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated) as a predicate."""
    tests = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif raw.startswith("!"):
            tests.append(lambda labels, k=raw[1:]: k not in labels)
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", raw):
            tests.append(lambda labels, k=raw: k in labels)
        else:
            raise ValueError(f"unable to parse requirement: {raw!r}")
    return lambda labels: all(test(labels) for test in tests)


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
    fake: FakeKubernetes,
    namespace: str = "kubeflow",
    *,
    app: str | None = None,
    trusted: bool = False,
) -> Iterator[FakeKubernetes]:
    """Send every lightkube Client a charm builds to `fake`, for the duration of the block.

    With `app`, the clients and `kubeflow_charms.drift.send` carry that
    application's service-account token, as in its pod, and get what Juju
    lets it do (`trusted` or not); without, they are a test's, unrestricted.
    A client built with an explicit transport (a test's own, from
    `fake.client()`) is left alone.
    """
    import lightkube

    from kubeflow_charms import drift

    original = lightkube.Client.__init__
    original_send = drift.send
    token = TEST_TOKEN if app is None else fake.service_account(app, trusted=trusted)

    def send(method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return fake.send(method, path, {**headers, "Authorization": f"Bearer {token}"})

    drift.send = send

    def routed(client: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("transport") is None:
            ns = kwargs.get("namespace") or namespace
            kwargs.update(config=fake.kubeconfig(ns, token), transport=fake.transport())
        original(client, *args, **kwargs)

    lightkube.Client.__init__ = routed  # type: ignore[method-assign]
    try:
        yield fake
    finally:
        lightkube.Client.__init__ = original  # type: ignore[method-assign]
        drift.send = original_send
