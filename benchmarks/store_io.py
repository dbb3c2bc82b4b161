"""Store write/read throughput, ours against raw HTTP, in one run.

Data: 100 machines x 10 float fields x 1,000 timestamps = 1,000,000 field
values ("points" below, as InfluxDB counts field values) in 100,000
line-protocol lines. Each side starts from the same DataFrame:

- embedded: ``EmbeddedStore.write`` / ``read`` on a fresh DuckDB file.
- influxdb1 (ours): ``InfluxDB1Store.write`` / ``read`` against the real 1.x server.
- influxdb1 raw baseline: a hand-written loop that formats line protocol with
  f-strings and POSTs /write in 10,000-line bodies; reads with one InfluxQL
  query (``epoch=ns``, chunked JSON, uncompressed) parsed into Python row lists.

Needs ``PDM_TEST_INFLUXDB1_URL`` (``make bench-store`` starts a server).
Writes ``benchmarks/results/store_io.json`` and ``store_io.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from pdm.settings import StoreSettings
from pdm.store import open_store

RESULTS = Path(__file__).parent / "results"
FIELDS = [f"f{i}" for i in range(10)]


def make_frame(machines: int, steps: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=steps, freq="1min", tz="UTC")
    idx = np.tile(times.asi8, machines)
    data = {"machine": np.repeat([f"m{i:03d}" for i in range(machines)], steps)}
    for f in FIELDS:
        data[f] = rng.normal(size=machines * steps).round(6)
    return pd.DataFrame(data, index=pd.DatetimeIndex(pd.to_datetime(idx, utc=True)))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def raw_write(url: str, db: str, frame: pd.DataFrame, batch: int = 10_000) -> None:
    requests.post(f"{url}/query", params={"q": f'CREATE DATABASE "{db}"'}, timeout=30).raise_for_status()
    session = requests.Session()
    machines = frame["machine"].to_numpy()
    values = frame[FIELDS].to_numpy()
    times = frame.index.asi8
    lines = []
    for m, row, t in zip(machines, values, times, strict=True):
        fields = ",".join(f"{k}={v!r}" for k, v in zip(FIELDS, row.tolist(), strict=True))
        lines.append(f"bench,machine={m} {fields} {t}")
        if len(lines) == batch:
            session.post(f"{url}/write", params={"db": db, "precision": "ns"}, data="\n".join(lines).encode()).raise_for_status()
            lines = []
    if lines:
        session.post(f"{url}/write", params={"db": db, "precision": "ns"}, data="\n".join(lines).encode()).raise_for_status()


def raw_read(url: str, db: str) -> int:
    resp = requests.get(
        f"{url}/query",
        params={"db": db, "q": "SELECT * FROM bench GROUP BY *", "epoch": "ns", "chunked": "true", "chunk_size": 100_000},
        stream=True,
        timeout=300,
        # Uncompressed, as the store reads: on loopback InfluxDB's gzip costs more than it saves.
        headers={"Accept-Encoding": "identity"},
    )
    resp.raise_for_status()
    rows = 0
    for line in resp.iter_lines():
        if not line:
            continue
        for result in json.loads(line).get("results", []):
            for series in result.get("series", []):
                rows += len(series["values"])
    return rows


def run(machines: int, steps: int) -> dict:
    frame = make_frame(machines, steps)
    points = len(frame) * len(FIELDS)
    out: dict = {"points": points, "lines": len(frame), "machines": machines, "fields": len(FIELDS), "rows": {}}
    url = os.environ.get("PDM_TEST_INFLUXDB1_URL")

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreSettings(backend="embedded", path=Path(tmp) / "bench.duckdb"))
        tw, _ = timed(lambda: store.write(frame, "bench", ["machine"]))
        tr, got = timed(lambda: store.read("bench"))
        assert len(got) == len(frame)
        out["rows"]["embedded"] = {"write_s": tw, "read_s": tr}
        print(f"embedded      write {points / tw:>12,.0f} pts/s   read {points / tr:>12,.0f} pts/s")

    if url:
        db_ours, db_raw = "bench_ours", "bench_raw"
        for db in (db_ours, db_raw):
            requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=30)
        store = open_store(StoreSettings(backend="influxdb1", url=url, database=db_ours))
        tw, _ = timed(lambda: store.write(frame, "bench", ["machine"]))
        tr, got = timed(lambda: store.read("bench"))
        assert len(got) == len(frame), (len(got), len(frame))
        out["rows"]["influxdb1"] = {"write_s": tw, "read_s": tr}
        print(f"influxdb1     write {points / tw:>12,.0f} pts/s   read {len(got) / tr:>12,.0f} rows/s")
        rw, _ = timed(lambda: raw_write(url, db_raw, frame))
        rr, n = timed(lambda: raw_read(url, db_raw))
        assert n == len(frame), (n, len(frame))
        out["rows"]["influxdb1-raw-http"] = {"write_s": rw, "read_s": rr}
        print(f"raw HTTP      write {points / rw:>12,.0f} pts/s   read {n / rr:>12,.0f} rows/s")
        for db in (db_ours, db_raw):
            requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=30)
        out["ratio_write_vs_raw"] = rw / tw
        out["ratio_read_vs_raw"] = rr / tr
    else:
        print("PDM_TEST_INFLUXDB1_URL not set: InfluxDB 1.x rows skipped (run `make bench-store`)")
    for r in out["rows"].values():
        r["write_pts_s"] = points / r["write_s"]
        r["read_pts_s"] = points / r["read_s"]
        r["read_rows_s"] = len(frame) / r["read_s"]
    return out


def markdown(res: dict) -> str:
    lines = [
        f"# Store I/O — {res['points']:,} points ({res['machines']} machines x {res['fields']} fields, {res['lines']:,} lines)",
        "",
        f"Measured {res['date']} on {res['machine']}. Points = field values.",
        "",
        "| back end | write pts/s | read pts/s | read rows/s |",
        "|---|---:|---:|---:|",
    ]
    for name, r in res["rows"].items():
        lines.append(f"| {name} | {r['write_pts_s']:,.0f} | {r['read_pts_s']:,.0f} | {r['read_rows_s']:,.0f} |")
    if "ratio_write_vs_raw" in res:
        lines += [
            "",
            f"influxdb1 store vs raw HTTP: write {res['ratio_write_vs_raw']:.2f}x, read {res['ratio_read_vs_raw']:.2f}x (target >= 0.8x each).",
        ]
    emb = res["rows"]["embedded"]["read_pts_s"]
    lines.append(f"embedded read: {emb / 1e6:.2f}M pts/s (target >= 2M pts/s).")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    res = run(args.machines, args.steps)
    res["date"] = time.strftime("%Y-%m-%d")
    res["machine"] = f"{platform.node() and 'this machine'} ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store_io.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / "store_io.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
