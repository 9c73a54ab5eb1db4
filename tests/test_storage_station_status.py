"""Which station statuses live coverage sees: radio status from telemetry, and a fired will."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zhongdu import storage


@pytest.mark.postgres
def test_status_topic_alone_says_nothing_unless_offline(pg_migrated: str) -> None:
    seen = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    with storage.connect(pg_migrated) as conn:
        conn.execute(
            "INSERT INTO entity_status (kind, entity_id, status, connection, source, observed_at) VALUES"
            " ('bs', 'tele-up', 'degraded', 'online', 'telemetry', %(t)s),"
            " ('bs', 'only-online', 'online', 'online', 'status', %(t)s),"
            " ('bs', 'only-offline', 'offline', 'offline', 'status', %(t)s),"
            " ('park', 'aq-1', 'online', 'online', 'status', %(t)s)",
            {"t": seen},
        )
        conn.commit()
        statuses = storage.queries.station_statuses(conn)
    assert statuses == {"tele-up": ("degraded", seen), "only-offline": ("down", seen)}
