"""The API's bucketed history on TimescaleDB (continuous aggregates) equals the plain-PostgreSQL answer.

The TimescaleDB test server serves one connection at a time: every connection here is closed before
the next opens, and the app runs with a pool of one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from zhongdu import storage

from ._api_fixtures import ADMIN_KEY, api_settings, make_key, running_app

pytestmark = [pytest.mark.timescale, pytest.mark.postgres, pytest.mark.slow]

BASE = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)


def _seed(conn: Any) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO stations (station_id, name) VALUES ('bs-west', 'west')")
        conn.execute("INSERT INTO devices (device_id, kind) VALUES ('air-1', 'air')")
        conn.execute(
            """INSERT INTO readings (time, device_id, metric, value, unit)
               SELECT %s + make_interval(mins => m, secs => 10 * k), 'air-1', 'pm2_5', m * 0.5 + k, 'ug/m3'
               FROM generate_series(0, 149) m, generate_series(0, 2) k""",
            (BASE,),
        )
        conn.execute(
            """INSERT INTO station_telemetry (time, station_id, sector_id, status, prb_utilisation, active_users)
               SELECT %s + make_interval(mins => m), 'bs-west', s::text, 'up', ((m + s) %% 10) / 10.0, m + s
               FROM generate_series(0, 149) m, generate_series(1, 3) s""",
            (BASE,),
        )


def _answers(conn: Any) -> dict[str, Any]:
    window = {"start": BASE, "end": BASE + timedelta(hours=3)}
    return {
        "device_1m": storage.queries.device_history(conn, "air-1", "pm2_5", bucket="1m", **window),
        "device_1h": storage.queries.device_history(conn, "air-1", "pm2_5", bucket="1h", **window),
        "station_1h": storage.queries.station_history(conn, "bs-west", bucket="1h", **window),
        "sector_1m": storage.queries.station_history(conn, "bs-west", bucket="1m", sector_id="2", **window),
        "latest": storage.queries.get_device(conn, "air-1")["latest"],
    }


def _normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (round(float(v), 9) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]


@pytest.fixture(scope="module")
def timescale_migrated(timescale_schema: tuple[str, str]) -> tuple[str, str]:
    url, schema = timescale_schema
    with storage.connect(url, schema=schema) as conn:
        storage.migrate(conn)
        assert set(storage.applied_versions(conn).values()) == {"timescale"}
        _seed(conn)
    return url, schema


def test_bucketed_history_matches_plain_postgresql(timescale_migrated: tuple[str, str], pg_migrated: str) -> None:
    url, schema = timescale_migrated
    with storage.connect(url, schema=schema) as conn:
        kinds = dict(conn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
            " WHERE view_schema = %s", (schema,)).fetchall())
        assert {"readings_1m", "readings_1h", "station_load_1m", "station_load_1h"} <= set(kinds)
        on_timescale = _answers(conn)
    with storage.connect(pg_migrated) as conn:
        _seed(conn)
        on_plain = _answers(conn)
    for name, rows in on_plain.items():
        assert rows, name
        assert _normalised(on_timescale[name]) == _normalised(rows), name
    assert len(on_plain["device_1m"]) == 150 and on_plain["device_1m"][4]["n"] == 3
    assert [r["n"] for r in on_plain["device_1h"]] == [180, 180, 90]  # 60 minutes × 3 readings
    assert on_plain["sector_1m"][0]["users_min"] == 2


def test_api_on_timescale(timescale_migrated: tuple[str, str], mqtt_url: str) -> None:
    url, schema = timescale_migrated
    settings = api_settings(url, mqtt_url, database_schema=schema, api_pool_size=1, coverage_poll_interval_s=1.0)
    with running_app(settings) as client:
        params = {"metric": "pm2_5", "from": BASE.isoformat(), "to": (BASE + timedelta(hours=2)).isoformat(),
                  "bucket": "1h"}
        history = client.get("/v1/devices/air-1/history", params=params)
        assert history.status_code == 200, history.text
        assert [i["n"] for i in history.json()["items"]] == [180, 180]
        station = client.get("/v1/stations/bs-west/history",
                             params={"from": BASE.isoformat(), "to": (BASE + timedelta(hours=1)).isoformat(),
                                     "bucket": "1m", "sector_id": "1"})
        assert station.status_code == 200 and len(station.json()["items"]) == 60
        assert client.get("/v1/coverage").json()["stations_total"] == 3
        snapshots = client.get("/v1/coverage/history").json()["items"]  # stored in the hypertable
        assert snapshots and snapshots[-1]["trigger"] == "schedule"
        operator = make_key(client, "operator")
        recorded = client.post("/v1/indicators/F1-2/actuals", headers={"X-API-Key": operator},
                               json={"year": 2018, "numerator": 95, "denominator": 100})
        assert recorded.status_code == 201, recorded.text
        score = client.get("/v1/indicators/score", params={"year": 2018}).json()
        assert score["indicators_with_actual"] >= 1
        assert client.get("/v1/admin/keys", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
