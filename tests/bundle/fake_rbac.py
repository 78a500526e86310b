"""Who may do what in the fake cluster: Juju's service accounts and Kubernetes' RBAC.

Juju makes a service account for each application's pods, named after the
application in the model's namespace, and binds it to a Role there and to a
ClusterRole. `juju trust` (or `--trust` at deploy) sets both to allow
everything; without trust they allow only the rules below. The fake cluster
(`FakeKubernetes._authorize`) refuses an untrusted application anything else
with 403 Forbidden, in the API server's own words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The bearer token of a test's own requests: not restricted.
TEST_TOKEN = "not-a-real-token"
# A request's verb from its method (k8s.io/apiserver pkg/endpoints/request/requestinfo.go).
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class ServiceAccount:
    """The service account Juju made for an application's pods, and whether it is trusted."""

    app: str
    namespace: str
    trusted: bool

    @property
    def user(self) -> str:
        """The user name the API server authenticates its tokens as."""
        return f"system:serviceaccount:{self.namespace}:{self.app}"


@dataclass(frozen=True)
class PolicyRule:
    """One RBAC rule (rbac.authorization.k8s.io/v1 PolicyRule); "*" matches anything.

    As kubernetes pkg/apis/rbac/v1/evaluation_helpers.go matches one: verb,
    API group and resource ("pods/exec" for a subresource) must each be
    listed, and a rule with resource names allows only requests that name
    one of them.
    """

    groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    names: tuple[str, ...] = ()

    def allows(self, asked: Attributes) -> bool:
        """Whether this rule lets a request with these attributes through."""
        return (
            ("*" in self.verbs or asked.verb in self.verbs)
            and ("*" in self.groups or asked.group in self.groups)
            and ("*" in self.resources or asked.resource in self.resources)
            and (not self.names or asked.name in self.names)
        )


# What Juju gives the service account of an application it does not trust
# (deployed without --trust, or after `juju trust --remove`). Read from
# juju/juju, 3.6 series: caas/kubernetes/provider/application/trust.go at
# commit 183fb941628a19d21aaa77bb785321a9347b716c (getDefaultApplicationNamespaceRules
# for the Role, defaultApplicationClusterRules for the ClusterRole; a trusted
# application gets `*` on every group, resource and verb in both), and
# application.go at commit c0a0fe581d6902f5a3f99cd937dc72a439319d60
# (applyServiceAccountAndSecrets: the ServiceAccount, Role and RoleBinding
# named after the application in the model's namespace, the ClusterRole and
# ClusterRoleBinding named "<model>-<application>"). The rules are the same
# on main, internal/provider/kubernetes/application/trust.go at commit
# 688c2124bc287e909ceffe521baa53ed958fd1f8.
def untrusted_namespace_rules(namespace: str) -> tuple[PolicyRule, ...]:
    """The Role Juju binds to an untrusted application's account, in the model's namespace."""
    return (
        PolicyRule(("",), ("namespaces",), ("get", "list"), (namespace,)),
        PolicyRule(("",), ("pods", "services"), ("get", "list", "patch")),
        PolicyRule(("",), ("pods/exec",), ("create",)),
    )


UNTRUSTED_CLUSTER_RULES = (PolicyRule(("",), ("namespaces",), ("get", "list")),)

# What every authenticated user may do besides: the system:basic-user
# ClusterRole, bound to system:authenticated (kubernetes plugin/pkg/auth/
# authorizer/rbac/bootstrappolicy/policy.go); the other roles bound to every
# user cover paths that are not resources (/healthz, /version, discovery).
AUTHENTICATED_RULES = (
    PolicyRule(
        ("authorization.k8s.io",),
        ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        ("create",),
    ),
)


@dataclass(frozen=True)
class Attributes:
    """What a request asks, as the API server's authorizer sees it."""

    verb: str
    group: str
    resource: str  # "plural" or "plural/subresource"
    namespace: str  # "" at the cluster scope
    name: str  # "" when the request names no object

    @classmethod
    def of(
        cls, method: str, path: Mapping[str, str | None], query: Mapping[str, list[str]]
    ) -> Attributes:
        """A request's attributes from its method, path parts and query.

        As k8s.io/apiserver pkg/endpoints/request/requestinfo.go reads them: a
        GET without a name is a list (a watch with `watch` set to anything but
        false or 0), and its name is the one a `metadata.name=` field selector
        pins; a DELETE without a name is a deletecollection. A create names no
        object: its name is in the body, not the path.
        """
        name = path.get("name") or ""
        verb = _VERBS.get(method, method.lower())
        if method == "GET" and not name:
            watch = query.get("watch", ["false"])[0].lower() not in ("false", "0")
            verb = "watch" if watch else "list"
            for term in query.get("fieldSelector", [""])[0].split(","):
                key, _, value = term.replace("==", "=").partition("=")
                if key.strip() == "metadata.name":  # not "metadata.name!="
                    name = value.strip()
        elif method == "DELETE" and not name:
            verb = "deletecollection"
        plural, sub = path.get("plural") or "", path.get("sub")
        return cls(
            verb=verb,
            group=path.get("group") or "",
            resource=f"{plural}/{sub}" if sub else plural,
            namespace=path.get("ns") or "",
            name=name,
        )


def refusal(account: ServiceAccount, asked: Attributes) -> dict[str, Any] | None:
    """The 403 Status the API server answers this account's request with, or None if allowed.

    A trusted account may do anything. An untrusted one has the ClusterRole's
    rules everywhere, the Role's in the model's namespace only, and what
    every authenticated user has. The message is the API server's
    (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go
    forbiddenMessage, wrapped by apimachinery pkg/api/errors NewForbidden).
    """
    if account.trusted:
        return None
    rules = [*UNTRUSTED_CLUSTER_RULES, *AUTHENTICATED_RULES]
    if asked.namespace == account.namespace:
        rules += untrusted_namespace_rules(account.namespace)
    if any(rule.allows(asked) for rule in rules):
        return None
    plural = asked.resource.split("/")[0]
    qualified = f"{plural}.{asked.group}" if asked.group else plural
    subject = f"{qualified} {json.dumps(asked.name)}" if asked.name else qualified
    where = (
        f"in the namespace {json.dumps(asked.namespace)}"
        if asked.namespace
        else "at the cluster scope"
    )
    message = (
        f'{subject} is forbidden: User "{account.user}" cannot {asked.verb} resource'
        f' "{asked.resource}" in API group "{asked.group}" {where}'
    )
    details = {"group": asked.group, "kind": plural, "name": asked.name}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": {key: value for key, value in details.items() if value},
        "code": 403,
    }
