"""The storage layer: the one place that owns the database schema and writes SQL for it.

Works on TimescaleDB (hypertables, continuous aggregates, policies) and on plain PostgreSQL
(same tables, views instead of aggregates), detected at migration time.
"""

from zhongdu.storage import _api as api
from zhongdu.storage import _telemetry as telemetry
from zhongdu.storage._connect import connect, has_timescale, prepare_connection, set_search_path
from zhongdu.storage._migrate import Migration, applied_versions, discover, migrate

__all__ = [
    "Migration",
    "api",
    "applied_versions",
    "connect",
    "discover",
    "has_timescale",
    "migrate",
    "prepare_connection",
    "set_search_path",
    "telemetry",
]
