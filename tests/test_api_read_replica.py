"""ZHONGDU_DATABASE_READ_URL: the API's GET requests read from the replica, writes go to the primary.

Against the real PostgreSQL: the "replica" is a second database with the same schema and different
rows, so every answer shows which one served it (streaming replication itself is PostgreSQL's job).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from zhongdu import storage

from ._api_fixtures import api_settings, make_key, running_app

pytestmark = [pytest.mark.postgres]


@pytest.fixture(scope="module")
def replica_url(pg_server_url: str, pg_migrated: str) -> Iterator[str]:
    name = f"zt_replica_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(pg_server_url)._replace(path=f"/{name}"))
    try:
        with storage.connect(url) as conn:
            storage.migrate(conn)
            conn.execute("INSERT INTO devices (device_id, kind) VALUES ('seen-on-replica', 'air')")
            conn.commit()
        yield url
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_reads_go_to_the_replica_and_writes_to_the_primary(pg_migrated: str, replica_url: str) -> None:
    settings = api_settings(pg_migrated, None, database_read_url=replica_url)
    with running_app(settings, live=False) as client:
        assert client.get("/v1/devices/seen-on-replica").status_code == 200
        operator = make_key(client, "operator")  # keys are written to, and checked on, the primary
        created = client.post(
            "/v1/devices", json={"device_id": "written-1", "kind": "air"}, headers={"X-API-Key": operator}
        )
        assert created.status_code == 201, created.text
        assert client.get("/v1/devices/written-1").status_code == 404  # not replicated in this test
    with psycopg.connect(pg_migrated) as conn:
        assert conn.execute("SELECT count(*) FROM devices WHERE device_id = 'written-1'").fetchone() == (1,)
        assert conn.execute(
            "SELECT count(*) FROM devices WHERE device_id = 'seen-on-replica'"
        ).fetchone() == (0,)
    with running_app(api_settings(pg_migrated, None), live=False) as client:  # no replica: one pool
        assert client.get("/v1/devices/written-1").status_code == 200
        assert client.get("/v1/devices/seen-on-replica").status_code == 404
