"""The InfluxDB 2.x back end at the wire: what it sends, and how it takes failures.

Runs against the local fake (tests/fakes/influxdb2_server.py), which answers
like InfluxDB 2.7 does at the HTTP level.
"""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pytest

from pdm.store import (
    AuthenticationError,
    ConfigurationError,
    Point,
    PointsRejectedError,
    QueryError,
    StoreUnavailableError,
)
from pdm.store.influxdb2 import InfluxDB2Store, _parse_annotated_csv
from tests.fakes.influxdb2_server import FakeInfluxDB2

TOKEN = "t0ken-very-secret-4711"
T0 = pd.Timestamp("2024-03-01T00:00:00Z")
NASTY_IDS = [
    'm"1',
    'a") |> drop(columns: ["_value"]) //',
    "x) or true or (r.machine == y",
    "m1 // comment",
    'back\\slash"quote\\',
    "p_machine0",
    "ütf ☕, spaced = yes",
]


@pytest.fixture
def srv():
    with FakeInfluxDB2(token=TOKEN, org="pdm", bucket="pdm") as server:
        yield server


def make_store(url: str, token: str = TOKEN, **kw) -> InfluxDB2Store:
    opts = dict(org="pdm", bucket="pdm", token=token, retries=2, backoff_s=0.01, timeout_s=5)
    opts.update(kw)
    return InfluxDB2Store(url, **opts)


