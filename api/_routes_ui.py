"""The operations page at `/`: a built single-page app in `api/static/` (sources in `api/ui/`).

Every asset is served from here; the Content-Security-Policy (added to every HTML response by
`_http.SecurityHeadersMiddleware`) lets the page load nothing from elsewhere, so a wall screen on
a closed network shows the same page as a laptop online.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise HTTPException(404, "the operations page is not built; run `make ui`")
    return FileResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/ops")
def ops() -> RedirectResponse:
    return RedirectResponse("/")


def mount_ui(app: FastAPI) -> None:
    """Serve `/` and `/static/*` (when the page is built)."""
    app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
