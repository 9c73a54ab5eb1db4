"""The FastAPI application: `create_app(settings)` builds it; the lifespan opens what it needs.

The lifespan opens a psycopg connection pool, starts the live coverage thread and a scenario worker,
and closes them in reverse order; nothing is created at import time. Bad input never becomes a
500: validation errors are 422s naming the field, database data errors 422, an unreachable
database 503.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool, PoolTimeout

from zhongdu import storage
from zhongdu.api._bodylimit import BodyLimitMiddleware
from zhongdu.api._deps import ApiState
from zhongdu.api._http import ConditionalGzipMiddleware, HeadMiddleware, SecurityHeadersMiddleware
from zhongdu.api._live import LayoutFactory, LiveCoverage, default_layout
from zhongdu.api._prometheus import ApiMetrics, MetricsMiddleware
from zhongdu.api._ratelimit import RateLimitMiddleware
from zhongdu.api._scenario_pool import ScenarioPool
from zhongdu.api._security import KeyVerifier
from zhongdu.errors import ConfigError, ZhongduError
from zhongdu.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Zhongdu (中都): live 4G coverage of Taichung, smart-park and base-station telemetry, placement
scenarios, and the 104-107 mid-term plan's indicators.

Reads are open (viewer). Writes need an API key (`X-API-Key: zd_…` or `Authorization: Bearer zd_…`)
whose role allows them: scenarios need **planner**, device registration and indicator actuals
**operator**, key management **admin** (viewer < planner < operator < admin). 401: no or bad key;
403: role too low; 422: invalid input, with the field and the fix; 429: rate limit.
"""


def _summary(errors: list[Any]) -> str:
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), custom_encoder={Exception: str, bytes: repr})
        return JSONResponse({"detail": errors, "message": _summary(errors)}, status_code=422)

    @app.exception_handler(psycopg.errors.DataError)
    async def _data(_request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the database refused a value: {exc.diag.message_primary or exc}"}, status_code=422
        )

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _integrity(_request: Request, exc: psycopg.errors.IntegrityError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"conflicts with stored data: {exc.diag.message_primary or exc}"}, status_code=409
        )

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(ZhongduError)
    async def _domain(_request: Request, exc: ZhongduError) -> JSONResponse:
        status = 422 if isinstance(exc, ValueError) else 503
        return JSONResponse({"detail": str(exc)}, status_code=status)


