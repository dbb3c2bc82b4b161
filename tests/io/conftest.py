"""A fresh store per test: the embedded DuckDB file, and a database on a real InfluxDB 1.x."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from pdm.settings import StoreSettings
from pdm.store import Store, open_store


@pytest.fixture
def embedded(tmp_path) -> Iterator[Store]:
    with open_store(StoreSettings(backend="embedded", path=tmp_path / "store.duckdb")) as s:
        yield s


@pytest.fixture
def influxdb1(influxdb1_url) -> Iterator[Store]:
    db = f"t_{uuid.uuid4().hex[:12]}"
    s = open_store(StoreSettings(backend="influxdb1", url=influxdb1_url, database=db, retries=1, backoff_s=0.05,
                                 timeout_s=20))
    try:
        yield s
    finally:
        s.close()
        requests.post(f"{influxdb1_url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=10)


@pytest.fixture(params=["embedded", "influxdb1"])
def store(request) -> Store:
    """Each back end that tests run against a real server for."""
    return request.getfixturevalue(request.param)
