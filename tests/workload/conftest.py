"""Fixtures for the workload tests: a real MariaDB and a real S3 API on localhost.

They live in `workload.fixtures`, shared with the serving test.
"""

from workload.fixtures import (  # noqa: F401 - fixtures pytest finds by name
    admin,
    admin_password,
    executor,
    mariadb,
    s3_endpoint,
    s3_info,
)
