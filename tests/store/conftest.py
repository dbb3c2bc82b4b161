"""Fixtures that give the contract suite one store of each back end.

- embedded: a DuckDB file in the test's tmp dir.
- influxdb1: the real InfluxDB 1.x that `make test` starts (PDM_TEST_INFLUXDB1_URL);
  without it, a private server is started for the session. Each test gets its
  own database.
- influxdb2: a local server replaying InfluxDB 2.x's wire format, one per test;
  plus a real 2.x when PDM_TEST_INFLUXDB2_URL (+ _TOKEN, _ORG, _BUCKET) is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from pydantic import SecretStr

from pdm.settings import StoreSettings
from pdm.store import Store, open_store

BACKENDS = ["embedded", "influxdb1", "influxdb2"]
if os.environ.get("PDM_TEST_INFLUXDB2_URL"):
    BACKENDS.append("influxdb2-real")


# influxdb1_url (a real InfluxDB 1.x server) comes from tests/conftest.py.


def _settings(backend: str, request: pytest.FixtureRequest, tmp_path) -> StoreSettings:
    fast = dict(retries=1, backoff_s=0.05, timeout_s=20)
    if backend == "embedded":
        return StoreSettings(backend="embedded", path=tmp_path / "store.duckdb")
    if backend == "influxdb1":
        url = request.getfixturevalue("influxdb1_url")
        return StoreSettings(backend="influxdb1", url=url, database=f"t_{uuid.uuid4().hex[:12]}", **fast)
    if backend == "influxdb2":
        from tests.fakes.influxdb2_server import FakeInfluxDB2

        server = FakeInfluxDB2(token="t0ken-secret", org="pdm", bucket="pdm")
        server.start()
        request.addfinalizer(server.stop)
        return StoreSettings(
            backend="influxdb2", url=server.url, org="pdm", bucket="pdm",
            token=SecretStr("t0ken-secret"), **fast,
        )
    return StoreSettings(
        backend="influxdb2",
        url=os.environ["PDM_TEST_INFLUXDB2_URL"],
        org=os.environ.get("PDM_TEST_INFLUXDB2_ORG", ""),
        bucket=os.environ.get("PDM_TEST_INFLUXDB2_BUCKET", "pdm"),
        token=SecretStr(os.environ.get("PDM_TEST_INFLUXDB2_TOKEN", "")),
        **fast,
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A fresh, empty store of each back end."""
    backend = request.param
    settings = _settings(backend, request, tmp_path)
    s = open_store(settings)
    if backend == "influxdb2-real":
        s.delete(s.measurements(), "1677-09-22", "2262-04-10")
    try:
        yield s
    finally:
        s.close()
        if backend == "influxdb1":
            requests.post(f"{settings.url}/query", params={"q": f'DROP DATABASE "{settings.database}"'}, timeout=10)
