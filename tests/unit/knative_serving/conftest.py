"""Fixtures for the knative-serving charm's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bundle.fake_kubernetes import FakeKubernetes
from ops import testing
from unit.knative_serving.helpers import APP, CHARM, MODEL
from webhook_charms import fake_cluster


def _istio_gateway_crd() -> dict:
    """Istio's Gateway kind, as the istio charm installs it before Knative's gateway comes."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gateways.networking.istio.io"},
        "spec": {
            "group": "networking.istio.io",
            "scope": "Namespaced",
            "names": {"kind": "Gateway", "plural": "gateways", "singular": "gateway"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """A fake cluster with the charm's ServiceAccount and Istio's Gateway kind."""
    from lightkube import codecs

    for fake in fake_cluster(APP, MODEL):
        fake.client().create(codecs.from_dict(_istio_gateway_crd()))
        yield fake


@pytest.fixture
def ctx() -> testing.Context:
    """The charm, as the application `knative-serving`."""
    return testing.Context(CHARM.KnativeServingCharm, app_name=APP)
