"""One settings object per process, read from `ZHONGDU_*` environment variables.

Build it in `main()` or an app's lifespan (`Settings()`), never at import time, so tests and
sub-processes can set the environment first.
"""

from __future__ import annotations

import importlib.util
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhongdu.errors import ConfigError


def mask_url(url: str | None) -> str | None:
    """The URL with its password replaced by `***`, for logs and reports."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def shipped_source_dir() -> Path:
    """The Taichung inputs shipped with the package (`coverage/data/source`, installed or editable).

    Found without importing `zhongdu.coverage` (NumPy and friends): only its location is needed.
    """
    spec = importlib.util.find_spec("zhongdu.coverage")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError("zhongdu.coverage is not installed: set ZHONGDU_SOURCE_DATA_DIR")
    return Path(locations[0]) / "data" / "source"


class Settings(BaseSettings):
    """Every setting of every part. Unset URLs mean "start an embedded service" (see `demo`)."""

    model_config = SettingsConfigDict(env_prefix="ZHONGDU_", extra="ignore")

    env: Literal["local", "production"] = Field(
        "local", description="`production` refuses default secrets and embedded services"
    )
    database_url: str | None = Field(None, description="postgresql://user:pass@host:port/db")
    database_read_url: str | None = Field(
        None, description="a read replica: the API's GET requests read there (default: the primary)"
    )
    mqtt_url: str | None = Field(None, description="mqtt://[user:pass@]host:port (mqtts:// for TLS)")
    mqtt_cafile: Path | None = Field(None, description="CA bundle that signs the broker's TLS certificate")
    broker_admin_url: str | None = Field(
        None, description="mqtt://zhongdu-admin:pass@host:port: manages device credentials on the broker"
    )
    data_dir: Path = Field(
        Path.home() / ".local" / "share" / "zhongdu",
        description="where embedded services keep their files",
    )
    source_data_dir: Path = Field(
        default_factory=lambda: shipped_source_dir(),
        description="the real Taichung inputs (boundaries, population, station counts), plain or "
        "gzipped; default: the copy shipped in the package (coverage/data/source)",
    )

    # ingestion
    auto_register: bool = Field(False, description="register unknown devices on first sight")
    mqtt_share_group: str = Field(
        "ingest",
        description="shared-subscription group of the ingest workers; empty: one worker, plain subscription "
        "(Mosquitto 2.0 forgets shared subscriptions on a restart, keeps plain ones of persistent sessions)",
    )
    mqtt_client_id: str = "zhongdu-ingest"
    ingest_batch_size: int = Field(2000, ge=1, le=100_000)
    ingest_batch_interval_ms: int = Field(50, ge=1, le=10_000)
    ingest_max_inflight: int = Field(5000, ge=1, le=1_000_000)
    ingest_max_payload_bytes: int = Field(65_536, ge=64)
    ingest_max_future_s: float = Field(300.0, ge=0)
    ingest_rollup_refresh_s: float = Field(
        30.0, gt=0, le=86_400, description="plain PostgreSQL: seconds between refreshes of readings_1m/1h"
    )
    ingest_config_refresh_s: float = Field(
        2.0, gt=0, le=3600, description="seconds between ingesters' checks for changed profiles and metrics"
    )
    station_silence_timeout_s: float = Field(
        300.0, gt=0, description="a station silent this long counts as not serving"
    )

    # coverage
    h3_resolution: int = Field(10, ge=7, le=12)
    rsrp_threshold_dbm: float = Field(-110.0, ge=-150, le=-40)
    coverage_model: Literal["disk", "hata"] = "hata"
    grid_path: Path | None = Field(
        None, description="population grid: CSV, Parquet or Arrow IPC (by extension); default: shipped"
    )
    stations_path: Path | None = Field(None, description="station layout CSV; default: generated")
    indicator_4g_criterion: str = Field(
        "outdoor",
        pattern=r"^(outdoor|indoor|capacity|indoor_every_major|indoor_[A-Z]{2,5})$",
        description="the criterion the plan's 4G indicator (B7-2) is scored on: the commission's "
        "recorded choice (docs/indicators.md); default outdoor, as the regulator reads coverage",
    )

    # api
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    admin_api_key: SecretStr | None = Field(
        None, description="bootstrap admin key; in local mode a random one is made and printed"
    )
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(0, ge=0, description="per API key or client; 0 = off")
    api_trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of reverse proxies whose X-Forwarded-For names the client "
        '(JSON list, e.g. ["10.0.0.5", "172.16.0.0/12"]); empty: the TCP peer is the client',
    )
    api_max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=1 << 30, description="larger bodies get 413 (5,000 candidates fit)"
    )
    api_pool_size: int = Field(8, ge=1, le=100, description="database connections of one API process")
    api_metrics_port: int = Field(
        9109,
        ge=0,
        le=65535,
        description="port of the API's Prometheus /metrics, apart from the public API; 0 = not served",
    )
    api_metrics_host: str = Field("127.0.0.1", description="address the metrics port binds")
    api_public_metrics: bool = Field(
        False, description="also serve /metrics on the API's own port (off: keep it off the public port)"
    )
    scenario_max_mb: int = Field(
        2048, ge=64, description="refuse scenarios whose estimated memory (MB) is above this, with 422"
    )
    scenario_workers: int = Field(
        2, ge=1, le=16, description="placement scenarios computed at once, each in its own process"
    )
    database_schema: str | None = Field(
        None, description="schema put first on the API's search path (tests isolate modules with it)"
    )
    ingest_metrics_url: str | None = Field(
        None,
        description="the ingester's Prometheus /metrics URL for the operations page "
        "(zhongdu ingest --metrics-port N); unset: this process's own (zhongdu demo)",
    )
    coverage_poll_interval_s: float = Field(
        5.0, gt=0, le=3600, description="how often the API looks for station status changes"
    )
    coverage_snapshot_interval_s: float = Field(
        300.0, gt=0, description="a coverage snapshot is stored at least this often"
    )
    ops_history_days: float = Field(
        30.0,
        gt=0,
        le=3650,
        description="the operations page's share history and ended outage incidents are kept this long",
    )

    # alerts
    alerts_poll_interval_s: float = Field(
        1.0, gt=0, le=3600, description="how often the alert evaluator reads new readings and statuses"
    )
    alerts_overlap_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="the evaluator re-reads this much data time before its cursor (rows committed late)",
    )
    alerts_webhook_timeout_s: float = Field(5.0, gt=0, le=120, description="per webhook request")
    alerts_webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="tries per event and webhook (backoff 2, 4, 8 ... s, at most 10 min)"
    )
    # petitions: after an import, the latest window is compared with the one before it
    petition_alert_window_days: int = Field(
        30, ge=1, le=365, description="days per window when looking for new petition hotspots"
    )
    petition_alert_resolution: int = Field(8, ge=8, le=10, description="H3 resolution of that comparison")
    petition_alert_measure: Literal["count", "rate"] = Field(
        "rate", description="rate: residents' excess (counts would flag dense districts month after month)"
    )

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"ZHONGDU_DATABASE_URL must start with postgresql://, got {mask_url(value)!r}")
        return value or None

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("mqtt://", "tcp://", "mqtts://")):
            raise ConfigError(f"ZHONGDU_MQTT_URL must look like mqtt://host:port, got {value!r}")
        return value or None

    def require_production_safe(self) -> None:
        """Refuse to run in production with embedded services or without an admin key."""
        if self.env != "production":
            return
        missing = [
            name
            for name, value in (
                ("ZHONGDU_DATABASE_URL", self.database_url),
                ("ZHONGDU_MQTT_URL", self.mqtt_url),
                ("ZHONGDU_ADMIN_API_KEY", self.admin_api_key),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"production mode needs {', '.join(missing)} to be set")


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """Split `mqtt://user:pass@host:port` into host, port, username, password."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} has no host; expected mqtt://host:port")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    default_port = 8883 if parts.scheme == "mqtts" else 1883
    return parts.hostname, parts.port or default_port, user, password


def mqtt_tls_context(url: str, cafile: str | Path | None = None) -> ssl.SSLContext | None:
    """A verifying TLS context for `mqtts://` URLs (with `cafile` when the broker's CA is private)."""
    if not url.startswith("mqtts://"):
        return None
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)