def create_app(
    settings: Settings | None = None,
    *,
    layout: LayoutFactory | None = None,
    live_coverage: bool = True,
    serve_metrics: bool = False,
) -> FastAPI:
    """The API for `settings` (default: from the environment); `settings.database_url` must be set.

    `layout` returns the (grid, stations) of the live coverage engine (default: the configured or
    shipped grid and the generated layout); tests pass a small synthetic one. `live_coverage=False`
    serves everything except the live coverage routes (503). `serve_metrics` opens the Prometheus
    port (ZHONGDU_API_METRICS_PORT) for the app's lifetime: `zhongdu api` and `zhongdu demo` do.
    """
    settings = settings or Settings()
    metrics = ApiMetrics()
    make_layout = layout or default_layout(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise ConfigError(
                "the API needs ZHONGDU_DATABASE_URL (`zhongdu api` starts an embedded database)"
            )
        schema = settings.database_schema

        def configure(conn: psycopg.Connection[Any]) -> None:
            storage.prepare_connection(conn)
            if schema:
                storage.set_search_path(conn, schema)

        def make_pool(url: str, name: str) -> ConnectionPool[Any]:
            return ConnectionPool(
                url,
                min_size=1,
                max_size=settings.api_pool_size,
                open=False,
                configure=configure,
                kwargs={"connect_timeout": 10},
                name=name,
                timeout=30.0,
            )

        pool = make_pool(settings.database_url, "zhongdu-api")
        await run_in_threadpool(pool.open, True, 60.0)
        # GET requests read from a replica when one is configured (TimescaleDB read replicas)
        read_pool = pool
        if settings.database_read_url:
            read_pool = make_pool(settings.database_read_url, "zhongdu-api-read")
            await run_in_threadpool(read_pool.open, True, 60.0)
        live = LiveCoverage(make_layout, pool, settings) if live_coverage else None
        metrics.watch(live)
        metrics_server = None
        if serve_metrics and settings.api_metrics_port:
            try:
                metrics_server = metrics.serve(settings.api_metrics_host, settings.api_metrics_port)
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics on {settings.api_metrics_host}:{settings.api_metrics_port} "
                    f"({exc}); set ZHONGDU_API_METRICS_PORT to a free port, or 0 for none"
                ) from exc
        admin_key = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        state = ApiState(
            settings=settings,
            pool=pool,
            read_pool=read_pool,
            verifier=KeyVerifier(admin_key),
            metrics=metrics,
            live=live,
            scenario_runner=ScenarioPool(settings.scenario_workers),
        )
        app.state.zhongdu = state
        if live is not None:
            live.start()
        try:
            yield
        finally:
            if live is not None:
                await run_in_threadpool(live.stop)
            if metrics_server is not None:
                metrics_server.shutdown()
            state.scenario_runner.shutdown(wait=True, cancel_futures=True)
            await run_in_threadpool(pool.close)
            if read_pool is not pool:
                await run_in_threadpool(read_pool.close)

    app = FastAPI(
        title="Zhongdu API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by _routes_docs from assets shipped with the API, never a CDN
        redoc_url=None,
        openapi_tags=[
            {"name": "coverage", "description": "live 4G coverage from the latest station status"},
            {"name": "telemetry", "description": "stations and park devices"},
            {"name": "scenarios", "description": "placement scenarios for planners"},
            {"name": "indicators", "description": "the mid-term plan's 衡量指標"},
            {"name": "petitions", "description": "1999 hotline and petitions: hotspots, trends, Open311"},
            {"name": "admin", "description": "API keys"},
            {"name": "sensorthings", "description": "the park's telemetry as OGC SensorThings API 1.1"},
            {"name": "alerts", "description": "incidents on telemetry and outages, rules, webhooks"},
            {"name": "health", "description": "probes"},
        ],
    )
    _install_error_handlers(app)
    from zhongdu.api import (
        _routes_admin,
        _routes_alerts,
        _routes_coverage,
        _routes_docs,
        _routes_health,
        _routes_indicators,
        _routes_ops,
        _routes_ops_history,
        _routes_petitions,
        _routes_profiles,
        _routes_scenarios,
        _routes_sta,
        _routes_telemetry,
        _routes_ui,
    )

    for module in (
        _routes_health,
        _routes_coverage,
        _routes_telemetry,
        _routes_scenarios,
        _routes_indicators,
        _routes_admin,
        _routes_ops,
        _routes_ops_history,
        _routes_sta,
        _routes_alerts,
        _routes_profiles,
        _routes_petitions,
    ):
        app.include_router(module.router)
    _routes_ui.mount_ui(app)
    _routes_docs.mount_docs(app)
    _errors_as_json(app)
    if settings.rate_limit_per_minute > 0:
        app.add_middleware(
            RateLimitMiddleware, rate_per_minute=settings.rate_limit_per_minute, metrics=metrics
        )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    # innermost first: validators and gzip see the final body; HEAD sees their headers
    app.add_middleware(ConditionalGzipMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(HeadMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _errors_as_json(app: FastAPI) -> None:
    """Error answers are JSON whatever the route's success type (the handlers above send them), but
    FastAPI documents a route's error responses with its response class: say what is served."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if not status.startswith("2") and "application/geo+json" in content:
                            content.setdefault("application/json", content.pop("application/geo+json"))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def state_of(app: FastAPI) -> ApiState:
    """The running app's state (tests and `zhongdu demo`)."""
    state: ApiState = app.state.zhongdu
    return state
