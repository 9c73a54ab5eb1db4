"""HTTP API (FastAPI) for the operations center, planners and the planning commission.

`create_app(settings)` builds the app (served by `zhongdu api`); `start_api(settings)` serves it
in a background thread (for `zhongdu demo`) and returns a handle with `.url`, `.admin_key`, `.stop()`;
`create_api_key` makes a key (stored hashed, returned once).
"""

from typing import TYPE_CHECKING

from zhongdu._lazy import lazy_exports

if TYPE_CHECKING:
    from zhongdu.api._app import create_app, state_of
    from zhongdu.api._live import default_layout
    from zhongdu.api._security import ROLES, Principal, create_api_key
    from zhongdu.api._serve import RunningApi, start_api, with_bootstrap_key

# Loaded on first use: FastAPI costs every `zhongdu` command ~0.3 s otherwise.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "create_app": "._app",
        "state_of": "._app",
        "default_layout": "._live",
        "ROLES": "._security",
        "Principal": "._security",
        "create_api_key": "._security",
        "RunningApi": "._serve",
        "start_api": "._serve",
        "with_bootstrap_key": "._serve",
    },
)

__all__ = [
    "ROLES",
    "Principal",
    "RunningApi",
    "create_api_key",
    "create_app",
    "default_layout",
    "start_api",
    "state_of",
    "with_bootstrap_key",
]
