"""The operations wall's outage routes against real PostgreSQL: the effect of an outage under a
criterion (equal to a whole-grid computation), incidents with durations that keep their true start
across an API restart, and the share timeline."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from zhongdu.api import create_app, state_of
from zhongdu.api._outage_effect import covered_fraction, outage_effect

from ._api_fixtures import TestClient, api_settings, wait_for
from ._wall_city import EDGE_AT, wall_city

RUN = uuid.uuid4().hex[:6]
PREFIX = f"bs{RUN}"
EDGE = f"{PREFIX}-edge"


def _whole_grid_loss(criterion: str, operator: str) -> tuple[float, int]:
    """People and cells lost to the edge site's outage, computed on the whole grid."""
    grid, stations = wall_city(PREFIX)
    down = dataclasses.replace(stations, up=np.asarray(stations.station_id) != EDGE)
    kw = {"criterion": criterion, "operator": operator, "model": "disk", "threshold_dbm": -110.0}
    lost = covered_fraction(grid, stations, **kw) - covered_fraction(grid, down, **kw)
    return float((np.asarray(grid.population) * lost).sum()), int(np.count_nonzero(lost > 0))


@pytest.mark.parametrize(
    ("criterion", "operator"), [("outdoor", "any"), ("indoor", "any"), ("indoor", "every_major")]
)
def test_outage_effect_equals_the_whole_grid(criterion: str, operator: str) -> None:
    grid, stations = wall_city(PREFIX)
    down = dataclasses.replace(stations, up=np.asarray(stations.station_id) != EDGE)
    lat, lng = grid.latlng_deg()
    effect = outage_effect(
        grid,
        (np.asarray(lat), np.asarray(lng)),
        stations,
        down,
        [EDGE],
        [EDGE_AT],
        criterion=criterion,
        operator=operator,
        model="disk",
        threshold_dbm=-110.0,
    )
    people, cells = _whole_grid_loss(criterion, operator)
    assert effect.people == pytest.approx(people) and effect.cells == cells
    site = effect.sites[0]
    assert site is not None and site.people == pytest.approx(people) and site.cells == cells
    if criterion == "outdoor":
        assert people == 0  # the centre sites reach everyone outdoors: nothing moves
    else:
        assert people > 0 and cells > 0


@contextmanager
def _app(db: str) -> Iterator[TestClient]:
    app = create_app(api_settings(db, None), layout=lambda: wall_city(PREFIX), live_coverage=True)
    with TestClient(app) as client:
        live = state_of(app).live
        assert live is not None and live.ready.wait(60) and live.snapshot is not None, live and live.error
        yield client


def _report(db: str, status: str, at: datetime) -> None:
    with psycopg.connect(db) as conn:
        conn.execute(
            """INSERT INTO entity_status (kind, entity_id, status, source, observed_at)
               VALUES ('bs', %s, %s, 'telemetry', %s)
               ON CONFLICT (kind, entity_id) DO UPDATE SET status = EXCLUDED.status, observed_at = EXCLUDED.observed_at""",
            (EDGE, status, at),
        )


