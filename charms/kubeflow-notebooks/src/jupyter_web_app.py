"""The Jupyter web app: the UI users create notebooks with (Flask under gunicorn, port 5000).

It runs in its own container of the charm's pod and reads the spawner form
from `/etc/config/spawner_ui_config.yaml`, which the charm writes. The
mesh serves it under `/jupyter` and rewrites that to `/`: the app serves at
the root, and `APP_PREFIX` tells its pages where the browser finds them.
It reads the logged-in user's id from the header the login sets, which the
charm is told over its route.
"""

from __future__ import annotations

import ops

CONTAINER = "jupyter-web-app"
SERVICE = "jupyter-web-app"
READY_CHECK = "jupyter-web-app-up"
PORT = 5000
PREFIX = "/jupyter"
CONFIG_FILE = "/etc/config/spawner_ui_config.yaml"
READY_PATH = "/healthz/readiness"  # answered without a user header


def pebble_layer(
    *, secure_cookies: bool, config_hash: str, userid_header: str, userid_prefix: str
) -> ops.pebble.LayerDict:
    """The web app's service and its check."""
    return {
        "summary": "jupyter web app",
        "services": {
            SERVICE: {
                "override": "replace",
                "summary": "Kubeflow Jupyter web app",
                "command": (
                    f"gunicorn -w 3 --bind 0.0.0.0:{PORT} --access-logfile - entrypoint:app"
                ),
                "working-dir": "/src",
                "startup": "enabled",
                "environment": {
                    "APP_PREFIX": PREFIX,
                    "UI": "default",
                    "USERID_HEADER": userid_header,
                    "USERID_PREFIX": userid_prefix,
                    # Secure cookies only over HTTPS: the browser drops them over HTTP.
                    "APP_SECURE_COOKIES": "true" if secure_cookies else "false",
                    "CHARM_CONFIG_HASH": config_hash,
                },
            }
        },
        "checks": {
            READY_CHECK: {
                "override": "replace",
                "level": "ready",
                "period": "10s",
                "threshold": 3,
                "http": {"url": f"http://localhost:{PORT}{READY_PATH}"},
            }
        },
    }