@pytest.fixture
def store(srv):
    s = make_store(srv.url)
    yield s
    s.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _all_text(exc: BaseException) -> str:
    """The exception's message and those of everything chained to it."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{exc!s} {exc!r}")
        exc = exc.__cause__ or exc.__context__
    return " ".join(parts)


# ------------------------------------------------------------- injection
def test_machine_ids_travel_only_as_query_parameters_and_round_trip(srv, store):
    # ids ending in a backslash are not storable as tags (line protocol); keep the rest
    ids = [m for m in NASTY_IDS if not m.endswith("\\")]
    store.write([Point("vibration", {"machine": m}, {"rms": float(i)}, T0) for i, m in enumerate(ids)])
    store.write([Point("vibration", {"machine": "m1"}, {"rms": 99.0}, T0)])
    srv.clear_requests()

    for i, m in enumerate(ids):
        got = store.read("vibration", m, T0, T0 + pd.Timedelta("1h"))
        assert got["machine"].tolist() == [m]
        assert got["rms"].tolist() == [float(i)]
        hourly = store.read("vibration", [m], T0, T0 + pd.Timedelta("1h"), every="1h", agg="max")
        assert hourly["rms"].tolist() == [float(i)]
    assert sorted(store.machines(["vibration"])) == sorted([*ids, "m1"])
    sensors = store.sensors(ids)
    assert set(sensors["machine"]) == set(ids)

    assert srv.queries, "the back end sent no Flux queries"
    for q in srv.queries:
        for m in ids:
            if m == "p_machine0":  # the name of a parameter: in the text as an identifier, never as data
                continue
            assert m not in q.query, f"machine id {m!r} pasted into Flux:\n{q.query}"
    sent = [v for q in srv.queries for k, v in q.params.items() if k.startswith("p_machine")]
    assert set(ids) <= set(sent)
    assert all(q.params.get("p_bucket") == "pdm" for q in srv.queries)


def test_measurement_and_fields_are_parameters_too(srv, store):
    store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0, "peak": 2.0}, T0)])
    srv.clear_requests()
    got = store.read("vibration", "m1", fields=["peak"])
    assert list(got.columns) == ["machine", "peak"] and got["peak"].tolist() == [2.0]
    (q,) = [q for q in srv.queries if "pivot" in q.query]
    assert '"vibration"' not in q.query and '"peak"' not in q.query
    assert q.params["p_measurement"] == "vibration" and q.params["p_field0"] == "peak"


def test_deleting_machines_with_quotes_and_backslashes_deletes_only_them(srv, store):
    ids = ['m"1', "a\\b", 'q\\"z', "plain"]
    store.write([Point("vibration", {"machine": m}, {"rms": 1.0}, T0) for m in ids])
    store.delete("vibration", T0, T0 + pd.Timedelta("1s"), machines=ids[:3])
    assert store.machines() == ["plain"]
    preds = [r.json()["predicate"] for r in srv.requests if r.path == "/api/v2/delete"]
    assert preds[0] == '_measurement="vibration" AND machine="m\\"1"'
    assert preds[1] == '_measurement="vibration" AND machine="a\\\\b"'


def test_strings_with_newlines_quotes_and_commas_round_trip(store):
    msgs = ["line one\nline two", 'say "hi", ok', "trailing backslash \\", " leading space", "tab\tin"]
    store.write([Point("operator_log", {"machine": "m1"}, {"message": m, "severity": i}, T0 + pd.Timedelta(seconds=i))
                 for i, m in enumerate(msgs)])
    got = store.read("operator_log", "m1")
    assert got["message"].tolist() == msgs
    assert got["severity"].dtype == "Int64" and got["severity"].tolist() == list(range(len(msgs)))


# ------------------------------------------------------------------ auth
def test_a_wrong_token_raises_authentication_error_without_the_token(srv):
    bad = make_store(srv.url, token="wr0ng-" + TOKEN)
    calls = [
        lambda: bad.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)]),
        lambda: bad.read("vibration", "m1"),
        lambda: bad.machines(),
        lambda: bad.delete("vibration", T0, T0 + pd.Timedelta("1h")),
        lambda: bad.ping(),
    ]
    for call in calls:
        with pytest.raises(AuthenticationError) as err:
            call()
        text = _all_text(err.value)
        assert TOKEN not in text and "wr0ng" not in text
        assert srv.url in str(err.value) and "401" in str(err.value)
    # refused at once, not retried
    assert all(r.status == 401 for r in srv.requests if r.path.startswith("/api/v2"))
    assert TOKEN not in repr(bad)


def test_unknown_bucket_is_a_configuration_error(srv):
    s = make_store(srv.url, bucket="nope")
    with pytest.raises(ConfigurationError, match="nope"):
        s.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)])
    with pytest.raises(ConfigurationError, match="nope"):
        s.ping()


# --------------------------------------------------------------- retries
def test_a_write_survives_two_503_answers(srv, store):
    srv.fail_next(2, 503, path="/api/v2/write")
    result = store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.5}, T0)])
    assert result.written == 1 and result.rejected == []
    writes = [r for r in srv.requests if r.path == "/api/v2/write"]
    assert [r.status for r in writes] == [503, 503, 204]
    assert srv.points("vibration")[0]["fields"] == {"rms": 1.5}


def test_queries_retry_429_and_dropped_connections(srv, store):
    store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.5}, T0)])
    srv.fail_next(1, 429, path="/api/v2/query", retry_after=0)
    srv.drop_next(1, path="/api/v2/query")
    assert store.read("vibration", "m1")["rms"].tolist() == [1.5]


def test_an_unreachable_server_raises_store_unavailable_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    s = make_store(url)
    for call in (lambda: s.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)]),
                 lambda: s.read("vibration"),
                 lambda: s.ping()):
        with pytest.raises(StoreUnavailableError) as err:
            call()
        assert url in str(err.value) and "3 attempt" in str(err.value)
        assert TOKEN not in _all_text(err.value)


def test_a_server_that_keeps_failing_raises_store_unavailable(srv, store):
    srv.down = True
    with pytest.raises(StoreUnavailableError, match=srv.url):
        store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)])
    srv.down = False
    srv.fail_next(10, 503)
    with pytest.raises(StoreUnavailableError, match="HTTP 503"):
        store.read("vibration")
    srv.clear_failures()
    store.ping()


def test_a_stopped_server_raises_store_unavailable(srv, store):
    store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)])  # keep-alive connection now open
    url = srv.url
    srv.stop()
    with pytest.raises(StoreUnavailableError) as err:
        store.read("vibration")
    assert url in str(err.value)


# ------------------------------------------------------- server rejections
def test_lines_the_server_cannot_parse_are_rejected_and_the_rest_written(srv, store):
    frame = pd.DataFrame({"machine": ["m1", "m2", "m3"], "rms": [1.0, 2.0, 3.0]},
                         index=pd.date_range(T0, periods=3, freq="1s"))
    bad_line = f"vibration,machine=m2 rms=2.0 {int((T0 + pd.Timedelta('1s')).value)}"
    srv.fail_next(1, 400, path="/api/v2/write", message=f"unable to parse '{bad_line}': bad timestamp")
    result = store.write(frame, "vibration", ["machine"], strict=False)
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "server: bad timestamp")]
    assert result.written == 2
    assert sorted(p["tags"]["machine"] for p in srv.points("vibration")) == ["m1", "m3"]


def test_a_400_that_names_no_line_is_a_query_error(srv, store):
    srv.fail_next(1, 400, path="/api/v2/write", message="something else")
    with pytest.raises(QueryError, match="something else"):
        store.write([Point("vibration", {"machine": "m1"}, {"rms": 1.0}, T0)])


def test_a_type_conflict_found_by_the_server_rejects_those_points_only(srv, store):
    other = make_store(srv.url)
    assert store._known_field_types("custom") == {}  # cached before the other writer
    other.write([Point("custom", {"machine": "m1"}, {"level": 1.5}, T0)])
    with pytest.raises(PointsRejectedError) as err:
        store.write([
            Point("custom", {"machine": "m2"}, {"level": "high"}, T0),
            Point("custom", {"machine": "m3"}, {"count": 3}, T0),
        ])
    assert [r.index for r in err.value.rejected] == [0]
    assert err.value.rejected[0].reason.startswith("server: field type conflict")
    assert err.value.written == 1
    assert store._known_field_types("custom")["level"] == "float"


def test_an_error_table_in_the_stream_is_a_query_error():
    body = (
        b"#datatype,string,long,dateTime:RFC3339,double\r\n#group,false,false,false,false\r\n"
        b"#default,_result,,,\r\n,result,table,_time,_value\r\n,,0,2024-03-01T00:00:00Z,1\r\n\r\n"
        b"#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n"
        b',"panic: out of memory, sorry",\r\n\r\n'
    )
    parsed = []
    with pytest.raises(QueryError, match="out of memory, sorry"):
        for _block, frame in _parse_annotated_csv([body[i : i + 7] for i in range(0, len(body), 7)], 10):
            parsed.append(frame)
    assert parsed and parsed[0]["_value"].tolist() == [1.0]


# ------------------------------------------------------------ reading
def test_the_csv_parser_takes_any_chunking_of_the_stream():
    body = (
        b"#datatype,string,long,dateTime:RFC3339,string,double,boolean,long,string\r\n"
        b"#group,false,false,false,true,false,false,false,false\r\n"
        b"#default,_result,,,,,,,\r\n,result,table,_time,machine,v,ok,n,s\r\n"
        b',,0,2024-03-01T00:00:00Z,"a,b",0.1,true,5,"x\r\ny"\r\n'
        b",,0,2024-03-01T00:00:00.000000001Z,\"a,b\",,false,,\r\n\r\n"
        b"#datatype,string,long,dateTime:RFC3339,string,double\r\n#group,false,false,false,true,false\r\n"
        b"#default,_result,,,,\r\n,result,table,_time,machine,v\r\n"
        b",,1,1677-09-21T00:12:43.145224194Z,c,-1e-300\r\n\r\n"
    )
    for step in (1, 3, 17, len(body)):
        pieces = [body[i : i + step] for i in range(0, len(body), step)]
        out = list(_parse_annotated_csv(pieces, 1000))
        assert [len(f) for _, f in out] == [2, 1]
        first = out[0][1]
        assert out[0][0].groups == [False, True, False, False, False, False]
        assert first["_time"].tolist() == [T0.value, T0.value + 1]
        assert first["machine"].tolist() == ["a,b", "a,b"]
        assert first["v"].isna().tolist() == [False, True] and first["v"][0] == 0.1
        assert first["ok"].tolist() == [True, False] and str(first["ok"].dtype) == "boolean"
        assert first["n"].tolist()[0] == 5 and first["n"].isna().tolist() == [False, True]
        assert first["s"].tolist() == ["x\ny", None]
        assert out[1][1]["_time"].tolist() == [-9223372036854775806]
        assert out[1][1]["v"].tolist() == [-1e-300]


def test_a_large_read_streams_in_bounded_chunks(store):
    n = 5_000
    frame = pd.DataFrame({"machine": np.where(np.arange(n) % 2 == 0, "m1", "m2"), "rms": np.arange(n, dtype=float)},
                         index=pd.date_range(T0, periods=n, freq="1s"))
    store.write(frame, "vibration", ["machine"])
    chunks = list(store.iter_read("vibration", chunk_rows=700))
    assert max(len(c) for c in chunks) <= 700 and sum(len(c) for c in chunks) == n
    whole = store.read("vibration")
    np.testing.assert_array_equal(whole["rms"].to_numpy(), np.arange(n, dtype=float))


def test_downsampling_labels_buckets_by_their_epoch_aligned_start(store):
    frame = pd.DataFrame({"machine": "m1", "rms": np.arange(12, dtype=float), "n": np.arange(12)},
                         index=pd.date_range(T0, periods=12, freq="10min"))
    store.write(frame, "vibration", ["machine"])
    store.write([Point("vibration", {"machine": "m1"}, {"note": "text"}, T0)])
    got = store.read("vibration", "m1", T0 + pd.Timedelta("30min"), T0 + pd.Timedelta("2h"), every="1h")
    assert list(got.index) == [T0, T0 + pd.Timedelta("1h")]
    assert got["rms"].tolist() == [4.0, 8.5]  # (3+4+5)/3, (6..11)/6
    assert "note" not in got.columns  # only numeric fields are aggregated
    assert got["n"].dtype == np.float64
    mx = store.read("vibration", "m1", T0, T0 + pd.Timedelta("2h"), every="1h", agg="max")
    assert mx["n"].dtype == "Int64" and mx["n"].tolist() == [5, 11]


def test_ping_checks_server_token_and_bucket(srv, store):
    store.ping()
    paths = [r.path for r in srv.requests]
    assert paths[-2:] == ["/ping", "/api/v2/query"]


def test_tag_and_field_names_with_a_leading_underscore_round_trip(store):
    store.write([Point("custom", {"machine": "m1", "_src": "plc"}, {"_raw": 7, "v": 1.5}, T0)])
    got = store.read("custom", "m1")
    assert list(got.columns) == ["_src", "machine", "_raw", "v"]
    assert got["_src"].tolist() == ["plc"] and got["_raw"].tolist() == [7]