def _outage(client: TestClient, **params: str) -> dict[str, Any]:
    answer = client.get("/v1/ops/outages", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture(scope="module")
def db(pg_migrated: str) -> str:
    return pg_migrated


def test_outage_effect_incidents_and_timeline_through_the_api(db: str) -> None:
    began = datetime.now(UTC) - timedelta(seconds=30)
    with _app(db) as client:
        assert _outage(client)["outages"] == []
        _report(db, "down", began)
        assert wait_for(lambda: len(_outage(client)["outages"]) == 1)
        outdoor = _outage(client)
        assert outdoor["people"] == 0 and outdoor["outages"][0]["people"] == 0
        for criterion, operator in (("indoor", "any"), ("indoor", "every_major")):
            body = _outage(client, criterion=criterion, operator=operator)
            people, cells = _whole_grid_loss(criterion, operator)
            row = body["outages"][0]
            assert row["station_id"] == EDGE and row["status"] == "down"
            assert row["people"] == pytest.approx(people) and row["cells"] == cells > 0
            assert body["people"] == pytest.approx(people)
            assert body["share_pp"] == pytest.approx(100 * people / body["population_total"])
            assert datetime.fromisoformat(row["since"]) == began.replace(microsecond=began.microsecond)
        bad = client.get("/v1/ops/outages", params={"operator": "ZZZ"})
        assert bad.status_code == 422 and "unknown operator" in bad.text
        assert client.get("/v1/ops/outages", params={"criterion": "sky"}).status_code == 422

        incidents = client.get("/v1/ops/incidents").json()["items"]
        mine = [i for i in incidents if i["station_id"] == EDGE]
        assert len(mine) == 1 and mine[0]["ongoing"] and mine[0]["ended_at"] is None
        assert datetime.fromisoformat(mine[0]["started_at"]) == began
        assert mine[0]["duration_s"] >= 30 and mine[0]["lon"] == pytest.approx(EDGE_AT[1])
        # the worst effect is recorded by the live loop under indoor by every major operator
        people, cells = _whole_grid_loss("indoor", "every_major")
        assert mine[0]["criterion"] == "indoor" and mine[0]["operator"] == "every_major"
        assert mine[0]["people_worst"] == pytest.approx(people) and mine[0]["cells_worst"] == cells

        timeline = client.get("/v1/ops/timeline", params={"hours": 1}).json()
        views = {(s["criterion"], s["operator"]): s["points"] for s in timeline["series"]}
        assert set(views) == {("outdoor", "any"), ("indoor", "any"), ("indoor", "every_major")}
        indoor = views[("indoor", "any")]
        assert indoor[-1]["sites_down"] == 1 and indoor[0]["sites_down"] == 0
        assert indoor[-1]["share"] < indoor[0]["share"]
        assert views[("outdoor", "any")][-1]["share"] == views[("outdoor", "any")][0]["share"] == 1.0
        assert [i["station_id"] for i in timeline["incidents"] if i["station_id"] == EDGE] == [EDGE]

        # a later report of the same status: the latest report is newer than the outage's start
        _report(db, "down", datetime.now(UTC))

    with _app(db) as client:  # the API restarted: the open incident gives the true start back
        sites = client.get("/v1/map/sites").json()
        i = sites["ids"].index(EDGE)
        assert sites["statuses"][sites["status"][i]] == "down"
        assert sites["since"][i] == pytest.approx(began.timestamp(), abs=0.1)
        assert datetime.fromisoformat(_outage(client)["outages"][0]["since"]) == began
        ended = datetime.now(UTC)
        _report(db, "up", ended)
        assert wait_for(lambda: _outage(client)["outages"] == [])
        assert wait_for(lambda: not client.get("/v1/ops/incidents").json()["items"][0]["ongoing"])
        done = [i for i in client.get("/v1/ops/incidents").json()["items"] if i["station_id"] == EDGE]
        assert len(done) == 1 and datetime.fromisoformat(done[0]["ended_at"]) == ended
        assert done[0]["duration_s"] == pytest.approx((ended - began).total_seconds(), abs=0.01)


def test_history_routes_refuse_bad_input(db: str) -> None:
    with _app(db) as client:
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        answer = client.get("/v1/ops/incidents", params={"since": future})
        assert answer.status_code == 422 and "future" in answer.text
        assert client.get("/v1/ops/incidents", params={"since": "yesterday"}).status_code == 422
        assert client.get("/v1/ops/timeline", params={"hours": 0}).status_code == 422
        assert client.get("/v1/ops/timeline", params={"hours": 10_000}).status_code == 422


def test_history_is_pruned(db: str) -> None:
    from zhongdu import storage

    old = datetime.now(UTC) - timedelta(days=40)
    with psycopg.connect(db) as conn:
        storage.ops_history.insert_shares(conn, [(old, "outdoor", "any", 0.9, 1.0, 0)])
        storage.ops_history.open_incident(conn, "bs-old", "down", old)
        storage.ops_history.close_incident(conn, "bs-old", old + timedelta(hours=1))
        assert storage.ops_history.prune(conn, before=datetime.now(UTC) - timedelta(days=30)) == (1, 1)


def _history_round_trip(conn: Any) -> None:
    """Each call its own criterion and site, so it runs beside the rows of the tests above."""
    from zhongdu import storage

    h = storage.ops_history
    tag = uuid.uuid4().hex[:6]
    crit, site = f"test-{tag}", f"bs-x-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    h.insert_shares(conn, [(now - timedelta(hours=8), crit, "any", 0.5, 10.0, 0),
                           (now - timedelta(hours=1), crit, "any", 0.4, 8.0, 1),
                           (now - timedelta(hours=1), crit, "any", 0.4, 8.0, 1)])  # fmt: skip
    rows = [r for r in h.shares(conn, start=now - timedelta(hours=6)) if r["criterion"] == crit]
    # the level before the window, then the window's point; a repeat is ignored
    assert [(r["share"], r["sites_down"]) for r in rows] == [(0.5, 0), (0.4, 1)]
    h.open_incident(conn, site, "down", now - timedelta(minutes=30))
    h.open_incident(conn, site, "silent", now - timedelta(minutes=5))  # still the same incident
    opened = h.open_incidents(conn)
    assert opened[site]["status"] == "silent" and opened[site]["started_at"] == now - timedelta(minutes=30)
    h.update_worst(conn, [(site, 120.0, 3)], criterion="indoor", operator="every_major")
    h.update_worst(conn, [(site, 80.0, 2)], criterion="indoor", operator="every_major")  # the worst is kept
    h.close_incident(conn, site, now - timedelta(hours=1))  # never before it started
    (row,) = [
        r for r in h.incidents(conn, since=now - timedelta(hours=2), limit=1000) if r["station_id"] == site
    ]
    assert row["ended_at"] == row["started_at"] and (row["people_worst"], row["cells_worst"]) == (120.0, 3)
    assert site not in h.open_incidents(conn)


def test_history_storage_on_plain_postgresql(db: str) -> None:
    from zhongdu import storage

    with storage.connect(db) as conn:
        _history_round_trip(conn)


@pytest.mark.timescale
def test_history_storage_on_timescaledb(timescale_schema: tuple[str, str]) -> None:
    from zhongdu import storage

    url, schema = timescale_schema
    with storage.connect(url, schema=schema) as conn:
        storage.migrate(conn)
        assert set(storage.applied_versions(conn).values()) == {"timescale"}
        _history_round_trip(conn)
