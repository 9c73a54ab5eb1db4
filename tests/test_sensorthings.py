"""The park as an OGC SensorThings API 1.1 service, against real PostgreSQL: written by the ingest
writer (which keeps `datastream_latest`), read by our own requests and by an off-the-shelf
SensorThings client (FROST's Python client), with the queries Civil IoT Taiwan's tutorials use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from zhongdu import storage
from zhongdu.api._sta_query import QueryError, parse_filter, parse_options
from zhongdu.storage._telemetry import BatchRows, register_device, write_batch

from ._api_fixtures import api_settings, running_app, served

pytestmark = [pytest.mark.postgres]

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
MINUTES = 120


def _seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        register_device(conn, "air-001", "air", name="水湳 gate", lon=120.6441234567, lat=24.1781234567)
        register_device(conn, "noise-001", "noise", name=None, lon=120.65, lat=24.18)
        register_device(conn, "sec-001", "security")  # no position: a Thing without a Location
    with psycopg.connect(url, autocommit=True) as conn:
        # two batches, the later one first: the latest value must follow time, not arrival
        late = [(T0 + timedelta(minutes=m), "air-001", "pm2_5", float(m % 50), "ug/m3", None)
                for m in range(MINUTES // 2, MINUTES)]
        early = [(T0 + timedelta(minutes=m), "air-001", "pm2_5", float(m % 50), "ug/m3", None)
                 for m in range(MINUTES // 2)]
        write_batch(conn, BatchRows(readings=late))
        write_batch(conn, BatchRows(readings=early + [
            (T0 + timedelta(minutes=m), "noise-001", "noise_laeq", 50.0 + m % 7, "dB", None) for m in range(MINUTES)
        ] + [(T0 + timedelta(minutes=5), "sec-001", "intrusion_state", None, None, "closed")]))
        write_batch(conn, BatchRows(readings=late[:3]))  # a replay: inserts nothing, moves nothing


@pytest.fixture(scope="module")
def client(pg_migrated: str) -> Any:
    _seed(pg_migrated)
    with running_app(api_settings(pg_migrated, None), live=False) as client:
        yield client


def _get(client: Any, path: str, status: int = 200) -> Any:
    answer = client.get(f"/sta/v1.1{path}")
    assert answer.status_code == status, (path, answer.text)
    return answer.json()


def test_service_root_lists_the_entity_sets(client: Any) -> None:
    root = _get(client, "")
    names = {item["name"] for item in root["value"]}
    assert names == {"Things", "Locations", "Sensors", "ObservedProperties", "Datastreams", "Observations"}
    assert all(item["url"].startswith("http://testserver/sta/v1.1/") for item in root["value"])


def test_things_with_locations_and_datastreams_expanded_as_civil_iot_reads_them(client: Any) -> None:
    body = _get(client, "/Things?$expand=Locations,Datastreams&$count=true")
    assert body["@iot.count"] == 3
    things = {t["@iot.id"]: t for t in body["value"]}
    air = things["air-001"]
    assert air["name"] == "水湳 gate" and air["properties"]["kind"] == "air"
    assert air["Locations"][0]["location"] == {"type": "Point", "coordinates": [120.644123, 24.178123]}
    assert [d["properties"]["metric"] for d in air["Datastreams"]] == ["pm2_5"]
    assert things["sec-001"]["Locations"] == []
    assert air["@iot.selfLink"] == "http://testserver/sta/v1.1/Things('air-001')"
    selected = _get(client, "/Things?$select=name,properties&$filter=name eq '水湳 gate'")
    assert selected["value"] == [{"name": "水湳 gate", "properties": air["properties"]}]


def test_filter_on_names_and_navigation_paths(client: Any) -> None:
    streams = _get(client, "/Datastreams?$filter=ObservedProperty/name eq 'noise_laeq'")["value"]
    assert [s["properties"]["device_id"] for s in streams] == ["noise-001"]
    assert streams[0]["unitOfMeasurement"]["symbol"] == "dB"
    by_thing = _get(client, "/Datastreams?$filter=Thing/properties/kind eq 'air' or startswith(name, 'sec')")
    assert sorted(s["properties"]["metric"] for s in by_thing["value"]) == ["intrusion_state", "pm2_5"]
    things = _get(client, "/Things?$filter=Datastreams/ObservedProperty/name eq 'pm2_5'")["value"]
    assert [t["@iot.id"] for t in things] == ["air-001"]
    assert _get(client, "/Things?$filter=substringof('noise', name)")["value"][0]["@iot.id"] == "noise-001"


def test_observations_filtered_ordered_and_paged_with_next_links(client: Any) -> None:
    stream = _get(client, "/Datastreams?$filter=properties/metric eq 'pm2_5'")["value"][0]
    path = f"/Datastreams({stream['@iot.id']})/Observations"
    since = (T0 + timedelta(minutes=100)).isoformat().replace("+00:00", "Z")
    body = _get(client, f"{path}?$filter=phenomenonTime ge {since} and result gt 10&$orderby=phenomenonTime asc"
                        "&$top=5&$count=true")
    # minutes 100..119 with value m % 50 > 10: 100..119 -> 0..19 -> 11..19 qualify (9)
    assert body["@iot.count"] == 9
    times = [o["phenomenonTime"] for o in body["value"]]
    assert times == sorted(times) and len(times) == 5
    assert all(o["result"] > 10 for o in body["value"])
    nxt = client.get(body["@iot.nextLink"]).json()
    assert len(nxt["value"]) == 4 and "@iot.nextLink" not in nxt
    assert nxt["value"][0]["phenomenonTime"] > times[-1]
    # an Observation by its id, and back to its Datastream
    one = _get(client, f"/Observations('{body['value'][0]['@iot.id']}')")
    assert one["result"] == body["value"][0]["result"]
    assert _get(client, f"/Observations('{one['@iot.id']}')/Datastream")["@iot.id"] == stream["@iot.id"]


def test_the_latest_observation_of_every_datastream(client: Any) -> None:
    body = _get(client, "/Datastreams?$expand=Observations($orderby=phenomenonTime desc;$top=1)")
    latest = {d["properties"]["metric"]: d["Observations"] for d in body["value"]}
    last = T0 + timedelta(minutes=MINUTES - 1)
    assert latest["pm2_5"][0]["phenomenonTime"] == last.isoformat().replace("+00:00", "Z")
    assert latest["pm2_5"][0]["result"] == float((MINUTES - 1) % 50)
    assert latest["noise_laeq"][0]["result"] == 50.0 + (MINUTES - 1) % 7
    assert latest["intrusion_state"][0]["result"] == "closed"
    # the same answer as the readings' own newest row
    stream = next(d for d in body["value"] if d["properties"]["metric"] == "pm2_5")
    newest = _get(client, f"/Datastreams({stream['@iot.id']})/Observations?$top=1")["value"][0]
    assert newest == latest["pm2_5"][0]
    assert stream["phenomenonTime"] == f"2026-12-01T00:00:00Z/{newest['phenomenonTime']}"


def test_nested_expand_and_navigation(client: Any) -> None:
    thing = _get(client, "/Things('air-001')?$expand=Datastreams($expand=Observations($top=2),ObservedProperty)")
    stream = thing["Datastreams"][0]
    assert len(stream["Observations"]) == 2 and "Observations@iot.nextLink" in stream
    assert stream["ObservedProperty"]["description"] == "PM2.5 mass concentration"
    assert _get(client, "/Things('air-001')/Locations")["value"][0]["@iot.id"] == "air-001"
    assert _get(client, "/Things('air-001')/name") == {"name": "水湳 gate"}
    sensors = _get(client, "/Sensors")["value"]
    assert {s["@iot.id"] for s in sensors} == {"air", "noise", "security"}
    assert len(_get(client, "/Sensors('air')/Datastreams")["value"]) == 1


def test_bad_queries_get_a_400_that_says_why_and_unknown_ids_a_404(client: Any) -> None:
    for query, words in (
        ("/Things?$filter=name eq", "unexpected end"),
        ("/Things?$filter=nosuch eq 1", "no property 'nosuch'"),
        ("/Things?$top=-1", "$top must be between"),
        ("/Things?$bogus=1", "unknown query option $bogus"),
        ("/Datastreams(1)/Observations?$filter=Datastream/name eq 'x'", "not served"),
        ("/Things?$expand=Observations", "no navigation property 'Observations'"),
    ):
        assert words in _get(client, query, 400)["detail"], query
    assert "no Thing 'nope'" in _get(client, "/Things('nope')", 404)["detail"]
    _get(client, "/Nothing", 404)
    _get(client, "/Datastreams(999)", 404)


def test_filter_parser_reads_odata_as_written() -> None:
    tree = parse_filter("phenomenonTime ge 2026-12-01T00:00:00.000Z and not (result lt 3.5 or name eq 'it''s')")
    assert type(tree).__name__ == "Logical" and tree.op == "and"
    options = parse_options({"$expand": "Datastreams($filter=name eq 'a;b';$expand=Observations($top=1))"})
    assert options.expand[0].options.expand[0].options.top == 1
    with pytest.raises(QueryError, match="position"):
        parse_filter("name eq 'x' 'y'")


@pytest.mark.filterwarnings("ignore:furl.pathstr is deprecated:DeprecationWarning")  # inside the client
def test_an_off_the_shelf_sensorthings_client_reads_the_park(pg_migrated: str, client: Any) -> None:
    """FROST's Python client against a real server socket."""
    from frost_sta_client import SensorThingsService

    from zhongdu.api import create_app

    app = create_app(api_settings(pg_migrated, None), live_coverage=False)
    with served(app) as base:
        service = SensorThingsService(f"{base}/sta/v1.1")
        things = list(service.things().query().expand("Locations").list())
        assert {t.id for t in things} == {"air-001", "noise-001", "sec-001"}
        streams = list(service.datastreams().query().filter("ObservedProperty/name eq 'pm2_5'").list())
        assert len(streams) == 1
        observations = service.observations().query()
        observations.parent = streams[0]
        page = list(observations.top(50).orderby("phenomenonTime", "desc").list())
        assert len(page) == MINUTES  # the client followed @iot.nextLink to the end
        assert page[0].result == float((MINUTES - 1) % 50)
        thing = service.things().find("air-001")
        assert thing.name == "水湳 gate"

def test_ingest_keeps_datastream_latest_in_step_with_readings(pg_migrated: str, client: Any) -> None:
    with storage.connect(pg_migrated) as conn:
        rows = conn.execute(
            "SELECT l.device_id, l.metric, l.last_time, l.first_time, r.last, r.first FROM datastream_latest l"
            " JOIN (SELECT device_id, metric, max(time) AS last, min(time) AS first FROM readings"
            " GROUP BY 1, 2) r USING (device_id, metric)"
        ).fetchall()
    assert len(rows) == 3
    assert all(row[2] == row[4] and row[3] == row[5] for row in rows), rows
