"""The InfluxDB 1.x back end against private, real servers: crashes, outages, auth.

Each server test starts its own ``influxd`` (pdm.devtools.influxd) in tmp_path,
so it can be killed and restarted without touching the shared one.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback

import numpy as np
import pandas as pd
import pytest
import requests
from pydantic import SecretStr

from pdm.devtools.influxd import InfluxServer, free_port
from pdm.store import (
    AuthenticationError,
    Point,
    PointsRejectedError,
    StoreError,
    StoreUnavailableError,
)
from pdm.store.influxdb1 import InfluxDB1Store, _parse_values, parse_series_key

needs_influxd = pytest.mark.skipif(shutil.which("influxd") is None, reason="no influxd installed")

T0 = pd.Timestamp("2024-03-01T00:00:00Z")
TAGS = ["plant", "machine", "sensor"]


def big_frame(machines: int = 40, per_machine: int = 1500) -> pd.DataFrame:
    n = machines * per_machine
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "plant": "p1",
            "machine": [f"m{i % machines:02d}" for i in range(n)],
            "sensor": "de",
            "rms": rng.random(n),
            "peak": rng.random(n) * 10,
        },
        index=T0 + pd.to_timedelta(np.arange(n) // machines, unit="s"),
    )


def keys_of_body(body: bytes) -> set[tuple[str, int]]:
    """(machine, time) of every line of a line-protocol body (plain machine ids only)."""
    out = set()
    for line in body.decode().splitlines():
        head, _, ts = line.rsplit(" ", 2)
        tags = dict(kv.split("=", 1) for kv in head.split(",")[1:])
        out.add((tags["machine"], int(ts)))
    return out


def stored_keys(store: InfluxDB1Store) -> list[tuple[str, int]]:
    got = store.read("vibration")
    return list(zip(got["machine"], got.index.asi8.tolist(), strict=True))


@pytest.fixture
def server(tmp_path):
    srv = InfluxServer(tmp_path / "influxd")
    srv.start()
    yield srv
    srv.stop()


# ----------------------------------------------------------------- crash
@pytest.mark.influxdb1
@needs_influxd
def test_a_write_killed_midway_keeps_acknowledged_chunks_and_a_rerun_completes_it(server):
    frame = big_frame()  # 60,000 points in 30 chunks of 2,000 lines
    n = len(frame)
    store = InfluxDB1Store(server.url, database="crash", batch_lines=2000, retries=0, backoff_s=0.01, timeout_s=5)
    acked: list[bytes] = []
    lock = threading.Lock()
    enough = threading.Event()
    post = store._post

    def spying_post(path, what, **kwargs):
        resp = post(path, what, **kwargs)
        if path == "/write" and resp.status_code == 204:
            with lock:
                acked.append(kwargs["data"])
                if len(acked) >= 8:
                    enough.set()
        return resp

    store._post = spying_post  # type: ignore[method-assign]
    outcome: dict[str, object] = {}

    def writer():
        try:
            outcome["result"] = store.write(frame, "vibration", TAGS)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=writer)
    thread.start()
    assert enough.wait(30), "the write never got going"
    server.kill()
    with lock:
        acknowledged = list(acked)
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), StoreUnavailableError), outcome
    assert server.url in str(outcome["error"])
    assert 8 <= len(acknowledged) < n // 2000
    store.close()

    server.start()  # same data dir and port: the WAL is replayed
    after = InfluxDB1Store(server.url, database="crash", retries=3, backoff_s=0.05)
    survived = set(stored_keys(after))
    for body in acknowledged:
        missing = keys_of_body(body) - survived
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {sorted(missing)[:3]}"

    after.write(frame, "vibration", TAGS)  # the re-run
    keys = stored_keys(after)
    assert len(keys) == n and len(set(keys)) == n
    got = after.read("vibration", ["m03"])
    want = frame[frame["machine"] == "m03"]
    np.testing.assert_array_equal(got["rms"].to_numpy(), want["rms"].to_numpy())
    np.testing.assert_array_equal(got.index.asi8, want.index.as_unit("ns").asi8)
    after.close()


# ---------------------------------------------------------------- outage
@pytest.mark.influxdb1
def test_a_server_that_is_not_there_is_unavailable_and_the_password_stays_secret(caplog):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = "s3cret-Pa55word"
    store = InfluxDB1Store(
        url, database="pdm", username="admin", password=SecretStr(secret), retries=2, backoff_s=0.01, timeout_s=2
    )
    caplog.set_level(logging.DEBUG)
    attempts = [
        store.ping,
        lambda: store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)]),
        lambda: store.read("vibration", "m1"),
        lambda: store.machines(),
        lambda: store.delete("vibration", T0, T0 + pd.Timedelta("1h")),
    ]
    for attempt in attempts:
        with pytest.raises(StoreUnavailableError) as err:
            attempt()
        assert url in str(err.value)
        assert "3 attempt" in str(err.value)  # retried twice
        shown = "".join(traceback.format_exception(err.value))
        assert secret not in shown
    assert secret not in caplog.text
    assert secret not in repr(store)
    store.close()


# ------------------------------------------------------------------ auth
@pytest.mark.influxdb1
@needs_influxd
def test_wrong_credentials_are_an_authentication_error_without_the_password(tmp_path, caplog):
    srv = InfluxServer(tmp_path / "auth", auth=True)
    srv.start()
    try:
        srv.create_admin("admin", "right-Pa55")
        caplog.set_level(logging.DEBUG)
        wrong = "wr0ng-Pa55-xyz"
        bad = InfluxDB1Store(srv.url, database="pdm", username="admin", password=SecretStr(wrong), retries=2,
                             backoff_s=0.01)
        for attempt in (
            bad.ping,
            lambda: bad.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)]),
            lambda: bad.read("vibration", "m1"),
            lambda: bad.measurements(),
        ):
            started = time.monotonic()
            with pytest.raises(AuthenticationError) as err:
                attempt()
            assert time.monotonic() - started < 2, "401 must not be retried"
            assert srv.url in str(err.value)
            assert wrong not in "".join(traceback.format_exception(err.value))
        assert wrong not in caplog.text
        bad.close()

        anonymous = InfluxDB1Store(srv.url, database="pdm", retries=0)
        with pytest.raises(AuthenticationError):
            anonymous.ping()
        anonymous.close()

        good = InfluxDB1Store(srv.url, database="pdm", username="admin", password=SecretStr("right-Pa55"))
        good.ping()
        good.write([Point("vibration", {"machine": "m1"}, {"rms": 1.5}, T0)])  # creates the database
        assert good.read("vibration", "m1")["rms"].tolist() == [1.5]
        good.close()
    finally:
        srv.stop()


# -------------------------------------------------- server-side rejections
@pytest.mark.influxdb1
@needs_influxd
def test_points_the_server_refuses_for_a_stale_field_type_are_named_and_the_rest_written(server):
    ours = InfluxDB1Store(server.url, database="types")
    other = InfluxDB1Store(server.url, database="types")
    ours.write([Point("custom", {"machine": "m0"}, {"other": 1.0}, T0)])  # caches custom's types
    other.write([Point("custom", {"machine": "m1"}, {"level": 1.5}, T0)])  # level is float now
    points = [
        Point("custom", {"machine": "m2"}, {"level": "high"}, T0),
        Point("custom", {"machine": "m3"}, {"other": 2.0}, T0),
        Point("custom", {"machine": "m4"}, {"level": "low", "other": 3.0}, T0),
    ]
    with pytest.raises(PointsRejectedError) as err:
        ours.write(points)
    assert [r.index for r in err.value.rejected] == [0, 2]
    assert all(r.reason.startswith("server: field type conflict") and "level" in r.reason for r in err.value.rejected)
    assert err.value.written == 1
    # (InfluxDB 1.x indexes the series of a refused point all the same, so
    # machines() may list m2 and m4; their data is not there.)
    assert sorted(ours.read("custom")["machine"]) == ["m0", "m1", "m3"]
    # The cache was refreshed: the next bad write is refused before it is sent.
    with pytest.raises(PointsRejectedError) as again:
        ours.write([Point("custom", {"machine": "m5"}, {"level": "mid"}, T0)])
    assert not again.value.rejected[0].reason.startswith("server:")
    ours.close()
    other.close()


@pytest.mark.influxdb1
@needs_influxd
def test_a_missing_database_is_created_on_first_write_and_reads_before_that_are_empty(server):
    store = InfluxDB1Store(server.url, database="fresh-db.1")
    assert store.read("vibration").empty and store.machines() == [] and store.measurements() == []
    store.write(big_frame(machines=3, per_machine=10), "vibration", TAGS)
    assert store.machines() == ["m00", "m01", "m02"]
    assert set(store.sensors()["sensor"]) == {"de"}
    store.close()


@pytest.mark.influxdb1
@needs_influxd
def test_downsampled_integers_and_large_reads_round_trip(server):
    store = InfluxDB1Store(server.url, database="agg", batch_lines=700)
    frame = big_frame(machines=4, per_machine=900)
    frame["count"] = pd.array(np.arange(len(frame)) % 5, dtype="Int64")
    store.write(frame, "vibration", TAGS)
    got = store.read("vibration")
    assert len(got) == len(frame) and got["count"].dtype == "Int64"
    chunks = list(store.iter_read("vibration", ["m01", "m02"], chunk_rows=250))
    assert all(len(c) <= 250 for c in chunks) and sum(map(len, chunks)) == 1800
    mean = store.read("vibration", "m00", every="1min", agg="mean")
    assert mean["count"].dtype == np.float64
    want = frame[frame["machine"] == "m00"]["count"].astype(float).groupby(lambda t: t.floor("1min")).mean()
    np.testing.assert_allclose(mean["count"].to_numpy(), want.to_numpy())
    last = store.read("vibration", "m00", every="1min", agg="last")
    assert last["count"].dtype == "Int64"
    store.close()


# --------------------------------------------------------------------- CLI
@pytest.mark.influxdb1
@needs_influxd
def test_the_cli_starts_a_detached_server_and_stops_it(tmp_path):
    d, env = tmp_path / "cli", tmp_path / "cli" / "env"
    cmd = [sys.executable, "-m", "pdm.devtools.influxd"]
    subprocess.run([*cmd, "start", "--dir", str(d), "--env-file", str(env)], check=True, timeout=60)
    name, _, url = env.read_text().strip().partition("=")
    assert name == "PDM_TEST_INFLUXDB1_URL" and url.startswith("http://127.0.0.1:")
    pid = int((d / "influxd.pid").read_text())
    try:
        assert requests.get(f"{url}/ping", timeout=5).status_code == 204
    finally:
        subprocess.run([*cmd, "stop", "--dir", str(d)], check=True, timeout=60)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ping", timeout=2)
    assert not (d / "influxd.pid").exists()
    try:  # gone, or a zombie waiting for a parent that never reaps
        os.kill(pid, 0)
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        assert state == "Z"
    except ProcessLookupError:
        pass


# ------------------------------------------------------------- unit tests
def test_series_keys_are_split_with_their_escapes():
    assert parse_series_key(r"vib,line=line\ 3\,\ east,machine=a\=b,x=back\slash") == (
        "vib",
        {"line": "line 3, east", "machine": "a=b", "x": "back\\slash"},
    )
    assert parse_series_key("process") == ("process", {})


@pytest.mark.parametrize("rows", [5, 600])
def test_both_decoders_give_the_same_columns(rows):
    """Series big enough take the pyarrow path, small ones json; the columns must not differ."""
    import json

    import pdm.store.influxdb1 as m

    rng = np.random.default_rng(rows)
    values = []
    for i in range(rows):
        f = float(rng.standard_normal() * 10.0 ** int(rng.integers(-30, 30)))
        values.append([
            1_700_000_000_000_000_000 + i,
            None if i % 7 == 0 else f,
            None if i % 5 == 0 else int(rng.integers(-(2**62), 2**62)),
            None if i % 3 == 0 else bool(i % 2),
            int(i) if i % 4 else 0.5,  # a float field that JSON prints as integers
        ])
    columns = ["time", "f", "n", "b", "g"]
    ftypes = {"f": "float", "n": "integer", "b": "boolean", "g": "float"}
    raw = json.dumps(values, separators=(",", ":")).encode()
    n1, fast = _parse_values(columns, raw, ftypes)
    saved, m._msgspec = m._msgspec, None
    try:
        n2, slow = _parse_values(columns, json.loads(raw), ftypes)
    finally:
        m._msgspec = saved
    assert n1 == n2 == rows
    for c in columns:
        pd.testing.assert_series_equal(pd.Series(fast[c]), pd.Series(slow[c]), check_exact=True)


def test_a_url_with_credentials_is_refused():
    with pytest.raises(StoreError) as err:
        InfluxDB1Store("http://admin:pw@127.0.0.1:8086")
    assert "pw" not in str(err.value).replace("password", "")
