"""Request limits: bodies over ZHONGDU_API_MAX_BODY_BYTES get a 413 with a message (declared or
streamed), ranges and page sizes outside their bounds a 422 that names the bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._api_fixtures import api_settings, make_key, running_app

pytestmark = [pytest.mark.postgres]
LIMIT = 4096


@pytest.fixture(scope="module")
def client(pg_migrated: str) -> Iterator[Any]:
    with running_app(api_settings(pg_migrated, None, api_max_body_bytes=LIMIT), live=False) as client:
        yield client


def test_a_declared_oversized_body_is_refused_before_parsing(client: Any) -> None:
    operator = make_key(client, "operator")
    device = {"device_id": "big-1", "kind": "air", "name": "x" * (LIMIT * 2)}
    answer = client.post("/v1/devices", json=device, headers={"X-API-Key": operator})
    assert answer.status_code == 413
    assert str(LIMIT) in answer.json()["detail"]
    small = client.post(
        "/v1/devices", json={"device_id": "small-1", "kind": "air"}, headers={"X-API-Key": operator}
    )
    assert small.status_code == 201, small.text


def test_a_streamed_oversized_body_is_cut_off(client: Any) -> None:
    operator = make_key(client, "operator")

    def chunks() -> Iterator[bytes]:
        yield b'{"device_id": "big-2", "kind": "air", "name": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    answer = client.post(
        "/v1/devices", content=chunks(), headers={"X-API-Key": operator, "Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert client.get("/v1/devices/big-2", headers={"X-API-Key": operator}).status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/v1/devices", {"limit": 1001}, "less than or equal to 1000"),
        ("/v1/devices", {"offset": -1}, "greater than or equal to 0"),
        ("/v1/devices/d/history", {"metric": "pm2_5", "bucket": "1m", "from": "2026-01-01T00:00:00Z",
                                   "to": "2026-01-05T00:00:00Z"}, "exceeds the maximum"),
        ("/v1/devices/d/history", {"metric": "pm2_5", "from": "1900-01-01T00:00:00Z"}, "must lie between"),
    ],
)  # fmt: skip
def test_ranges_outside_their_bounds_are_422_naming_the_bound(
    client: Any, path: str, params: dict[str, Any], needle: str
) -> None:
    viewer = make_key(client, "viewer")
    answer = client.get(path, params=params, headers={"X-API-Key": viewer})
    assert answer.status_code == 422, answer.text
    assert needle in answer.text
