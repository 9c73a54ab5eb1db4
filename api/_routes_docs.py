"""The API's own reference page, `/docs` (Swagger UI), with every asset served here.

FastAPI's defaults load Swagger UI from a CDN, so the reference is blank in an operations center
without internet, and their inline scripts break the page's Content-Security-Policy. The assets
come from the `fastapi-offline` package; the page starts them from a script file, not inline.
ReDoc is not offered: it loads its logo from its vendor's CDN whatever it is told.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"

router = APIRouter(include_in_schema=False)


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f'<link rel="icon" href="{ASSETS_URL}/favicon.png">{head}</head><body>{body}</body></html>'
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return _page(
        "Zhongdu API - Swagger UI",
        f'<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">',
        f'<div id="swagger-ui"></div><script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>'
        '<script src="/docs/init.js"></script>',
    )


@router.get("/docs/init.js")
def swagger_init() -> Response:
    options = {"url": "/openapi.json", "dom_id": "#swagger-ui", "deepLinking": True}
    script = f"window.ui = SwaggerUIBundle({json.dumps(options)});\n"
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def mount_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
