"""The bundle on a real Juju model (MicroK8s in the GitHub workflow).

The charms are packed beforehand (`python tools/pack.py`), as the bundle
deploys the artefacts in build/. The tests run in order, on one model:

1. the bundle with the MicroK8s overlay settles to active/idle;
2. an application related on mysql:database gets a user that can log in and
   write to its own database (data-integrator from Charmhub stands in for
   kfp, katib and mlflow);
3. a backup to minio restores a dropped table exactly;
4. after minio's root credentials are rotated, backups still work;
5. a route that needs a login, to a small echo service the test deploys,
   sends a browser that is not logged in to Dex; after logging in as Dex's
   admin user the request reaches the service with the user-id header set;
6. a profile made with the dashboard's action, its owner logged in, spawns a
   notebook through the Jupyter web app; its pod runs in the profile
   namespace with minio's credentials from the access-minio PodDefault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_operator.plugin import OpsTest

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundle" / "bundle.yaml"
OVERLAY = ROOT / "bundle" / "overlays" / "microk8s.yaml"
APPS = sorted(yaml.safe_load(BUNDLE.read_text())["applications"])

CLIENT = "data-integrator"
# data-integrator (Charmhub) stands in for the kfp, katib and mlflow charms
# to come: any charm on mysql's `database` endpoint gets a user and a
# database, and its get-credentials action hands them to this test. It has
# no workload container, and its upstream CI runs the same charm on
# Kubernetes models as on machines (canonical/data-integrator, spread.yaml,
# the juju36_k8s variants). Its one track is `latest` (release.yaml
# publishes there); the data platform team names latest/stable as the
# channel to deploy (canonical/opensearch-operator#692). Stable, not edge,
# so a merge upstream cannot change what this test runs.
CLIENT_CHANNEL = "latest/stable"
DATABASE = "integration"
ROWS = "1\talpha\n2\tbeta\n3\tgamma"

# --- how long each wait may take ---------------------------------------------------
# The GitHub workflow runs this module under a step timeout of 100 minutes:
# these waits add up to 85 of them (30 + 10 + 10 + 10 + 5 + 5 + 5 + 10), the
# rest is for about a dozen actions (seconds each, each bounded by
# ACTION_WAIT), the HTTP requests (30 s each at most) and, on a failure,
# pytest-operator's crash dump. Change one, change the sum in
# .github/workflows/integration.yaml too.
SETTLE_BUNDLE = 30 * 60  # first deploy: every image is pulled here
SETTLE_CLIENT = 10 * 60  # data-integrator from Charmhub, and its relation
SETTLE_ROTATION = 10 * 60  # minio's new root credentials reach mysql
SETTLE_ROUTE = 10 * 60  # the route probe, its route and the login
SETTLE_REFUSED = 5 * 60  # istio refuses the open route ...
SETTLE_RECOVERED = 5 * 60  # ... and is active again once it is removed
PROFILE_NAMESPACE_WAIT = 5 * 60  # the profile controller makes the namespace
NOTEBOOK_POD_WAIT = 10 * 60  # includes pulling the jupyter-scipy image
POLL = 5
ACTION_WAIT = "5m"


# --- helpers ------------------------------------------------------------------


def missing_artefacts() -> list[Path]:
    """Charm files the bundle deploys that have not been packed."""
    specs = yaml.safe_load(BUNDLE.read_text())["applications"].values()
    paths = [(BUNDLE.parent / spec["charm"]).resolve() for spec in specs]
    return [path for path in paths if not path.exists()]


async def deploy_bundle(ops_test: OpsTest) -> None:
    """Deploy the packed bundle with the MicroK8s overlay; fail naming what is not packed."""
    missing = missing_artefacts()
    if missing:
        pytest.fail(f"pack the charms first (python tools/pack.py): missing {missing}")
    await ops_test.juju(
        "deploy",
        str(BUNDLE),
        "--trust",
        "--overlay",
        str(OVERLAY),
        check=True,
        fail_msg="juju deploy of the bundle failed",
    )


async def wait_for(what: str, timeout: int, probe, poll: int = 5) -> Any:
    """Poll `probe()` until it returns something truthy; fail naming `what`."""
    for _ in range(timeout // poll):
        try:
            found = probe()
        except Exception as e:  # not there yet (404) or not ready
            logger.debug("waiting for %s: %s", what, e)
            found = None
        if found:
            return found
        await asyncio.sleep(poll)
    pytest.fail(f"{what} did not happen within {timeout} s")


async def leader(ops_test: OpsTest, app: str) -> str:
    """The name of the application's leader unit."""
    assert ops_test.model is not None
    for unit in ops_test.model.applications[app].units:
        if await unit.is_leader_from_status():
            return unit.name
    pytest.fail(f"{app} has no leader")


