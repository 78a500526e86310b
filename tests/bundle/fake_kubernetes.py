"""A Kubernetes API in memory, for lightkube clients, that checks every object it is sent.

`FakeKubernetes().client()` is a real `lightkube.Client` whose HTTP goes to
this object instead of a cluster. It answers what charms do with lightkube
and `lightkube-extensions`' KubernetesResourceManager: server-side apply,
create, update, merge and strategic merge patches, get, list (all namespaces
or one, with label selectors as Kubernetes parses them, equality- and
set-based, and field selectors on metadata.name and metadata.namespace, page
by page with `limit` and `continue`, and as a PartialObjectMetadataList when
the client asks for one), delete, and TokenRequests for existing
ServiceAccounts (a made-up token).
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

Writes are as the API server makes them (field_managers.py says how):

- every write records its field manager in `metadata.managedFields`; an
  apply owns the fields it sets, leaves other managers' fields be, removes
  what it set before and no longer sets (unless another manager owns it),
  and changing another manager's field is a 409 Conflict unless forced;
  `FakeKubernetes.edit` writes as the manager `kubectl-edit`;
- a write carrying a `metadata.resourceVersion` other than the object's is a
  409 Conflict (optimistic concurrency);
- the API server's own checks beyond the schemas: a workload's selector must
  select its pod template and may not change; ports are 1-65535 or IANA
  service names (kubernetes-validate's schemas carry no ranges);
- deleting an object deletes its dependents (ownerReferences; background
  cascade, or orphaned with `propagationPolicy: Orphan`); deleting a
  Namespace deletes what is in it, at once (no Terminating phase); deleting
  a CustomResourceDefinition deletes its custom resources.
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

from bundle import field_managers, upstream_schemas

KUBERNETES_VERSION = "1.31"


def _read_schemas_once() -> None:
    """Have kubernetes-validate read each schema file once, not for every object it checks.

    Its `validate` reads the kind's schema and the 1.3 MB of shared
    definitions, and lists its schema folders, on every call: a third of the
    fake cluster's time. The files never change while the tests run.
    """
    from kubernetes_validate import utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.cache(utils.schema_contents)
        utils.all_versions = functools.cache(utils.all_versions)


_read_schemas_once()
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
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
# staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go
OPTIMISTIC_LOCK = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
# What the API server answers a strategic merge patch of a custom resource (415).
STRATEGIC_PATCH_ON_CUSTOM = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)
EDIT_MANAGER = "kubectl-edit"  # the field manager of `kubectl edit`
GC_MANAGER = "kube-controller-manager"  # the garbage collector's writes


@dataclass
class FakeKubernetes:
    """The cluster's objects, and the requests that changed them."""

    objects: dict[tuple[str, str, str | None, str], Stored] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # verb, kind, name
    rejected: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)  # applies that took others' fields by force
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
        changed. The ServiceAccount object is there too, as Juju made it at
        deploy (a charm may ask for its tokens), and the application's
        StatefulSet (a charm may label its pods); like the model's namespace
        they are not among the objects `made` since the cluster was.
        """
        namespace = self.model_namespace or "default"
        token = f"serviceaccount-token-{namespace}-{app}"
        self._accounts[token] = ServiceAccount(app, namespace, trusted)
        key = ("v1", "serviceaccounts", namespace, app)
        if self.model_namespace and key not in self.objects:
            account = {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": app, "namespace": namespace},
            }
            self._store("v1", "serviceaccounts", namespace, account, None)
            self._given.add(key)
        stateful_set = ("apps/v1", "statefulsets", namespace, app)
        if self.model_namespace and stateful_set not in self.objects:
            self._store(
                "apps/v1", "statefulsets", namespace, _juju_stateful_set(app, namespace), None
            )
            self._given.add(stateful_set)
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
        """Delete an object behind every charm's back (as `kubectl delete` would); return it.

        Its dependents go too (background cascade), and a Namespace's objects.
        """
        for key, stored in list(self.objects.items()):
            meta = stored.body["metadata"]
            if (
                stored.body["kind"] == kind
                and meta["name"] == name
                and meta.get("namespace") == namespace
            ):
                self._delete(key)
                return stored.body
        raise KeyError(f"no {kind} {namespace}/{name}")

    def edit(self, kind: str, name: str, namespace: str | None, change: Any) -> dict[str, Any]:
        """Change an object behind every charm's back: `change(body)` edits a copy in place.

        The change is an update by the field manager `kubectl-edit`, as `kubectl
        edit` makes it: the fields it changes become that manager's, so a
        charm's apply that sets them again conflicts unless forced, and one
        that does not set them leaves them be.
        """
        for stored in self.objects.values():
            meta = stored.body["metadata"]
            if (
                stored.body["kind"] == kind
                and meta["name"] == name
                and meta.get("namespace") == namespace
            ):
                return self._change(stored, change, EDIT_MANAGER).body
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
            return self._delete_request(request, (api_version, plural, ns, name or ""), query)
        if request.method in ("PATCH", "POST", "PUT"):
            body = _decode(request)
            return self._write(
                request.method, api_version, plural, ns, name, body, match["sub"], request
            )
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

    def _delete_request(
        self,
        request: httpx.Request,
        key: tuple[str, str, str | None, str],
        query: dict[str, list[str]],
    ) -> httpx.Response:
        """Delete one object, with the propagation policy the request asks."""
        plural, name = key[1], key[3]
        # DeleteOptions in the body, when there is one, and not the query
        # (k8s.io/apiserver pkg/endpoints/handlers/delete.go).
        options = (_decode(request) if request.content else None) or {}
        if request.content:
            policy = options.get("propagationPolicy") or "Background"
        else:
            policy = query.get("propagationPolicy", ["Background"])[0]
        if policy not in _PROPAGATION:
            return _status(
                422,
                "Invalid",
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                + ", ".join(f'"{p}"' for p in _PROPAGATION),
            )
        stored = self._delete(key, policy)
        if stored is None:
            return _status(404, "NotFound", f'{plural} "{name}" not found')
        self.writes.append(("delete", stored.body["kind"], name))
        return _status(200, "Success", "deleted")

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
            selected = _field_selector(
                query.get("fieldSelector", [""])[0],
                namespaced=bool(self._scope(api_version, plural)),
                builtin=(api_version, plural) in _builtin_scopes(),
            )
        except ValueError as e:
            return _status(400, "BadRequest", str(e))
        items = [
            s.body
            for (av, pl, namespace, _), s in sorted(self.objects.items(), key=lambda kv: kv[0][1:])
            if av == api_version
            and pl == plural
            and (ns is None or namespace == ns)
            and matches(s.body["metadata"].get("labels") or {})
            and selected(s.body["metadata"])
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
        body: Any,
        sub: str | None,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """A create (POST), update (PUT) or patch (PATCH: apply, merge, strategic merge)."""
        patch = _patch_type(method, request)
        if patch not in (None, APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH):
            return _status(415, "UnsupportedMediaType", f"{patch} is not simulated")
        if not isinstance(body, dict):
            return _status(400, "BadRequest", "the request body is not a JSON object")
        meta: dict[str, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
        name = name or str(meta.get("name") or "")
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
        query = parse_qs(request.url.query.decode()) if request is not None else {}
        try:
            _check_write(method, patch, query, key, meta, existing)
            obj, managed = self._written(method, patch, query, key, body, existing, request)
        except _Refused as refused:
            return refused.response
        problem = self.validate(obj) or _spec_problem(obj, existing.body if existing else None)
        if problem:
            self.rejected.append(f"{obj.get('kind')}/{name}: {problem}")
            return _status(422, "Invalid", problem)
        if managed:
            obj["metadata"]["managedFields"] = field_managers.encode(managed, api_version)
        stored = self._store(api_version, plural, ns, obj, existing)
        verb = {"POST": "create", "PUT": "update"}.get(method) or (
            "apply" if patch == APPLY_PATCH else "patch"
        )
        self.writes.append((verb, obj["kind"], name))
        return httpx.Response(201 if existing is None else 200, json=stored.body)

    def _written(
        self,
        method: str,
        patch: str | None,
        query: dict[str, list[str]],
        key: tuple[str, str, str | None, str],
        body: dict[str, Any],
        existing: Stored | None,
        request: httpx.Request | None,
    ) -> tuple[dict[str, Any], field_managers.Managed]:
        """The object a write makes, and its managers (without `managedFields` in it)."""
        api_version, _, ns, name = key
        manager = query.get("fieldManager", [""])[0] or _user_agent(request)
        live = existing.body if existing is not None else None
        kind = body.get("kind") or (live or {}).get("kind", "")
        field_type = self._field_type(api_version, kind)
        if patch == APPLY_PATCH:
            if (body.get("metadata") or {}).get("managedFields") is not None:
                raise _Refused(400, "BadRequest", "metadata.managedFields must be nil")
            if body.get("apiVersion", api_version) != api_version:
                raise _Refused(
                    400,
                    "BadRequest",
                    "Incorrect version specified in apply patch. Specified patch version: "
                    f"{body['apiVersion']}, expected: {api_version}",
                )
            force = query.get("force", [""])[0] == "true"
            try:
                obj, managed, taken = field_managers.apply(
                    live,
                    _placed(body, api_version, ns),
                    _managers(live),
                    manager,
                    field_type,
                    force=force,
                )
            except field_managers.ConflictError as e:
                raise _Refused(409, "Conflict", e.message) from None
            if taken:
                message = field_managers.ConflictError(taken, api_version).message
                self.forced.append(f"{kind}/{name} forced by {manager!r}: {message}")
            obj["metadata"].pop("managedFields", None)
            return obj, managed
        if patch == MERGE_PATCH:
            obj = field_managers.merge_patch(live, body)
        elif patch == STRATEGIC_PATCH:
            if self._crd_for({"apiVersion": api_version, "kind": kind}) is not None:
                raise _Refused(415, "UnsupportedMediaType", STRATEGIC_PATCH_ON_CUSTOM)
            obj = field_managers.strategic_merge_patch(live, body, field_type)
        else:
            obj = body
        obj = _placed(obj, api_version, ns)
        if method == "PUT" and obj["metadata"].get("name") != name:
            raise _Refused(
                400,
                "BadRequest",
                f"the name of the object ({obj['metadata'].get('name')}) does not match "
                f"the name on the URL ({name})",
            )
        # Managers sent with the object replace the live ones; none sent keeps them.
        sent = obj["metadata"].pop("managedFields", None)
        base = _managers(live) if sent is None else field_managers.decode(sent)
        return obj, field_managers.update(live, obj, base, manager, field_type)

    def _field_type(self, api_version: str, kind: str) -> field_managers.Type:
        """What server-side apply knows of a kind: its CRD's schema, or the built-in one."""
        found = self._crd_for({"apiVersion": api_version, "kind": kind})
        if found is None:
            return field_managers.builtin_type(KUBERNETES_VERSION, api_version, kind)
        schema = ((found["version"] or {}).get("schema") or {}).get("openAPIV3Schema")
        return field_managers.custom_type(KUBERNETES_VERSION, schema)

    def _change(self, stored: Stored, change: Any, manager: str) -> Stored:
        """Write `change(body)` over an object as `manager` would with an update, unchecked."""
        body = copy.deepcopy(stored.body)
        change(body)
        managed = field_managers.update(
            stored.body,
            body,
            _managers(stored.body),
            manager,
            self._field_type(stored.api_version, body["kind"]),
        )
        body["metadata"].pop("managedFields", None)
        if managed:
            body["metadata"]["managedFields"] = field_managers.encode(managed, stored.api_version)
        return self._store(stored.api_version, stored.plural, stored.namespace, body, stored)

    def _delete(
        self, key: tuple[str, str, str | None, str], policy: str = "Background"
    ) -> Stored | None:
        """Delete an object, and what the garbage collector and namespace controller delete."""
        stored = self.objects.pop(key, None)
        if stored is None:
            return None
        body, meta = stored.body, stored.body["metadata"]
        doomed = []
        if body["kind"] == "Namespace" and stored.api_version == "v1":
            doomed += [k for k, s in self.objects.items() if s.namespace == meta["name"]]
        if body["kind"] == "CustomResourceDefinition":
            spec = body.get("spec") or {}
            doomed += [
                k
                for k, s in self.objects.items()
                if s.api_version.rpartition("/")[0] == spec.get("group")
                and s.plural == (spec.get("names") or {}).get("plural")
            ]
        alive = {s.body["metadata"].get("uid") for k, s in self.objects.items() if k not in doomed}
        for k, dependent in list(self.objects.items()):
            refs = dependent.body["metadata"].get("ownerReferences") or []
            if k in doomed or not any(r.get("uid") == meta.get("uid") for r in refs):
                continue
            others = [r for r in refs if r.get("uid") != meta.get("uid")]
            if policy != "Orphan" and not any(r.get("uid") in alive for r in others):
                doomed.append(k)
            else:
                self._change(dependent, functools.partial(_set_owners, others), GC_MANAGER)
        for k in doomed:
            self._delete(k)
        return stored

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


