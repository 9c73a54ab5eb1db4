"""The storage layer: the one place that owns the database schema and writes SQL for it.

Works on TimescaleDB (hypertables, continuous aggregates, policies) and on plain PostgreSQL
(same tables, views instead of aggregates), detected at migration time.
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports

if TYPE_CHECKING:
    from zhongdu.storage import _ops_history as ops_history
    from zhongdu.storage import _profiles as profiles
    from zhongdu.storage import _queries as queries
    from zhongdu.storage import _telemetry as telemetry
    from zhongdu.storage._connect import connect, has_timescale, prepare_connection, set_search_path
    from zhongdu.storage._migrate import Migration, applied_versions, discover, migrate
    from zhongdu.storage._registry import register_layout

# Loaded on first use, so that `zhongdu --help` (which imports `zhongdu.storage.cli`) stays fast.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "connect": "._connect",
        "has_timescale": "._connect",
        "prepare_connection": "._connect",
        "set_search_path": "._connect",
        "Migration": "._migrate",
        "applied_versions": "._migrate",
        "discover": "._migrate",
        "migrate": "._migrate",
        "register_layout": "._registry",
    },
    submodules={
        "ops_history": "._ops_history",
        "profiles": "._profiles",
        "queries": "._queries",
        "telemetry": "._telemetry",
    },
)


__all__ = [
    "Migration",
    "applied_versions",
    "connect",
    "discover",
    "has_timescale",
    "migrate",
    "ops_history",
    "prepare_connection",
    "profiles",
    "queries",
    "register_layout",
    "set_search_path",
    "telemetry",
]