async def run_action(ops_test: OpsTest, unit: str, action: str, **params: str) -> dict[str, Any]:
    """Run an action with the juju CLI and return its results; fail the test if it fails."""
    args = [f"{key}={value}" for key, value in params.items()]
    code, stdout, stderr = await ops_test.juju(
        "run", unit, action, *args, "--format", "json", "--wait", ACTION_WAIT
    )
    try:
        outcome = json.loads(stdout)[unit]
    except (json.JSONDecodeError, KeyError):
        outcome = {}
    if code != 0 or outcome.get("status") != "completed":
        message = outcome.get("message") or stderr.strip() or stdout.strip()
        pytest.fail(f"{unit} {action} failed: {message}")
    results = outcome.get("results") or {}
    results.pop("return-code", None)
    logger.info("%s %s: %s", unit, action, sorted(results))
    return results


async def client_credentials(ops_test: OpsTest) -> dict[str, str]:
    """What data-integrator was given for mysql: username, password, endpoints, database."""
    assert ops_test.model is not None
    unit = ops_test.model.applications[CLIENT].units[0].name
    results = await run_action(ops_test, unit, "get-credentials")
    credentials = results.get("mysql") or {}
    assert {"username", "password", "endpoints"} <= set(credentials), sorted(credentials)
    return credentials


async def sql(ops_test: OpsTest, credentials: dict[str, str], statements: str) -> str:
    """Run SQL as the related application's user, with the mysql client in the mysql container.

    It connects over TCP to the first endpoint the relation handed out, so it
    checks the endpoint, the user, its password and its grants together.
    """
    host, _, port = credentials["endpoints"].split(",")[0].rpartition(":")
    argv = [
        "mysql",
        "--no-defaults",
        f"--host={host}",
        f"--port={port or 3306}",
        f"--user={credentials['username']}",
        f"--password={credentials['password']}",
        f"--database={credentials.get('database', DATABASE)}",
        "--batch",
        "--skip-column-names",
        f"--execute={statements}",
    ]
    unit = await leader(ops_test, "mysql")
    # juju ssh joins its arguments into one `sh -c` line: hand it one quoted line.
    code, stdout, stderr = await ops_test.juju(
        "ssh", "--container", "mysql", unit, shlex.join(argv)
    )
    lines = [line for line in stderr.splitlines() if "password on the command line" not in line]
    assert code == 0, f"mysql client failed ({code}): {' '.join(lines)}"
    return stdout.strip()


# --- tests --------------------------------------------------------------------


@pytest.mark.abort_on_fail
async def test_bundle_deploys_and_settles(ops_test: OpsTest):
    assert ops_test.model is not None
    await deploy_bundle(ops_test)
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=SETTLE_BUNDLE
    )


@pytest.mark.abort_on_fail
async def test_related_application_gets_a_working_user(ops_test: OpsTest):
    assert ops_test.model is not None
    await ops_test.model.deploy(
        CLIENT,
        application_name=CLIENT,
        channel=CLIENT_CHANNEL,
        config={"database-name": DATABASE},
    )
    await ops_test.model.integrate(f"{CLIENT}:mysql", "mysql:database")
    await ops_test.model.wait_for_idle(
        apps=[CLIENT, *APPS], status="active", raise_on_error=True, timeout=SETTLE_CLIENT
    )

    credentials = await client_credentials(ops_test)
    who = await sql(ops_test, credentials, "SELECT CURRENT_USER(), DATABASE();")
    user, database = who.split("\t")
    assert user.split("@")[0] == credentials["username"]
    assert database == DATABASE

    await sql(
        ops_test,
        credentials,
        "CREATE TABLE kept (id INT PRIMARY KEY, word VARCHAR(32) NOT NULL);"
        "INSERT INTO kept VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma');",
    )
    assert await sql(ops_test, credentials, "SELECT id, word FROM kept ORDER BY id;") == ROWS


@pytest.mark.abort_on_fail
async def test_backup_restores_a_dropped_table(ops_test: OpsTest):
    credentials = await client_credentials(ops_test)
    unit = await leader(ops_test, "mysql")

    backup_id = (await run_action(ops_test, unit, "create-backup"))["backup-id"]
    listed = await run_action(ops_test, unit, "list-backups")
    assert backup_id in listed["backups"]

    await sql(ops_test, credentials, "DROP TABLE kept;")
    assert await sql(ops_test, credentials, "SHOW TABLES LIKE 'kept';") == ""

    restored = await run_action(ops_test, unit, "restore", **{"backup-id": backup_id})
    assert DATABASE in restored["databases"].split(",")
    assert await sql(ops_test, credentials, "SELECT id, word FROM kept ORDER BY id;") == ROWS


