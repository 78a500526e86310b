"""Every interface name we declare is the ecosystem's, proven here, or one nobody else uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from charm_loader import CHARMS, TEST_CHARMS

HERE = Path(__file__).parent
ECOSYSTEM = {
    name
    for source in yaml.safe_load((HERE / "ecosystem_interfaces.yaml").read_text())["sources"]
    for name in source["names"]
}
# The ecosystem's interfaces we speak, and the test that runs the other side's library
# (or the published wire format, where no library is packaged) against our charm.
SPOKEN = {
    "istio_ingress_route": ["test_istio_provider.py", "test_istio_ingress_route_requirer.py"],
    "forward_auth": ["test_istio_provider.py", "test_forward_auth.py"],
    "gateway_metadata": ["test_istio_provider.py"],
    "ingress": ["test_istio_provider.py"],
    "tls-certificates": ["test_tls_certificates.py"],
    "oauth": ["test_oauth.py"],
    "mysql_client": ["test_mysql_client.py"],
    "s3": ["test_s3.py"],
    "kubernetes_manifest": ["test_kubernetes_manifest.py"],
    "kubeflow_dashboard_links": ["test_dashboard_links.py"],
}


def _declared() -> list[tuple[str, str, str, str]]:
    """(charm, role, endpoint, interface) of every endpoint of our charms and test charms."""
    found = []
    for path in sorted(
        [*CHARMS.glob("*/charmcraft.yaml"), *TEST_CHARMS.glob("*/charmcraft.yaml")]
    ):
        meta = yaml.safe_load(path.read_text())
        for role in ("provides", "requires", "peers"):
            for endpoint, spec in (meta.get(role) or {}).items():
                found.append((path.parent.name, role, endpoint, spec["interface"]))
    return found


DECLARED = _declared()


@pytest.mark.parametrize(("charm", "role", "endpoint", "interface"), DECLARED)
def test_an_ecosystem_name_is_spoken_and_proven_or_the_name_is_ours(
    charm, role, endpoint, interface
):
    if interface in ECOSYSTEM and role != "peers":
        assert interface in SPOKEN, (
            f"{charm}:{endpoint} uses the ecosystem's interface {interface!r} with no interop test"
        )
        for test in SPOKEN[interface]:
            assert (HERE / test).is_file(), f"{interface}: {test} is missing"
    else:
        # A name of our own: no ecosystem charm may use it, or Juju would let them relate.
        assert interface not in ECOSYSTEM, f"{charm}:{endpoint}: {interface!r} is taken"


def test_every_interface_we_speak_is_declared_by_some_charm():
    # The map holds no stale names: each was claimed by a charm of ours.
    assert set(SPOKEN) <= {interface for *_, interface in DECLARED}


def test_names_of_ours_cannot_be_mistaken_for_the_ecosystems():
    ours = {i for _, role, _, i in DECLARED if role == "peers" or i not in ECOSYSTEM}
    assert ours.isdisjoint(ECOSYSTEM)
    # The retired route formats are gone from every charm.
    assert {"ingress-auth", "kubernetes_manifests"}.isdisjoint(ours)
