"""Simulator backfill: 50 machines x 90 days at the default resolutions, per back end.

Each back end is measured in a fresh child process (so peak memory is its
own): ``sensors_sim.run.backfill`` of ``fleet_config(machines, seed)`` into

- embedded: a fresh DuckDB file (target: <= 120 s for 50 x 90);
- influxdb1: the real InfluxDB 1.x at ``PDM_TEST_INFLUXDB1_URL`` (target:
  values/s >= 0.8x the raw-HTTP write rate that ``benchmarks/store_io.py``
  recorded in ``benchmarks/results/store_io.json``).

Reported: wall time, CPU time, field values written (as InfluxDB counts
points), values/s, peak RSS, and RSS after day 10 and day 80 (memory must
not grow with days; for other lengths, after 1/9 and 8/9 of the days); the
memory verdict compares the medians of the ten days from each mark on, as
RSS wanders by some 20 MB from one day to the next. Generation alone (no
store) is timed on a sample of days for context; for InfluxDB, a
hand-written raw-HTTP writer is timed on the simulator's own data too.

    python benchmarks/simulate.py                      # embedded only
    bash scripts/with-influxdb.sh .venv/bin/python benchmarks/simulate.py   # both
    python benchmarks/simulate.py --days 10 --machines 20   # a quick look

Writes ``benchmarks/results/simulate.json`` and ``simulate.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_TARGET_S = 120.0  # for 50 machines x 90 days
RAW_RATIO_TARGET = 0.8
GROWTH_LIMIT_MB = 64.0  # RSS late minus RSS early


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def marks_for(days: int) -> tuple[int, int]:
    """0-based days after which RSS is compared: after day 10 and day 80 of 90 (9 and 79)."""
    early = max(1, round(days / 9)) - 1
    return early, min(days - 1, max(early + 1, round(days * 8 / 9) - 1))


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


# ----------------------------------------------------------------- child side
def child(backend: str, machines: int, days: int, seed: int, url: str | None, progress: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    import requests

    from pdm.settings import StoreSettings
    from pdm.store import open_store
    from sensors_sim.config import fleet_config
    from sensors_sim.run import backfill

    early, late = marks_for(days)
    load_start = os.getloadavg()[0]
    rss: dict[int, float] = {}
    clock: dict[int, float] = {}
    began = time.perf_counter()

    def on_day(d: int, points: int) -> None:
        rss[d] = rss_mb()
        clock[d] = time.perf_counter() - began

    with tempfile.TemporaryDirectory() as tmp:
        if backend == "embedded":
            settings = StoreSettings(backend="embedded", path=Path(tmp) / "bench.duckdb")
        else:
            assert url
            requests.post(f"{url}/query", params={"q": 'DROP DATABASE "bench_sim"'}, timeout=60)
            settings = StoreSettings(backend="influxdb1", url=url, database="bench_sim", timeout_s=120)
        store = open_store(settings)
        try:
            res = backfill(store, fleet_config(machines=machines, seed=seed), days, progress=progress,
                           on_day=on_day)
            size_mb = (Path(tmp) / "bench.duckdb").stat().st_size / 2**20 if backend == "embedded" else None
        finally:
            store.close()
            if backend != "embedded":
                requests.post(f"{url}/query", params={"q": 'DROP DATABASE "bench_sim"'}, timeout=60)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": res.seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,  # this process (not influxd), set-up included
        "load_avg_start": load_start,  # 1-min load average: other jobs on the machine show here
        "load_avg_end": os.getloadavg()[0],
        "points": res.points,
        "values_per_s": res.points / res.seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_early_mb": rss.get(early),
        "rss_late_mb": rss.get(late),
        # RSS wanders by +-20 MB from day to day (allocator caches): medians of the ten days from each mark.
        "rss_early_median_mb": _median([rss[d] for d in range(early, early + 10) if d in rss]),
        "rss_late_median_mb": _median([rss[d] for d in range(late, late + 10) if d in rss]),
        "rss_by_day_mb": [round(rss[d]) for d in sorted(rss)],
        "early_day": early + 1,
        "late_day": late + 1,
        "seconds_per_day_late": (clock[late] - clock[early]) / (late - early) if late > early else None,
        "store_mb": size_mb,
    }


def raw_http_same_data(machines: int, seed: int, sample_days: int, url: str) -> dict:
    """Raw-HTTP write rate of the simulator's own sensor data (a hand-written loop, as in store_io).

    Days are generated first; only the writes are timed: f-string line
    protocol, 10,000-line POSTs on one session. The same data shape as the
    backfill (one field per temperature line), unlike store_io's ten fields a line.
    """
    sys.path.insert(0, str(ROOT))
    import requests

    from sensors_sim.config import fleet_config
    from sensors_sim.plant import PlantSimulator
    from sensors_sim.run import TAGS

    sim = PlantSimulator(fleet_config(machines=machines, seed=seed))
    days = [sim.day(d) for d in range(sample_days)]
    db = "bench_sim_raw"
    requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=60)
    requests.post(f"{url}/query", params={"q": f'CREATE DATABASE "{db}"'}, timeout=60).raise_for_status()
    session = requests.Session()

    def post(lines: list[str]) -> None:
        session.post(f"{url}/write", params={"db": db, "precision": "ns"},
                     data="\n".join(lines).encode()).raise_for_status()

    values = 0
    began = time.perf_counter()
    for frames in days:
        for meas in ("process", "temperature", "vibration"):
            f = frames[meas]
            tags = TAGS[meas]
            fields = [c for c in f.columns if c not in tags]
            tag_cols = [f[t].astype(str).tolist() for t in tags]
            field_cols = [f[c].tolist() for c in fields]
            times = f.index.asi8.tolist()
            lines: list[str] = []
            for i, t in enumerate(times):
                head = ",".join(f"{k}={col[i]}" for k, col in zip(tags, tag_cols, strict=True))
                body = ",".join(f"{k}={'true' if v is True else 'false' if v is False else repr(v)}"
                                for k, v in ((k, col[i]) for k, col in zip(fields, field_cols, strict=True)))
                lines.append(f"{meas},{head} {body} {t}")
                if len(lines) == 10_000:
                    post(lines)
                    lines = []
            if lines:
                post(lines)
            values += len(times) * len(fields)
    seconds = time.perf_counter() - began
    requests.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=60)
    return {"values": values, "seconds": seconds, "values_per_s": values / seconds, "sample_days": sample_days}


def generation_only(machines: int, seed: int, sample_days: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from sensors_sim.config import fleet_config
    from sensors_sim.plant import PlantSimulator

    t = time.perf_counter()
    sim = PlantSimulator(fleet_config(machines=machines, seed=seed))
    init = time.perf_counter() - t
    t = time.perf_counter()
    for d in range(sample_days):
        sim.day_parts(d)
    per_day = (time.perf_counter() - t) / sample_days
    return {"init_s": init, "seconds_per_day": per_day, "sample_days": sample_days}


# ---------------------------------------------------------------- parent side
def run_child(backend: str, args: argparse.Namespace, url: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", backend, "--machines", str(args.machines), "--days", str(args.days),
           "--seed", str(args.seed)]
    if args.no_progress:
        cmd.append("--no-progress")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if url:
        env["PDM_TEST_INFLUXDB1_URL"] = url
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_http_rate() -> float | None:
    path = RESULTS / "store_io.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text()).get("rows", {})
    raw = rows.get("influxdb1-raw-http")
    return raw.get("write_pts_s") if raw else None


def verdicts(res: dict) -> dict:
    full = res["machines"] >= 50 and res["days"] >= 90
    out = {}
    emb = res["rows"].get("embedded")
    if emb:
        scaled = emb["seconds"] * (50 * 90) / (res["machines"] * res["days"])
        out["embedded_time"] = {"target": f"<= {EMBEDDED_TARGET_S:g} s for 50 x 90",
                                "value": emb["seconds"] if full else f"{scaled:.0f} s scaled to 50 x 90",
                                "ok": bool((emb["seconds"] if full else scaled) <= EMBEDDED_TARGET_S)}
    inf = res["rows"].get("influxdb1")
    raw = res.get("raw_http_write_pts_s")
    if inf and raw:
        out["influxdb1_vs_raw_http"] = {"target": f">= {RAW_RATIO_TARGET}x store_io raw HTTP ({raw:,.0f} pts/s)",
                                        "value": inf["values_per_s"] / raw,
                                        "ok": bool(inf["values_per_s"] / raw >= RAW_RATIO_TARGET)}
    same = res.get("raw_http_same_data")
    if inf and same:
        ratio = inf["values_per_s"] / same["values_per_s"]
        out["influxdb1_vs_raw_http_same_data"] = {
            "target": f">= {RAW_RATIO_TARGET}x raw HTTP on the same data ({same['values_per_s']:,.0f} values/s)",
            "value": ratio, "ok": bool(ratio >= RAW_RATIO_TARGET)}
    for name, row in res["rows"].items():
        early, late = row.get("rss_early_median_mb"), row.get("rss_late_median_mb")
        if early is not None and late is not None:
            growth = late - early
            out[f"{name}_memory"] = {
                "target": f"median RSS days {row['late_day']}+ - days {row['early_day']}+ "
                          f"<= {GROWTH_LIMIT_MB:g} MB",
                "value": growth, "ok": bool(growth <= GROWTH_LIMIT_MB)}
    return out


def markdown(res: dict) -> str:
    lines = [
        f"# Simulator backfill — {res['machines']} machines x {res['days']} days (seed {res['seed']})",
        "",
        f"Measured {res['date']} on {res['machine']}. Values = field values written (InfluxDB's points),",
        "sensor data, operator logs and ground truth; default resolutions (process and temperatures",
        "every minute, vibration features every 10 min per measurement point). CPU: user + system",
        "seconds of the backfill process (InfluxDB's server not included); on 2 cores the wall time",
        "cannot drop below half of it. Other jobs on the machine slow the wall time down.",
        "",
        "| back end | time | CPU | values | values/s | peak RSS | RSS early → late | s/day (late) | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["rows"].items():
        mem = (f"{r['rss_early_mb']:.0f} → {r['rss_late_mb']:.0f} MB (day {r['early_day']} → {r['late_day']}; "
               f"10-day medians {r['rss_early_median_mb']:.0f} → {r['rss_late_median_mb']:.0f})"
               if r.get("rss_late_median_mb") is not None else "—")
        per_day = f"{r['seconds_per_day_late']:.2f}" if r.get("seconds_per_day_late") else "—"
        cpu = f"{r['cpu_s']:.0f} s" if r.get("cpu_s") is not None else "—"
        load = (f"{r['load_avg_start']:.1f} → {r['load_avg_end']:.1f}" if r.get("load_avg_start") is not None
                else "—")
        lines.append(f"| {name} | {r['seconds']:.1f} s | {cpu} | {r['points']:,} | {r['values_per_s']:,.0f} | "
                     f"{r['peak_rss_mb']:.0f} MB | {mem} | {per_day} | {load} |")
    gen = res.get("generation")
    if gen:
        lines += ["", f"Generation alone (no store): {gen['seconds_per_day']:.2f} s per fleet-day "
                      f"(mean of {gen['sample_days']} days), set-up {gen['init_s']:.1f} s."]
    if res.get("raw_http_write_pts_s"):
        lines.append(f"Raw-HTTP write rate from store_io.json: {res['raw_http_write_pts_s']:,.0f} pts/s "
                     "(10 float fields a line).")
    same = res.get("raw_http_same_data")
    if same:
        lines.append(f"Raw HTTP on the simulator's own sensor data (hand-written line protocol, writes only, "
                     f"{same['sample_days']} days pre-generated): {same['values_per_s']:,.0f} values/s.")
    else:
        lines.append("No benchmarks/results/store_io.json: run `make bench-store` for the raw-HTTP baseline.")
    if "influxdb1" not in res["rows"]:
        lines.append("InfluxDB 1.x row skipped: PDM_TEST_INFLUXDB1_URL not set "
                     "(`bash scripts/with-influxdb.sh .venv/bin/python benchmarks/simulate.py`).")
    lines += ["", "| check | target | measured | ok |", "|---|---|---:|:---:|"]
    for name, v in res["verdicts"].items():
        value = f"{v['value']:.2f}" if isinstance(v["value"], float) else str(v["value"])
        lines.append(f"| {name} | {v['target']} | {value} | {'yes' if v['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", type=int, default=50)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backends", default="embedded,influxdb1", help="comma-separated")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    url = os.environ.get("PDM_TEST_INFLUXDB1_URL")
    if args.child:
        print(json.dumps(child(args.child, args.machines, args.days, args.seed, url, not args.no_progress)))
        return

    res: dict = {"machines": args.machines, "days": args.days, "seed": args.seed, "rows": {}}
    for backend in args.backends.split(","):
        if backend == "influxdb1" and not url:
            print("PDM_TEST_INFLUXDB1_URL not set: InfluxDB 1.x row skipped", file=sys.stderr)
            continue
        print(f"[{backend}] backfill {args.machines} machines x {args.days} days ...", file=sys.stderr)
        row = run_child(backend, args, url)
        res["rows"][backend] = row
        print(f"[{backend}] {row['seconds']:.1f} s, {row['values_per_s']:,.0f} values/s, "
              f"peak RSS {row['peak_rss_mb']:.0f} MB", file=sys.stderr)
    res["generation"] = generation_only(args.machines, args.seed, sample_days=min(5, args.days))
    res["raw_http_write_pts_s"] = raw_http_rate()
    if url and "influxdb1" in res["rows"]:
        print("[influxdb1-raw-http] the same data, hand-written line protocol ...", file=sys.stderr)
        res["raw_http_same_data"] = raw_http_same_data(args.machines, args.seed, min(3, args.days), url)
    res["verdicts"] = verdicts(res)
    res["date"] = time.strftime("%Y-%m-%d")
    res["machine"] = f"this machine ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulate.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / "simulate.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
