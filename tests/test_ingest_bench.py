"""`benchmarks/bench_ingest.py` end to end at a small scale: every phase runs, counts rows and reports.

The numbers themselves are the benchmark's business (docs/performance.md); this checks that the command works
on a fresh clone (private Mosquitto, fresh database, C publishers, extra worker process) and that
its bookkeeping is right: zero loss is a row count, the ratio is capacity over naive, and the
benchmark database is dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ingest.py"
_spec = importlib.util.spec_from_file_location("bench_ingest", SCRIPT)
assert _spec is not None and _spec.loader is not None
_bench = sys.modules["bench_ingest"] = importlib.util.module_from_spec(_spec)  # dataclasses need it
_spec.loader.exec_module(_bench)


def _bench_databases(server: str) -> set[str]:
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'zhongdu_bench_%'").fetchall()
    return {r[0] for r in rows}


def test_small_run_has_every_phase_and_loses_nothing(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other runs on the same server create and drop their own benchmark databases meanwhile, so
    # the check is on the names this run created (the real function, recorded).
    created: list[str] = []
    make_database = _bench._fresh_database

    def recording(server: str) -> str:
        url = make_database(server)
        created.append(urlsplit(url).path.lstrip("/"))
        return url

    monkeypatch.setattr(_bench, "_fresh_database", recording)
    logged: list[str] = []
    results = _bench.run(
        server=pg_server_url, rate=300, seconds=1.5, records=3, half_seconds=1, naive_seconds=3,
        publishers=1, workers=2, capacity_rate=600, capacity_seconds=1.5, log=logged.append,
    )  # fmt: skip
    for phase, rate in (("full", 300), ("half", 150), ("capacity", 600)):
        r = results[phase]
        assert r["offered_msgs_per_s"] == rate
        assert r["messages"] > 0 and r["committed_messages"] == r["messages"]
        assert r["rows_in_database"] == r["rows_expected"] == r["messages"] * 3  # counted per phase
        assert r["lost"] == 0 and r["rejected"] == 0
        assert 0 < r["latency_p50_s"] <= r["latency_p99_s"] < 5
    assert results["zero_loss"] is True
    assert results["sustained"] is True  # 300 msg/s is far below what two workers take
    assert results["capacity"]["saturated"] is False  # nor can 600 msg/s saturate them
    naive = results["naive"]["msgs_per_s"]
    assert naive > 0
    assert results["ratio_vs_naive"] == round(results["capacity"]["msgs_per_s"] / naive, 1)
    assert any("capacity" in line for line in logged)
    assert created and not set(created) & _bench_databases(pg_server_url)  # its databases are gone


def test_cli_prints_json_and_refuses_bad_records(pg_server_url: str) -> None:
    with pytest.raises(Exception, match="--records must be"):
        _bench.run(
            server=pg_server_url, rate=100, seconds=1, records=99, half_seconds=1, naive_seconds=1,
            publishers=1,
        )  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert "--capacity-rate" in out.stdout and "--naive-seconds" in out.stdout
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--database-url", pg_server_url,
         "--rate", "200", "--seconds", "1", "--records", "2", "--half-seconds", "1",
         "--naive-seconds", "1", "--capacity-rate", "0", "--workers", "1", "--publishers", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert "capacity" not in results and results["zero_loss"] is True
    assert results["full"]["rows_in_database"] == results["full"]["messages"] * 2
