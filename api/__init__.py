"""HTTP API (FastAPI) for the operations center, planners and the planning commission.

`create_app(settings)` builds the app (served by `zhongdu api` and by `zhongdu demo`);
`create_api_key` makes a key (stored hashed, returned once).
"""

from zhongdu.api._app import create_app, state_of
from zhongdu.api._security import ROLES, Principal, create_api_key

__all__ = ["ROLES", "Principal", "create_api_key", "create_app", "state_of"]
