"""What Katib v0.18.0's DB manager runs on MySQL, written from its source.

kubeflow/katib v0.18.0:
- pkg/db/v1beta1/mysql/init.go:35-40, `DBInit` at first start (SKIP_DB_INITIALIZATION
  "false", the default): the one table it makes, IF NOT EXISTS;
- pkg/db/v1beta1/mysql/init.go:54-61, the health check's `SELECT 1`;
- pkg/db/v1beta1/mysql/mysql.go:67-135, its three operations: a trial's observation log
  reported (one multi-row INSERT, times in UTC as "2006-01-02 15:04:05.999999"), read
  back (filtered by metric and time, ordered by time) and deleted.
Nothing else: no ALTER, no index, no other table (pkg/db/v1beta1/common/kdb.go's
interface has only these).
"""

from __future__ import annotations

DATABASE = "katib"

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS observation_logs"
    " (trial_name VARCHAR(255) NOT NULL,"
    " id INT AUTO_INCREMENT PRIMARY KEY,"
    " time DATETIME(6),"
    " metric_name VARCHAR(255) NOT NULL,"
    " value TEXT NOT NULL);"
)
HEALTH = "SELECT 1;"
REPORT = (
    "INSERT INTO observation_logs (trial_name, time, metric_name, value) VALUES"
    " ('random-exp-abc123', '2026-01-02 03:04:05.123456', 'accuracy', '0.91'),"
    " ('random-exp-abc123', '2026-01-02 03:04:06.5', 'loss', '0.25'),"
    " ('random-exp-abc123', '2026-01-02 03:05:05', 'accuracy', '0.93');"
)
GET = (
    "SELECT time, metric_name, value FROM observation_logs WHERE trial_name = 'random-exp-abc123'"
    " AND metric_name = 'accuracy' AND time >= '2026-01-02 03:00:00'"
    " AND time <= '2026-01-02 04:00:00' ORDER BY time;"
)
DELETE = "DELETE FROM observation_logs WHERE trial_name = 'random-exp-abc123';"
# With SKIP_DB_INITIALIZATION set otherwise, it checks the table instead of creating it.
VALIDATE = "SELECT trial_name, id, time, metric_name, value FROM observation_logs LIMIT 1;"