# Kinds whose spec.selector must select spec.template's labels (kubernetes
# pkg/apis/apps/validation/validation.go), and how the registry refuses a
# changed selector (pkg/registry/apps/{deployment,replicaset,daemonset}/
# strategy.go: ValidateImmutableField; StatefulSet: ValidateStatefulSetUpdate).
_SELECTING = {
    "Deployment": "empty selector is invalid for deployment",
    "ReplicaSet": "empty selector is invalid for deployment",
    "DaemonSet": "empty selector is invalid for daemonset",
    "StatefulSet": "empty selector is not valid for statefulset.",
}
# The fields of a StatefulSet's spec an update may change; any other change is
# refused (kubernetes v1.31 pkg/apis/apps/validation/validation.go,
# ValidateStatefulSetUpdate).
_STATEFULSET_MUTABLE = {
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
}
_STATEFULSET_FIXED = (
    "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
    "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
    "and 'minReadySeconds' are forbidden"
)
_FIXED_SELECTOR = {
    "Deployment": "spec.selector: Invalid value: {}: field is immutable",
    "ReplicaSet": "spec.selector: Invalid value: {}: field is immutable",
    "DaemonSet": "spec.selector: Invalid value: {}: field is immutable",
    "StatefulSet": _STATEFULSET_FIXED,
}
_PROPAGATION = ("Foreground", "Background", "Orphan")  # metav1.DeletionPropagation
_PORT_RANGE = "must be between 1 and 65535, inclusive"  # apimachinery IsValidPortNum


