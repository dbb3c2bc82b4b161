"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def influxdb1_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real InfluxDB 1.x server.

    The one `make test` starts (PDM_TEST_INFLUXDB1_URL); without it, a private
    server for the session (needs ``influxd`` on the PATH), else the test is skipped.
    """
    url = os.environ.get("PDM_TEST_INFLUXDB1_URL")
    if url:
        yield url
        return
    if shutil.which("influxd") is None:
        pytest.skip("no influxd: run `make test`, which installs and starts InfluxDB 1.x")
    from pdm.devtools.influxd import InfluxServer

    server = InfluxServer(tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
