"""Pieces of the API without servers: the serving set, the token buckets, key hashing, time ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from zhongdu.api._live import LiveCoverage
from zhongdu.api._params import time_range
from zhongdu.api._ratelimit import TokenBuckets
from zhongdu.api._security import KEY_PATTERN, hash_secret, new_key, verify_secret

from ._api_fixtures import api_settings, small_city

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
IDS = ["bs-east", "bs-far", "bs-west", "unknown-1"]


@pytest.fixture(scope="module")
def live() -> LiveCoverage:
    service = LiveCoverage(small_city, None, api_settings("postgresql://unused/x", None))
    service.build()
    return service


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(IDS),
                       st.tuples(st.sampled_from(["up", "degraded", "down"]), st.integers(0, 900))))
def test_serving_set_matches_the_rule(live: LiveCoverage, raw: dict[str, tuple[str, int]]) -> None:
    statuses = {sid: (status, NOW - timedelta(seconds=age)) for sid, (status, age) in raw.items()}
    mask = live._serving(statuses, NOW)
    ids = [str(s) for s in live._station_ids]  # sorted
    for sid, serving in zip(ids, mask.tolist(), strict=True):
        if sid in statuses:
            status, seen = statuses[sid]
            expected = status in ("up", "degraded") and (NOW - seen).total_seconds() <= 300
        else:
            expected = True  # every station of the small city is `up` in its layout
        assert serving == expected, sid


def test_token_buckets_refill() -> None:
    buckets = TokenBuckets(60)  # one a second, bursts of 60
    assert all(buckets.take("a", now=0.0) == 0 for _ in range(60))
    assert buckets.take("a", now=0.0) == pytest.approx(1.0)
    assert buckets.take("b", now=0.0) == 0  # clients are independent
    assert buckets.take("a", now=0.5) == pytest.approx(0.5)
    assert buckets.take("a", now=1.0) == 0


def test_key_hashing() -> None:
    key_id, secret, key = new_key()
    assert KEY_PATTERN.match(key) and key.startswith(f"zd_{key_id}_")
    stored = hash_secret(secret)
    assert secret not in stored and verify_secret(secret, stored)
    assert not verify_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert not verify_secret(secret, "md5$nonsense") and not verify_secret(secret, "scrypt$x$y")
    assert hash_secret(secret) != stored  # salted


def test_time_range_rules() -> None:
    start, end = time_range(None, NOW, default_span=timedelta(hours=6), max_span=timedelta(days=2))
    assert (start, end) == (NOW - timedelta(hours=6), NOW)
    naive = datetime(2026, 1, 1, 0, 0)
    assert time_range(naive, NOW, default_span=timedelta(1), max_span=timedelta(400))[0].tzinfo is UTC
    for bad in ((NOW, NOW), (NOW - timedelta(days=3), NOW), (datetime(1, 1, 1, tzinfo=UTC), NOW)):
        with pytest.raises(HTTPException) as info:
            time_range(*bad, default_span=timedelta(1), max_span=timedelta(days=2))
        assert info.value.status_code == 422