async def test_backups_survive_minio_credential_rotation(ops_test: OpsTest):
    assert ops_test.model is not None
    rotated = await run_action(ops_test, await leader(ops_test, "minio"), "rotate-credentials")
    assert "mysql" in rotated["updated-relations"]
    await ops_test.model.wait_for_idle(
        apps=APPS, status="active", raise_on_error=True, timeout=SETTLE_ROTATION
    )

    unit = await leader(ops_test, "mysql")
    backup_id = (await run_action(ops_test, unit, "create-backup"))["backup-id"]
    listed = await run_action(ops_test, unit, "list-backups")
    assert backup_id in listed["backups"]
    assert int(listed["count"]) >= 2


# --- login through the mesh -----------------------------------------------------

ECHO = "echo"
ECHO_IMAGE = "docker.io/ealen/echo-server:0.9.2"  # answers with the request's headers as JSON
PROBE = "route-probe"
PROBE_CHARM = ROOT / "build" / "route-probe_amd64.charm"
GATEWAY_SERVICE = "istio-ingressgateway"
USERID_HEADER = "kubeflow-userid"


def deploy_echo(namespace: str) -> None:
    """A Deployment and Service that echo every request back (not a charm: a user workload)."""
    from lightkube import Client, codecs

    manifest = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {ECHO}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {ECHO}}}}}
  template:
    metadata: {{labels: {{app: {ECHO}}}}}
    spec:
      containers:
        - name: echo
          image: {ECHO_IMAGE}
          ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {ECHO}, namespace: {namespace}}}
spec:
  selector: {{app: {ECHO}}}
  ports: [{{port: 80, targetPort: 80}}]
"""
    client = Client(field_manager="integration-test")
    for obj in codecs.load_all_yaml(manifest):
        client.apply(obj)


def gateway_address(namespace: str) -> str:
    """The ingress gateway's cluster IP: reachable from the MicroK8s host itself."""
    from lightkube import Client
    from lightkube.resources.core_v1 import Service

    service = Client().get(Service, GATEWAY_SERVICE, namespace=namespace)
    assert service.spec and service.spec.clusterIP, "the gateway Service has no cluster IP"
    return service.spec.clusterIP


def follow_to_dex(session, url: str, hops: int = 10):
    """Follow redirects by hand until the browser is at Dex; return that response."""
    from urllib.parse import urljoin, urlsplit

    response = session.get(url, allow_redirects=False, timeout=30)
    for _ in range(hops):
        if urlsplit(response.url).path.startswith("/dex/") and response.status_code == 200:
            return response
        assert response.is_redirect, (
            f"{response.url} answered {response.status_code}, not a redirect"
        )
        response = session.get(
            urljoin(response.url, response.headers["location"]), allow_redirects=False, timeout=30
        )
    pytest.fail(f"no Dex page after {hops} redirects (last: {response.url})")


def log_in_at_dex(session, url: str, admin: dict[str, str]):
    """Follow `url` to Dex's login form, log in as `admin`; the page the login lands on."""
    import requests

    page = follow_to_dex(session, url)
    form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.text, re.I)
    assert form, f"no Dex login form at {page.url}"
    action = requests.compat.urljoin(page.url, form.group(1).replace("&amp;", "&"))
    landed = session.post(
        action, data={"login": admin["email"], "password": admin["password"]}, timeout=30
    )
    assert landed.status_code == 200, f"{landed.url} answered {landed.status_code}"
    return landed


@pytest.mark.abort_on_fail
async def test_login_route_goes_through_dex_and_sets_the_user_header(ops_test: OpsTest):
    import requests

    assert ops_test.model is not None
    namespace = ops_test.model.name
    if not PROBE_CHARM.exists():
        pytest.fail("pack the test charm first: python tools/pack.py route-probe")
    deploy_echo(namespace)
    address = gateway_address(namespace)
    # The browser (this test) reaches the gateway at its cluster IP: tell the
    # mesh, so Dex's issuer and the login callback use that address too.
    await ops_test.model.applications["istio"].set_config({"external-hostname": address})
    await ops_test.model.deploy(
        PROBE_CHARM,
        application_name=PROBE,
        config={"prefix": "/echo", "service": ECHO, "port": 80},
    )
    # istio's authenticated endpoint: the route is served behind the login.
    await ops_test.model.integrate(f"{PROBE}:istio-ingress-route", "istio:istio-ingress-route")
    await ops_test.model.wait_for_idle(
        apps=[PROBE, "istio", "dex", "oidc-gateway"],
        status="active",
        raise_on_error=True,
        timeout=SETTLE_ROUTE,
    )
    admin = await run_action(ops_test, await leader(ops_test, "dex"), "get-admin-password")

    session = requests.Session()
    url = f"http://{address}/echo/"
    first = session.get(url, allow_redirects=False, timeout=30)
    assert first.is_redirect, f"not logged in, {url} answered {first.status_code}"

    landed = log_in_at_dex(session, url, admin)
    echoed = landed.json()
    # The echo server answers {"request": {"headers": {...}, ...}, ...}.
    seen = (echoed.get("request") or {}).get("headers") or echoed.get("headers") or {}
    headers = {k.lower(): v for k, v in seen.items()}
    assert headers.get(USERID_HEADER, "").endswith(admin["email"]), headers

    # A request that claims a user but carries no session is still sent to log in.
    forged = requests.get(
        url, headers={USERID_HEADER: "someone@else"}, allow_redirects=False, timeout=30
    )
    assert forged.is_redirect