def _spec_problem(obj: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """Why the API server's own validation refuses this object, where schemas cannot tell.

    Workload selectors and the ports of pods, Services and NetworkPolicies.
    """
    kind, group = obj.get("kind", ""), obj.get("apiVersion", "").rpartition("/")[0]
    spec: dict[str, Any] = obj["spec"] if isinstance(obj.get("spec"), dict) else {}
    problem = _selector_problem(kind, spec, old) if group == "apps" else None
    for where, pod in _pod_specs(kind, group, spec):
        problem = problem or _pod_ports_problem(where, pod)
    if kind == "Service" and group == "":
        problem = problem or _service_ports_problem(spec)
    if kind == "NetworkPolicy" and group == "networking.k8s.io":
        for direction in ("ingress", "egress"):
            for n, rule in enumerate(spec.get(direction) or []):
                for m, port in enumerate(rule.get("ports") or []):
                    where = f"spec.{direction}[{n}].ports[{m}].port"
                    problem = problem or _port_problem(where, port.get("port"), unset_ok=True)
    return problem


def _selector_problem(kind: str, spec: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """A workload whose selector does not select its pods, is empty, or changed."""
    if kind not in _SELECTING:
        return None
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not isinstance(selector, dict):
        return "spec.selector: Required value"
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return f"spec.selector: Invalid value: {selector}: {_SELECTING[kind]}"
    try:
        selects = _label_selector(selector)
    except ValueError as e:
        return f"spec.selector: Invalid value: {selector}: {e}"
    if not selects(labels):
        return (
            f"spec.template.metadata.labels: Invalid value: {labels}: "
            "`selector` does not match template `labels`"
        )
    old_spec: dict[str, Any] = (old or {}).get("spec") or {}
    if old is not None and old_spec.get("selector") != selector:
        return _FIXED_SELECTOR[kind].format(selector)
    if old is not None and kind == "StatefulSet":
        fixed = set(spec) | set(old_spec)
        if any(spec.get(f) != old_spec.get(f) for f in fixed - _STATEFULSET_MUTABLE):
            return _STATEFULSET_FIXED
    return None


def _service_ports_problem(spec: dict[str, Any]) -> str | None:
    """A Service's port, target port (a number or a name; unset: the port) and node port."""
    for n, port in enumerate(spec.get("ports") or []):
        where = f"spec.ports[{n}]"
        problem = (
            _port_number_problem(f"{where}.port", port.get("port"))
            or _port_problem(f"{where}.targetPort", port.get("targetPort"), unset_ok=True)
            or (
                _port_number_problem(f"{where}.nodePort", port.get("nodePort"))
                if port.get("nodePort")
                else None
            )
        )
        if problem:
            return problem
    return None


def _label_selector(selector: dict[str, Any]) -> Any:
    """A LabelSelector (matchLabels, matchExpressions) as a predicate on labels.

    As apimachinery's LabelSelectorAsSelector: In, NotIn, Exists, DoesNotExist.
    """
    tests: list[Any] = [
        functools.partial(_label_in, k, {v})
        for k, v in (selector.get("matchLabels") or {}).items()
    ]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or [])
        if operator == "In":
            tests.append(functools.partial(_label_in, key, values))
        elif operator == "NotIn":
            tests.append(lambda labels, k=key, v=values: labels.get(k) not in v)
        elif operator == "Exists":
            tests.append(lambda labels, k=key: k in labels)
        elif operator == "DoesNotExist":
            tests.append(lambda labels, k=key: k not in labels)
        else:
            raise ValueError(f"{operator!r} is not a valid label selector operator")
    return lambda labels: all(test(labels) for test in tests)


def _label_in(key: str, values: set[str], labels: dict[str, str]) -> bool:
    return key in labels and labels[key] in values


def _pod_specs(kind: str, group: str, spec: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, pod spec) of an object that holds pods."""
    if kind == "Pod" and group == "":
        yield "spec", spec
    elif (group == "apps" and kind in _SELECTING) or (group == "batch" and kind == "Job"):
        yield "spec.template.spec", (spec.get("template") or {}).get("spec") or {}
    elif group == "batch" and kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield "spec.jobTemplate.spec.template.spec", (job.get("template") or {}).get("spec") or {}


def _pod_ports_problem(where: str, pod: Any) -> str | None:
    """The ports of a pod's containers, probes and lifecycle hooks (core validation.go)."""
    for group in ("initContainers", "containers"):
        for n, container in enumerate(pod.get(group) or []):
            at = f"{where}.{group}[{n}]"
            for m, port in enumerate(container.get("ports") or []):
                problem = _container_port_problem(f"{at}.ports[{m}]", port)
                if problem:
                    return problem
            handlers = [
                (f"{at}.{probe}", container.get(probe))
                for probe in ("livenessProbe", "readinessProbe", "startupProbe")
            ] + [
                (f"{at}.lifecycle.{hook}", (container.get("lifecycle") or {}).get(hook))
                for hook in ("postStart", "preStop")
            ]
            for path, handler in handlers:
                for action in ("httpGet", "tcpSocket"):
                    if isinstance(handler, dict) and isinstance(handler.get(action), dict):
                        port = handler[action].get("port")
                        problem = _port_problem(f"{path}.{action}.port", port)
                        if problem:
                            return problem
    return None


def _container_port_problem(where: str, port: dict[str, Any]) -> str | None:
    """validateContainerPorts: a container port (required), a host port, a port name."""
    if not port.get("containerPort"):
        return f"{where}.containerPort: Required value"
    return (
        _port_number_problem(f"{where}.containerPort", port["containerPort"])
        or (
            _port_number_problem(f"{where}.hostPort", port["hostPort"])
            if port.get("hostPort")
            else None
        )
        or (_port_name_problem(f"{where}.name", port["name"]) if port.get("name") else None)
    )


def _port_problem(where: str, port: Any, *, unset_ok: bool = False) -> str | None:
    """A port number or an IANA service name (ValidatePortNumOrName)."""
    if port is None or (unset_ok and port in (0, "")):
        return None if unset_ok else f"{where}: Required value"
    if isinstance(port, str):
        return _port_name_problem(where, port)
    return _port_number_problem(where, port)


def _port_number_problem(where: str, port: Any) -> str | None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"{where}: Invalid value: {port!r}: {_PORT_RANGE}"
    return None


def _port_name_problem(where: str, name: str) -> str | None:
    """An IANA_SVC_NAME, as apimachinery's IsValidPortName checks it."""
    why = (
        "must be no more than 15 characters"
        if len(name) > 15
        else "must contain only letters a-z, digits 0-9 and hyphens"
        if not re.fullmatch(r"[-a-z0-9]+", name)
        else "must contain at least one letter (a-z)"
        if not re.search(r"[a-z]", name)
        else "must not contain consecutive hyphens"
        if "--" in name
        else "must not begin or end with a hyphen"
        if name.startswith("-") or name.endswith("-")
        else None
    )
    return f"{where}: Invalid value: {name!r}: {why}" if why else None


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


# Label selectors, as k8s.io/apimachinery pkg/labels/selector.go lexes, parses and matches them.
_SELECTOR_TOKENS = {")", ",", "!", "==", "=", ">", "in", "<", "!=", "notin", "("}
_SELECTOR_SPECIAL = set("=!(),><")


def _selector_tokens(text: str) -> list[tuple[str, str]]:
    """(token, literal) pairs: an operator, "in"/"notin", "id" or "end"."""
    tokens, at = [], 0
    while True:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        if at == len(text):
            return [*tokens, ("end", "")]
        if text[at] in _SELECTOR_SPECIAL:
            # The longest run of special characters that is an operator (scanSpecialSymbol).
            buffer, found = "", ""
            while at < len(text) and text[at] in _SELECTOR_SPECIAL:
                if buffer + text[at] in _SELECTOR_TOKENS:
                    buffer += text[at]
                    found = buffer
                elif found:
                    break
                else:
                    buffer += text[at]
                at += 1
            if not found:
                raise ValueError(f"error expected: keyword found '{buffer}'")
            tokens.append((found, found))
            continue
        start = at
        while at < len(text) and text[at] not in _SELECTOR_SPECIAL and text[at] not in " \t\r\n":
            at += 1
        word = text[start:at]
        tokens.append((word if word in ("in", "notin") else "id", word))


def _selector(text: str) -> Any:
    """A label selector as a predicate on an object's labels; ValueError when it does not parse.

    Equality (`k=v`, `k==v`, `k!=v`), sets (`k in (a,b)`, `k notin (a,b)`),
    existence (`k`, `!k`) and `k>n`, `k<n`; requirements are joined by ",".
    `!=` and `notin` match objects without the label, as Kubernetes has it.
    """
    parser = _SelectorParser(_selector_tokens(text))
    tests = []
    while True:
        token, literal = parser.peek()
        if token == "end":
            break
        if token not in ("id", "!"):
            raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")
        try:
            tests.append(parser.requirement())
        except ValueError as e:
            raise ValueError(f"unable to parse requirement: {e}") from None
        token, literal = parser.take()
        if token == "end":
            break
        if token != ",":
            raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
        token, literal = parser.peek()
        if token not in ("id", "!"):
            raise ValueError(f"found '{literal}', expected: identifier after ','")
    return lambda labels: all(test(labels) for test in tests)


class _SelectorParser:
    """labels.Parser: requirements from tokens (in and notin are names where values go)."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.at = tokens, 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        token, literal = self.tokens[self.at]
        return ("id" if values and token in ("in", "notin") else token), literal

    def take(self, values: bool = True) -> tuple[str, str]:
        found = self.peek(values)
        self.at += 1
        return found

    def requirement(self) -> Any:
        token, key = self.take()
        absent = token == "!"
        if absent:
            token, key = self.take()
        if token != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        problem = _selector_key_problem(key)
        if problem:
            raise ValueError(problem)
        if self.peek()[0] in ("end", ","):
            return (lambda labels: key not in labels) if absent else (lambda labels: key in labels)
        operator, literal = self.take(values=False)
        if absent or operator not in ("in", "notin", "=", "==", "!=", ">", "<"):
            raise ValueError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        values = self.values() if operator in ("in", "notin") else self.exact_value()
        for value in values:
            if _label_problem("k", value):
                raise ValueError(f"values: Invalid value: {value!r}: not a valid label value")
        if operator in (">", "<"):
            (number,) = values
            if not re.fullmatch(r"[-+]?\d+", number):
                raise ValueError(
                    f"values: Invalid value: {number!r}: for 'Gt', 'Lt' operators, "
                    "the value must be an integer"
                )
            return functools.partial(_compares, key, int(number), operator == ">")
        if operator in ("notin", "!="):
            return lambda labels: labels.get(key) not in values
        return lambda labels: key in labels and labels[key] in values

    def values(self) -> set[str]:
        """`(a,b)` (parseValues, parseIdentifiersList): "()" and empty items are ""."""
        token, literal = self.take()
        if token != "(":
            raise ValueError(f"found '{literal}' expected: '('")
        token, literal = self.peek()
        if token == ")":
            self.take()
            return {""}
        if token not in ("id", ","):
            raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            token, literal = self.take()
            if token == "id":
                values.add(literal)
                after, after_literal = self.peek()
                if after == ")":
                    break
                if after != ",":
                    raise ValueError(f"found '{after_literal}', expected: ',' or ')'")
            elif token == ",":
                if not values:
                    values.add("")
                if self.peek()[0] in (")", ","):
                    values.add("")
                if self.peek()[0] == ")":
                    break
            else:
                raise ValueError(f"found '{literal}', expected: ',', or identifier")
        self.take()  # the ")"
        return values

    def exact_value(self) -> set[str]:
        if self.peek()[0] in ("end", ","):
            return {""}
        token, literal = self.take()
        if token != "id":
            raise ValueError(f"found '{literal}', expected: identifier")
        return {literal}


def _compares(key: str, limit: int, greater: bool, labels: dict[str, str]) -> bool:
    value = labels.get(key)
    if value is None or not re.fullmatch(r"[-+]?\d+", value):
        return False
    return int(value) > limit if greater else int(value) < limit


def _selector_key_problem(key: str) -> str | None:
    """Why a label key is not one (a qualified name, an optional DNS subdomain prefix)."""
    problem = _label_problem(key, "")
    return f"key: Invalid value: {key!r}: name part must be a qualified name" if problem else None


def _field_selector(text: str, *, namespaced: bool, builtin: bool) -> Any:
    """A field selector (metadata.name, metadata.namespace; =, ==, !=) as a predicate on metadata.

    As k8s.io/apimachinery pkg/fields/selector.go parses it; the fields are
    those every kind serves (apiextensions-apiserver's crConverter: a custom
    resource's metadata.namespace only when it is namespaced).
    """
    tests = []
    for term in filter(None, re.split(r"(?<!\\),", text)):
        found = re.fullmatch(r"(.*?)(!=|==|=)(.*)", term)
        if not found:
            raise ValueError(f"invalid selector: '{text}'; can't understand '{term}'")
        field_name, operator, value = found.groups()
        value = re.sub(r"\\(.)", r"\1", value)
        allowed = {"metadata.name"} | ({"metadata.namespace"} if builtin or namespaced else set())
        if field_name not in allowed:
            raise ValueError(f"field label not supported: {field_name}")
        attribute, negated = field_name.split(".", 1)[1], operator == "!="
        tests.append(lambda meta, a=attribute, v=value, n=negated: (meta.get(a, "") == v) != n)
    return lambda meta: all(test(meta) for test in tests)


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
        server_checked = ("metadata", "apiVersion", "kind")
        for field in server_checked:
            out.get("properties", {}).pop(field, None)
        # Every object has them, whatever `required` says (Argo's CRDs require metadata).
        required = [f for f in out.get("required", []) if f not in server_checked]
        if required:
            out["required"] = required
        else:
            out.pop("required", None)
    return out


class _Refused(Exception):  # noqa: N818 - not an error of the fake: its answer
    """A write the API server refuses: its answer."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.response = _status(code, reason, message)


def _check_write(
    method: str,
    patch: str | None,
    query: dict[str, list[str]],
    key: tuple[str, str, str | None, str],
    meta: dict[str, Any],
    existing: Stored | None,
) -> None:
    """Refuse what the API server refuses before it looks at the object."""
    api_version, plural, _, name = key
    if method == "POST" and existing is not None:
        raise _Refused(409, "AlreadyExists", f'{plural} "{name}" already exists')
    if existing is None and (method == "PUT" or patch in (MERGE_PATCH, STRATEGIC_PATCH)):
        raise _Refused(404, "NotFound", f'{plural} "{name}" not found')
    problem = _options_problem(patch, query)
    if problem:
        raise _Refused(422, "Invalid", problem)
    version = meta.get("resourceVersion")
    if (
        existing is not None
        and version
        and version != existing.body["metadata"].get("resourceVersion")
    ):
        what = f"{plural}.{api_version.rpartition('/')[0]}".rstrip(".")
        raise _Refused(
            409, "Conflict", f'Operation cannot be fulfilled on {what} "{name}": {OPTIMISTIC_LOCK}'
        )


def _patch_type(method: str, request: httpx.Request | None) -> str | None:
    """The patch's media type (an apply when the request is not at hand), None for other verbs."""
    if method != "PATCH":
        return None
    if request is None:
        return APPLY_PATCH
    return request.headers.get("content-type", "").split(";")[0].strip()


def _options_problem(patch: str | None, query: dict[str, list[str]]) -> str | None:
    """What apimachinery's ValidatePatchOptions refuses in the query (HTTP 422)."""
    if patch == APPLY_PATCH and not query.get("fieldManager", [""])[0]:
        return "fieldManager: Required value: is required for apply patch"
    if patch != APPLY_PATCH and "force" in query:
        return "force: Forbidden: may not be specified for non-apply patch"
    return None


def _user_agent(request: httpx.Request | None) -> str:
    """The field manager of a write that names none: its user agent up to the first "/"."""
    agent = request.headers.get("user-agent", "") if request is not None else ""
    return agent.split("/", 1)[0] or "unknown"


def _placed(body: dict[str, Any], api_version: str, ns: str | None) -> dict[str, Any]:
    """A copy of an object with its apiVersion and the namespace of its path."""
    obj = copy.deepcopy(body)
    obj.setdefault("apiVersion", api_version)
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    if ns is not None:
        obj["metadata"]["namespace"] = ns
    return obj


def _managers(body: dict[str, Any] | None) -> field_managers.Managed:
    return field_managers.decode((body or {}).get("metadata", {}).get("managedFields"))


def _set_owners(owners: list[dict[str, Any]], body: dict[str, Any]) -> None:
    if owners:
        body["metadata"]["ownerReferences"] = owners
    else:
        body["metadata"].pop("ownerReferences", None)


def _decode(request: httpx.Request) -> dict[str, Any]:
    content = request.content.decode() or "{}"
    if "yaml" in request.headers.get("content-type", ""):
        try:
            return json.loads(content)  # what lightkube sends: JSON is YAML, and far quicker read
        except json.JSONDecodeError:
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


def _juju_stateful_set(app: str, namespace: str) -> dict[str, Any]:
    """The StatefulSet Juju makes for a sidecar charm's pods, as much as charms read of it."""
    labels = {"app.kubernetes.io/name": app}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": app, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "serviceName": f"{app}-endpoints",
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": app,
                    "containers": [{"name": "charm", "image": "jujusolutions/charm-base"}],
                },
            },
        },
    }
