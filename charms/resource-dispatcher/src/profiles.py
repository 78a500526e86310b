"""The profile namespaces: the only namespaces the dispatcher writes to.

lightkube is imported inside the function, so a hook that does not list
namespaces never loads it.
"""

from __future__ import annotations

from namespace_watch import PROFILE_LABEL, PROFILE_VALUE

from kubeflow_charms.kubernetes import KubernetesError


def profile_namespaces() -> list[str]:
    """Every namespace labelled as a Kubeflow profile and not being deleted, sorted."""
    import httpx
    from lightkube import ApiError, Client
    from lightkube.core.exceptions import ConfigError
    from lightkube.resources.core_v1 import Namespace

    try:
        items = list(Client().list(Namespace, labels={PROFILE_LABEL: PROFILE_VALUE}))
    except ApiError as e:
        raise KubernetesError(
            f"{e.status.reason or 'error'}: {e.status.message}", status=e.status.code
        ) from e
    except httpx.HTTPError as e:
        raise KubernetesError(f"the Kubernetes API is unreachable: {e}") from e
    except ConfigError as e:
        raise KubernetesError(f"no Kubernetes API credentials: {e}") from e
    names = []
    for ns in items:
        if ns.metadata is None or not ns.metadata.name:
            continue
        if ns.status is not None and ns.status.phase == "Terminating":
            continue
        names.append(ns.metadata.name)
    return sorted(names)