async def test_an_open_route_at_the_root_is_refused(ops_test: OpsTest):
    """A route asked for without login at / would open every path: istio refuses it."""
    assert ops_test.model is not None
    name = "open-root-probe"
    await ops_test.model.deploy(PROBE_CHARM, application_name=name, config={"prefix": "/"})
    await ops_test.model.integrate(
        f"{name}:istio-ingress-route", "istio:istio-ingress-route-unauthenticated"
    )
    await ops_test.model.wait_for_idle(apps=["istio"], status="blocked", timeout=SETTLE_REFUSED)
    status = ops_test.model.applications["istio"].status_message
    assert "route refused: open-root-probe" in status, status
    assert "may not claim /" in status, status
    # The login still guards everything: the earlier route is not opened.
    import requests

    address = gateway_address(ops_test.model.name)
    answer = requests.get(f"http://{address}/echo/", allow_redirects=False, timeout=30)
    assert answer.is_redirect
    await ops_test.model.remove_application(name, block_until_done=True)
    await ops_test.model.wait_for_idle(apps=["istio"], status="active", timeout=SETTLE_RECOVERED)


# --- a user's workspace ------------------------------------------------------------

NOTEBOOK = "integration-nb"
# The first of kubeflow-notebooks' default jupyter-images.
NOTEBOOK_IMAGE = "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0"


async def test_profile_owner_starts_a_notebook_with_minio_credentials(ops_test: OpsTest):
    """Create a profile, log in as its owner, spawn a notebook through the web app.

    The notebook's pod must run in the profile namespace and get the object
    store credentials from the `access-minio` PodDefault (by Secret reference).
    """
    import asyncio

    import requests
    from lightkube import Client
    from lightkube.resources.core_v1 import Namespace, Pod

    assert ops_test.model is not None
    admin = await run_action(ops_test, await leader(ops_test, "dex"), "get-admin-password")
    profile = "integration-user"
    await run_action(
        ops_test,
        await leader(ops_test, "kubeflow-dashboard"),
        "create-profile",
        name=profile,
        owner=admin["email"],
    )
    client = Client()
    for _ in range(PROFILE_NAMESPACE_WAIT // POLL):
        try:
            client.get(Namespace, profile)
            break
        except Exception:  # the profile controller has not made it yet
            await asyncio.sleep(POLL)
    else:
        pytest.fail(f"namespace {profile} never appeared")

    address = gateway_address(ops_test.model.name)
    session = requests.Session()
    log_in_at_dex(session, f"http://{address}/jupyter/", admin)

    xsrf = session.cookies.get("XSRF-TOKEN", "")
    body = {
        "name": NOTEBOOK,
        "namespace": profile,
        "image": NOTEBOOK_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "serverType": "jupyter",
        "cpu": "0.5",
        "memory": "1Gi",
        "gpus": {"num": "none"},
        "noWorkspace": True,
        "datavols": [],
        "shm": True,
        "configurations": ["access-minio"],
        "affinityConfig": "",
        "tolerationGroup": "",
    }
    created = session.post(
        f"http://{address}/jupyter/api/namespaces/{profile}/notebooks",
        json=body,
        headers={"X-XSRF-TOKEN": xsrf},
        timeout=60,
    )
    assert created.status_code in (200, 201), created.text

    for _ in range(NOTEBOOK_POD_WAIT // POLL):
        pods = list(client.list(Pod, namespace=profile, labels={"notebook-name": NOTEBOOK}))
        if pods and pods[0].status and pods[0].status.phase == "Running":
            break
        await asyncio.sleep(POLL)
    else:
        pytest.fail(f"the notebook pod in {profile} never ran")
    (container,) = [c for c in pods[0].spec.containers if c.name == NOTEBOOK]
    from_secrets = {e.secretRef.name for e in (container.envFrom or []) if e.secretRef}
    assert "minio-credentials" in from_secrets
    plain = {e.name: e.value for e in (container.env or [])}
    assert any("minio" in (v or "") for v in plain.values())  # the endpoint, in clear
    assert not any(k.endswith("SECRET_ACCESS_KEY") for k in plain)  # keys only by reference
