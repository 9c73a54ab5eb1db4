"""Grafana provisioning (infra/deploy/grafana): Grafana's file format checked, the compose mounts
match the provider paths, and every SQL query of every dashboard runs on a real migrated
PostgreSQL with Grafana's macros expanded; Prometheus queries name metrics the ingester exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from psycopg.types.json import Jsonb

from zhongdu.ingest._prometheus import IngestMetrics

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "infra" / "deploy" / "grafana"
DATASOURCE_TYPES = {"grafana-postgresql-datasource", "prometheus"}
PANEL_TYPES = {"timeseries", "table", "stat", "bargauge", "gauge", "barchart", "text", "state-timeline"}
NOW = datetime.now(UTC).replace(microsecond=0)
RANGE = (NOW - timedelta(hours=6), NOW)


def _datasources() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "zhongdu.yaml").read_text())
    assert doc["apiVersion"] == 1
    sources = {d["uid"]: d for d in doc["datasources"]}
    assert len(sources) == len(doc["datasources"])
    for source in sources.values():
        assert {"name", "uid", "type", "access", "url"} <= set(source), source
        assert source["type"] in DATASOURCE_TYPES and source["access"] == "proxy"
    assert sum(bool(s.get("isDefault")) for s in sources.values()) == 1
    return sources


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_provisioning_files_follow_grafanas_format_and_fit_the_compose_file() -> None:
    sources = _datasources()
    pg = sources["zhongdu-pg"]
    assert pg["jsonData"]["database"] == "zhongdu" and "password" in pg["secureJsonData"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "zhongdu.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith(
        "/var/lib/grafana/dashboards"
    )
    compose = yaml.safe_load((REPO / "infra" / "deploy" / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if m.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    env = grafana["environment"]
    for name in re.findall(
        r"\$\{(\w+)\}", (GRAFANA / "provisioning" / "datasources" / "zhongdu.yaml").read_text()
    ):
        assert name in env, name  # every variable the datasource file expands is set
    assert "prometheus:9090" in sources["zhongdu-prom"]["url"] and "prometheus" in compose["services"]


def test_the_four_dashboards_are_well_formed() -> None:
    sources = _datasources()
    dashboards = _dashboards()
    assert set(dashboards) == {
        "park-readings.json", "ingest-health.json", "coverage-by-district.json", "station-status.json"
    }  # fmt: skip
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, dash in dashboards.items():
        assert {"uid", "title", "panels", "schemaVersion", "time", "templating"} <= set(dash), name
        assert dash["schemaVersion"] >= 36 and len(dash["uid"]) <= 40
        ids = [p["id"] for p in dash["panels"]]
        assert len(set(ids)) == len(ids), name
        variables = {v["name"] for v in dash["templating"]["list"]}
        for panel in dash["panels"]:
            assert panel["type"] in PANEL_TYPES, (name, panel["title"])
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            assert panel["datasource"]["uid"] in sources
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in sources and target["refId"]
                query = target.get("rawSql") or target.get("expr")
                assert query, (name, panel["title"])
                used = set(re.findall(r"\$(?!__)(\w+)", query)) | set(
                    re.findall(r"\$(?!__)(\w+)", panel["title"])
                )
                assert used <= variables, (name, panel["title"], used - variables)


def _expand(query: str) -> str:
    """Grafana's PostgreSQL macros and this project's template variables, as Grafana expands them."""
    start, end = (f"'{t.isoformat()}'::timestamptz" for t in RANGE)
    query = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {start} AND {end}", query)
    seconds = {"m": 60, "h": 3600}

    def group(match: re.Match[str]) -> str:
        column, amount, unit = match[1], int(match[2]), match[3]
        step = amount * seconds[unit]
        return f'to_timestamp(floor(extract(epoch from {column}) / {step}) * {step}) AS "time"'

    query = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*(\d+)([mh])\)", group, query)
    query = query.replace("$metric", "pm2_5").replace("$model", "disk")
    query = query.replace("$device", "'air-1','air-2'")
    assert "$" not in query, query
    return query


def _seed(conn: psycopg.Connection) -> None:
    conn.execute(
        "TRUNCATE readings, rejected_messages, coverage_snapshots, entity_status, station_telemetry, stations,"
        " devices CASCADE"
    )
    for minute in range(30):
        t = NOW - timedelta(minutes=minute)
        for device in ("air-1", "air-2"):
            conn.execute(
                "INSERT INTO readings (time, device_id, metric, value, unit) VALUES (%s, %s, 'pm2_5', %s, 'ug/m3')",
                (t, device, 10.0 + minute),
            )
    conn.execute("INSERT INTO devices (device_id, kind) VALUES ('air-1', 'air'), ('air-2', 'air')")
    conn.execute(
        "INSERT INTO rejected_messages (received_at, topic, payload, payload_size, reason, detail)"
        " VALUES (%s, 'zhongdu/v1/park/air-1/senml', '\\x5b5d', 2, 'conflicting_value', 'x')",
        (NOW - timedelta(minutes=5),),
    )
    districts = [{"district": "西屯區", "population": 230000.0, "covered": 228000.0, "share": 0.991}]
    conn.execute(
        "INSERT INTO coverage_snapshots (time, model, population_total, population_covered, share,"
        " stations_serving, districts) VALUES (%s, 'disk', 230000, 228000, 0.991, 40, %s)",
        (NOW - timedelta(minutes=10), Jsonb(districts)),
    )
    conn.execute("INSERT INTO stations (station_id, name) VALUES ('TC-1', 'Taichung 1'), ('TC-2', NULL)")
    conn.execute(
        "INSERT INTO entity_status (kind, entity_id, status, connection, source, observed_at)"
        " VALUES ('bs', 'TC-1', 'degraded', 'online', 'telemetry', %s)",
        (NOW - timedelta(minutes=1),),
    )
    conn.execute(
        "INSERT INTO station_telemetry (time, station_id, sector_id, status, prb_utilisation, active_users)"
        " VALUES (%s, 'TC-1', '1', 'degraded', 0.8, 30)",
        (NOW - timedelta(minutes=2),),
    )
    conn.commit()


@pytest.mark.postgres
def test_every_dashboard_query_runs_on_the_database(pg_migrated: str) -> None:
    with psycopg.connect(pg_migrated) as conn:
        _seed(conn)
        ran = 0
        for name, dash in _dashboards().items():
            queries = [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"]]
            for panel in dash["panels"]:
                queries += [(panel["title"], t["rawSql"]) for t in panel["targets"] if "rawSql" in t]
            for title, query in queries:
                try:
                    rows = conn.execute(_expand(query).encode()).fetchall()
                except psycopg.Error as exc:
                    pytest.fail(f"{name} / {title}: {exc}")
                assert rows, f"{name} / {title}: no rows on the seeded data"
                conn.rollback()
                ran += 1
        assert ran >= 15


def test_prometheus_panels_use_metrics_the_ingester_exports() -> None:
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    for counter, label in ((metrics.messages, "park"), (metrics.rows, "readings"), (metrics.rejected, "x")):
        counter.labels(label)  # labelled series appear once they have a child
    exported = set(re.findall(r"^(zhongdu_ingest_\w+?)(?:\{| )", generate_latest(registry).decode(), re.M))
    exported |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported}
    used = set()
    for dash in _dashboards().values():
        for panel in dash["panels"]:
            for target in panel["targets"]:
                used |= set(re.findall(r"zhongdu_ingest_\w+", target.get("expr", "")))
    assert used and used <= exported, used - exported
