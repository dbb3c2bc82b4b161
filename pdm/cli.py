"""``pdmctl``: pdm's command line.

Each subcommand is a thin shell over a package function that the Airflow
DAGs and the tests call too. Heavy modules are imported inside the
subcommand that needs them, so ``pdmctl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pdm import __version__
from pdm.settings import Settings, SettingsError, load_settings

log = logging.getLogger("pdm")

def _store_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.store import open_store

    with open_store(settings.store) as store:
        if args.action == "ping":
            store.ping()
            print(f"{settings.store.backend} store is reachable")
        elif args.action == "machines":
            for m in store.machines():
                print(m)
        elif args.action == "sensors":
            print(store.sensors(args.machine or None).to_string(index=False))
        elif args.action == "summary":
            from pdm.store.summary import summarize

            print(summarize(store).to_string())
    return 0


def _config_cmd(args: argparse.Namespace, settings: Settings) -> int:
    # SecretStr fields print as '**********'.
    print(settings.model_dump_json(indent=2))
    return 0


def _demo_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.demo import run_demo

    run_demo(settings, machines=args.machines, days=args.days, seed=args.seed, train_days=args.train_days)
    return 0


def _simulate_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.store import open_store
    from sensors_sim.config import FleetConfigError, fleet_config
    from sensors_sim.run import backfill, stream

    try:
        config = fleet_config(args.config, machines=args.machines, seed=args.seed, start=args.start)
    except FleetConfigError as exc:
        print(f"pdmctl simulate: {exc}", file=sys.stderr)
        return 2
    store_settings = settings.store
    if args.store:
        store_settings = store_settings.model_copy(update={"backend": args.store})
    with open_store(store_settings) as store:
        if args.mode == "backfill":
            res = backfill(store, config, args.days, labels_path=args.labels)
            print(f"wrote {res.points:,} values for {len(config.machines())} machines, "
                  f"{res.start:%Y-%m-%d} to {res.end:%Y-%m-%d}, in {res.seconds:.1f}s "
                  f"({res.points_per_s:,.0f} values/s); labels: {args.labels or 'store only (pdm_truth)'}")
        else:
            import signal
            import threading

            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                n = stream(store, config, args.speed, stop=stop)
            except KeyboardInterrupt:
                n = 0
            print(f"stream stopped; {n:,} values written this run")
    return 0


def _train_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.train import TrainConfig
    from pdm.store import open_store

    machines = [m for chunk in (args.machines or []) for m in chunk.split(",") if m] or None
    trim = {} if args.error_trim is None else {"error_trim": args.error_trim}
    if args.count_scaling is not None:
        trim["count_scaling"] = args.count_scaling
    if args.stops_as_gaps is not None:
        trim["stops_as_gaps"] = args.stops_as_gaps
    if args.scored_hours is not None:
        trim["scored_hours"] = None if args.scored_hours == "all" else args.scored_hours
    features = FeatureConfig(step=args.step, window=args.window, stride=args.stride, **trim)
    overrides = {"attention": args.attention, "d_model": args.d_model, "layers": args.layers, "patch": args.patch}
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, mvp_epochs=args.mvp_epochs)
    with open_store(settings.store) as store:
        report = train_fleet(store, settings.pipeline.models_dir or settings.data_dir / "models", machines=machines, start=args.start,
                             stop=args.stop, features=features, model_overrides=overrides, train_cfg=cfg)
    for m, why in report.skipped.items():
        print(f"skipped {m}: {why}")
    met = report.metrics
    print(f"trained on {len(report.machines)} machines, {met['windows']} windows, {met['epochs_run']} epochs "
          f"in {met['seconds']:.1f}s; valid loss {met['valid_loss'][-1]:.4f}")
    print(f"model directory: {report.path}")
    return 0


def _score_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.detect.score import score_machines
    from pdm.model.directory import ModelDirectoryError
    from pdm.store import open_store

    machines = [m for chunk in (args.machines or []) for m in chunk.split(",") if m] or None
    models = args.models or settings.pipeline.models_dir or settings.data_dir / "models"
    try:
        with open_store(settings.store) as store:
            report = score_machines(store, models, machines, args.start, args.stop, version=args.model_version,
                                    write=not args.dry_run, progress=not args.quiet)
    except (ModelDirectoryError, ValueError) as exc:
        print(f"pdmctl score: {exc}", file=sys.stderr)
        return 1
    if report.machines:
        print(report.text(notes=False))
    for m, why in report.skipped.items():
        print(f"skipped {m}: {why}", file=sys.stderr)
    print(f"model {report.model_version}: {len(report.machines)} machines, {report.points_written} points written "
          f"in {report.seconds:.1f}s")
    unknown = [m for m, r in report.machines.items() if r.status == "skipped"]
    if unknown:  # the others were scored and written all the same
        print(f"pdmctl score: could not score {', '.join(unknown)}", file=sys.stderr)
        return 1
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--failures", metavar="FILE",
                   help="failure log, CSV or Parquet: time, machine, optional mode, component, onset, repair_end, "
                        "root_cause (default: the store's ground truth, pdm_truth)")
    p.add_argument("--from", dest="start", help="first time (UTC ISO-8601; default: the first scored window)")
    p.add_argument("--to", dest="stop", help="end time, exclusive (default: the last scored window)")
    p.add_argument("--model-version", dest="model_version",
                   help="model version(s) whose alarms to judge, comma-separated, or 'all' (default: the version that scored last)")
    p.add_argument("--machines", action="append", help="machine ids, comma-separated or repeated (default: all scored)")
    p.add_argument("--false-call-hours", dest="false_call_h", type=float, metavar="H",
                   help="what a false call costs, in hours of downtime, to price which severity to notify from "
                        "(default: 2)")
    p.add_argument("--repair-hours", dest="repair_h", type=float, metavar="H",
                   help="a failure's repair time in hours, for the same (default: the failure log's median repair "
                        "time, else 24)")


def _cost_args(args: argparse.Namespace) -> dict[str, Any]:
    """The notify-cost options given (the evaluation's defaults for the rest)."""
    if (args.false_call_h is not None and args.false_call_h < 0) or (args.repair_h is not None and args.repair_h <= 0):
        raise ValueError("--false-call-hours must be >= 0 and --repair-hours > 0")
    return {k: getattr(args, k) for k in ("false_call_h", "repair_h") if getattr(args, k) is not None}


def _evaluate_common(args: argparse.Namespace, settings: Settings, run: Callable[..., object], name: str) -> int:
    from pdm.evaluate.failures import FailureLogError
    from pdm.evaluate.run import EvaluationError
    from pdm.store import open_store

    machines = [m for chunk in (args.machines or []) for m in chunk.split(",") if m] or None
    try:
        with open_store(settings.store) as store:
            run(store, machines)
    except (FailureLogError, EvaluationError, ValueError) as exc:
        print(f"pdmctl {name}: {exc}", file=sys.stderr)
        return 2
    return 0


def _evaluate_cmd(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from pathlib import Path

    from pdm.evaluate.run import evaluate, format_table

    def run(store: object, machines: list[str] | None) -> None:
        ev = evaluate(store, args.failures, start=args.start, stop=args.stop,  # type: ignore[arg-type]
                      model_version=args.model_version, machines=machines, **_cost_args(args))
        print(format_table(ev))
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(ev.to_dict(), indent=2, default=str))
            print(f"metrics written to {out}")

    return _evaluate_common(args, settings, run, "evaluate")


def _report_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from pdm.evaluate.report import write_report

    def run(store: object, machines: list[str] | None) -> None:
        out = Path(args.out) if args.out else settings.data_dir / "reports" / "report.html"
        res = write_report(store, out, args.failures, start=args.start, stop=args.stop,  # type: ignore[arg-type]
                           model_version=args.model_version, machines=machines, **_cost_args(args))
        print(f"report: {res.html}\nmetrics: {res.json}")

    return _evaluate_common(args, settings, run, "report")


def _import_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pdm.io import (
        ImportFileError,
        LogColumns,
        SensorColumns,
        TimeSpec,
        import_events,
        import_failures,
        import_sensors,
    )
    from pdm.store import open_store

    spec = TimeSpec(tz=args.tz, period=args.period, origin=args.origin, epoch_unit=args.epoch_unit, format=args.time_format)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        with open_store(settings.store) as store:
            if args.kind == "sensors":
                sensors = tuple(s for chunk in (args.sensors or []) for s in chunk.split(",") if s) or None
                sensor_cols = SensorColumns(layout=args.layout, time=args.time_col, machine=args.machine_col,
                                     sensor=args.sensor_col, value=args.value_col, sensors=sensors,
                                     machine_id=args.machine_id)
                result = import_sensors(store, args.file, sensor_cols, rules=args.map or [], time=spec, dry_run=args.dry_run,
                                        chunk_rows=args.chunk_rows, progress=progress)
            else:
                log_cols = LogColumns(time=args.time_col, machine=args.machine_col, text=args.text_col)
                if args.kind == "events":
                    log_cols.type, log_cols.severity, log_cols.operator = args.type_col, args.severity_col, args.operator_col
                    pairs = [m.split("=", 1) for m in (args.type_map or [])]
                    if any(len(p) != 2 for p in pairs):
                        print("pdmctl import: --type-map takes RAW=TYPE", file=sys.stderr)
                        return 2
                    result = import_events(store, args.file, log_cols, time=spec, type_map=dict(pairs),
                                           dry_run=args.dry_run, progress=progress)
                else:
                    log_cols.mode, log_cols.component, log_cols.end, log_cols.onset = (args.mode_col, args.component_col,
                                                                       args.end_col, args.onset_col)
                    result = import_failures(store, args.file, log_cols, time=spec, degradation=args.degradation,
                                             repair=args.repair, dry_run=args.dry_run, progress=progress)
    except ImportFileError as exc:
        print(f"pdmctl import {args.kind}: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    for sensor, dest in result.series.items():
        print(f"  {sensor} -> {dest}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _add_import_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import your own plant's history (sensors, event log, failure log) from CSV or Parquet",
                       description="Validate a whole file, then write it to the configured store; "
                                   "a malformed file imports nothing.")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in (("sensors", "sensor values: long (time, machine, sensor, value) or wide (one column per sensor)"),
                       ("events", "event log (time, machine, type, optional text/severity/operator) -> operator_log"),
                       ("failures", "failure log (time, machine, optional mode/component/end/text) -> pdm_truth")):
        k = kinds.add_parser(kind, help=text, description=text)
        k.add_argument("file", help="a .csv, .tsv (optionally .gz) or .parquet file")
        k.add_argument("--time-col", default="time", help="time column (default: time)")
        k.add_argument("--machine-col", default="machine", help="machine id column (default: machine)")
        k.add_argument("--tz", default="UTC", help="time zone of timestamps without an offset (default: UTC)")
        k.add_argument("--time-format", help="strftime format of the timestamps (default: inferred, ISO-8601 first)")
        k.add_argument("--period", help="times are integer steps (cycles): the duration of one step, e.g. 10s")
        k.add_argument("--origin", help="with --period: the time of step 0, e.g. 2024-01-01T00:00:00Z")
        k.add_argument("--epoch-unit", dest="epoch_unit", choices=["s", "ms", "us", "ns"],
                       help="times are numbers since 1970-01-01 UTC in this unit")
        k.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
        if kind == "sensors":
            k.add_argument("--format", dest="layout", choices=["long", "wide"], default="long",
                           help="long: time, machine, sensor, value; wide: time, machine, one column per sensor")
            k.add_argument("--sensor-col", default="sensor", help="long: sensor name column (default: sensor)")
            k.add_argument("--value-col", default="value", help="long: value column (default: value)")
            k.add_argument("--sensors", action="append", help="wide: sensor columns, comma-separated (default: all others)")
            k.add_argument("--machine-id", help="the file holds one machine: its id (no machine column needed)")
            k.add_argument("--map", action="append", metavar="PATTERN=DEST",
                           help="store sensors matching PATTERN (shell-style) as DEST: temperature, vibration.FIELD, "
                                "process.speed_rpm|load_pct|running|current_a, or MEASUREMENT[.FIELD]; "
                                "first match wins; default: measurement 'sensor', field 'value' (repeatable)")
            k.add_argument("--chunk-rows", dest="chunk_rows", type=int, default=200_000, help="rows read at a time")
        else:
            k.add_argument("--text-col", help="free-text column (default: 'text' when present)")
        if kind == "events":
            k.add_argument("--type-col", default="type", help="event type column (default: type)")
            k.add_argument("--severity-col", help="severity 0-3 column (default: 'severity' when present, else 0)")
            k.add_argument("--operator-col", help="operator column (default: 'operator' when present)")
            k.add_argument("--type-map", action="append", metavar="RAW=TYPE",
                           help="map an event type onto inspection, observation, lubrication, work_order, handover")
        if kind == "failures":
            k.add_argument("--mode-col", help="failure mode column, stored as kind (default: 'mode' when present)")
            k.add_argument("--component-col", help="component column (default: 'component' when present)")
            k.add_argument("--end-col", help="repair end column (default: 'end' when present)")
            k.add_argument("--onset-col", help="degradation start column (default: 'onset' when present)")
            k.add_argument("--degradation", default="7D",
                           help="without an onset column: time before each failure kept out of training as "
                                "possibly degraded (default: 7D)")
            k.add_argument("--repair", default="1D", help="repair duration when no end is given (default: 1D)")
    p.set_defaults(func=_import_cmd)


def _benchmark_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    detectors = tuple(d for chunk in (args.detectors or []) for d in chunk.split(",") if d)
    from pdm.baselines import DETECTORS

    bad = [d for d in detectors if d not in DETECTORS]
    if bad:
        print(f"pdmctl benchmark: unknown detector(s) {', '.join(bad)}; choose from {', '.join(DETECTORS)}", file=sys.stderr)
        return 2
    detectors = detectors or DETECTORS
    out = Path(args.out)
    if args.suite == "skab":
        from pdm.evaluate.skab import SkabConfig, benchmark_skab

        cfg = SkabConfig(window=args.window or 64, seed=args.seed or 0, detectors=detectors)
        try:
            benchmark_skab(args.data, out, cfg, limit=args.limit, report_only=args.report_only)
        except (FileNotFoundError, ValueError) as exc:
            print(f"pdmctl benchmark skab: {exc}", file=sys.stderr)
            return 2
        return 0
    from pdm.evaluate.bench_sim import SimBenchConfig, benchmark_sim
    from pdm.model.directory import ModelDirectoryError

    cfg_sim = SimBenchConfig.quick() if args.quick else SimBenchConfig()
    if args.machines:
        cfg_sim.machines = args.machines
    if args.days:
        cfg_sim.days = args.days
    for name in ("train_days", "window", "stride", "epochs"):
        if getattr(args, name) is not None:
            setattr(cfg_sim, name, getattr(args, name))
    if args.seed is not None:
        cfg_sim.seed = args.seed
    cfg_sim.detectors = detectors
    cfg_sim.stages = args.stages
    if args.tshae_d_model:
        cfg_sim.tshae_d_model = args.tshae_d_model
    cfg_sim.tshae_from = args.tshae_from
    cfg_sim.tshae_also = tuple(args.tshae_also or ())
    cfg_sim.tshae_scoring = args.tshae_scoring
    cfg_sim.tshae_save = args.tshae_save
    cfg_sim.model_seed = args.model_seed
    if args.ensemble_seeds:
        try:
            cfg_sim.ensemble_seeds = tuple(int(v) for v in args.ensemble_seeds.split(","))
        except ValueError:
            raise SystemExit(f"--ensemble-seeds: comma-separated integers, not {args.ensemble_seeds!r}") from None
    cfg_sim.series = args.series
    cfg_sim.running_scaling = args.running_scaling
    cfg_sim.temperatures_running = args.temperatures_running
    cfg_sim.error_trim = args.error_trim
    if args.count_scaling is not None:
        cfg_sim.count_scaling = args.count_scaling
    if args.stops_as_gaps is not None:
        cfg_sim.stops_as_gaps = args.stops_as_gaps
    cfg_sim.stop_thresholds = args.stop_thresholds
    cfg_sim.tail_quantile = args.tail_quantile
    cfg_sim.last_steps = args.last_steps
    try:
        benchmark_sim(cfg_sim, out, quick=args.quick, tag=args.tag or "")
    except (ValueError, ModelDirectoryError) as exc:
        print(f"pdmctl benchmark sim: {exc}", file=sys.stderr)
        return 2
    return 0


def _dashboard_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from dashboard.app import serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update=overrides)})
    serve(settings, debug=args.debug)
    return 0


def _scored_hours(text: str) -> float | str:
    if text.strip().lower() == "all":
        return "all"
    try:
        h = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a positive number of hours or 'all', not {text!r}") from None
    if not h > 0:
        raise argparse.ArgumentTypeError(f"a positive number of hours or 'all', not {text!r}")
    return h


def _tail_quantile(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a quantile in [0.5, 1), not {text!r}") from None
    if not 0.5 <= q < 1:
        raise argparse.ArgumentTypeError(f"a quantile in [0.5, 1), not {q}")
    return q


def _trim_share(text: str) -> float:
    """An ``--error-trim`` value (:func:`pdm.detect.errors.check_trim`), refused before any work starts."""
    from pdm.detect.errors import check_trim

    try:
        return check_trim(float(text), "the share")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``pdmctl`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pdmctl",
        description="pdm: predictive maintenance — ingest, train, score, alarm, explain.",
    )
    parser.add_argument("--version", action="version", version=f"pdmctl {__version__}")
    parser.add_argument("--settings", help="TOML settings file (else PDM_CONFIG; env PDM_* wins)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("store", help="inspect the configured time-series store")
    p.add_argument("action", choices=["ping", "machines", "sensors", "summary"])
    p.add_argument("--machine", action="append", help="limit to a machine (repeatable)")
    p.set_defaults(func=_store_cmd)

    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    p.set_defaults(func=_config_cmd)

    p = sub.add_parser("simulate", help="write a simulated plant (faults, nuisances, logs, ground truth) into the store")
    p.add_argument("mode", choices=["backfill", "stream"],
                   help="backfill: history as fast as possible; stream: live points until stopped (resumes)")
    p.add_argument("--config", dest="config", metavar="FILE", help="fleet file, TOML or YAML (default: a 20-machine plant)")
    p.add_argument("--machines", type=int, help="scale the fleet to N machines")
    p.add_argument("--days", type=float, default=7.0, help="backfill: days of history")
    p.add_argument("--seed", type=int, help="random seed (default: the fleet file's)")
    p.add_argument("--start", help="first timestamp, UTC ISO-8601 (default: the fleet file's)")
    p.add_argument("--speed", type=float, default=60.0, help="stream: simulated seconds per real second")
    p.add_argument("--labels", metavar="FILE", help="backfill: also write ground truth to FILE (.csv or .parquet)")
    p.add_argument("--store", choices=["embedded", "influxdb1", "influxdb2"], help="override the configured back end")
    p.set_defaults(func=_simulate_cmd)

    p = sub.add_parser("demo", help="the main job on the embedded store, from nothing to results")
    p.add_argument("--machines", type=int, default=10)
    p.add_argument("--days", type=float, default=21.0, help="simulated days (default 21; at seed 7 a failure falls in the third week)")
    p.add_argument("--train-days", dest="train_days", type=float, help="days trained on (default: 14)")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_demo_cmd)

    p = sub.add_parser("train", help="train the hybrid-attention autoencoder on healthy windows from the store")
    p.add_argument("--machines", action="append", help="machine ids, comma-separated or repeated (default: all)")
    p.add_argument("--from", dest="start", help="first time (UTC ISO-8601; default: the data's start)")
    p.add_argument("--to", dest="stop", help="end time, exclusive (default: now)")
    p.add_argument("--step", default="10min", help="grid step")
    p.add_argument("--window", type=int, default=144, help="window length in steps (64..16384)")
    p.add_argument("--stride", type=int, default=12, help="steps between window starts")
    p.add_argument("--error-trim", dest="error_trim", type=_trim_share, metavar="SHARE",
                   help="leave each window's largest SHARE of step errors out of its channel errors, in calibration "
                        "and scoring (default: FeatureConfig.error_trim)")
    p.add_argument("--count-scaling", dest="count_scaling", action=argparse.BooleanOptionalAction, default=None,
                   help="scale every window's channel z-scores by the square root of its share of counted steps, "
                        "in calibration and scoring (default: FeatureConfig.count_scaling)")
    p.add_argument("--scored-hours", dest="scored_hours", type=_scored_hours, metavar="H",
                   help="only each window's last H hours count towards its errors, in calibration and scoring "
                        "(the model still reads the whole window); 'all': every step (default: "
                        "FeatureConfig.scored_hours, 8)")
    p.add_argument("--stops-as-gaps", dest="stops_as_gaps", action=argparse.BooleanOptionalAction, default=None,
                   help="show a stop inside a window, and the warm-up after a start, to the model as a gap in a "
                        "running record (every sensor unobserved, speed, load and running held), in training, "
                        "calibration and scoring (default: FeatureConfig.stops_as_gaps)")
    p.add_argument("--patch", type=int, default=8, help="time steps per token")
    p.add_argument("--attention", choices=["hybrid", "full", "window"], default="hybrid")
    p.add_argument("--d-model", dest="d_model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    p.add_argument("--mvp-epochs", dest="mvp_epochs", type=int, default=0,
                   help="epochs of tsai MVP masked-reconstruction pretraining before the main fit (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_train_cmd)

    p = sub.add_parser("score", help="score windows with the production model: write scores, alarms and root causes")
    p.add_argument("--models", metavar="DIR", help="models root or one model directory "
                                                   "(default: pipeline.models_dir or <data_dir>/models)")
    p.add_argument("--version", dest="model_version", help="model version under --models (default: production)")
    p.add_argument("--machines", action="append", help="machine ids, comma-separated or repeated (default: all "
                                                       "the model knows)")
    p.add_argument("--from", dest="start", help="first window end, UTC ISO-8601 (default: each machine's latest window)")
    p.add_argument("--to", dest="stop", help="window ends before this, exclusive (default: each machine's last data)")
    p.add_argument("--dry-run", action="store_true", help="compute and print, write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-machine progress lines")
    p.set_defaults(func=_score_cmd)

    p = sub.add_parser("evaluate", help="event metrics (lead time, false alarms per machine-month) against a failure log")
    _evaluate_args(p)
    p.add_argument("--json", metavar="OUT", help="also write the metrics as JSON to OUT")
    p.set_defaults(func=_evaluate_cmd)

    p = sub.add_parser("report", help="write a self-contained HTML report (metrics, lead times, score timelines, "
                                      "root causes) and its metrics JSON")
    _evaluate_args(p)
    p.add_argument("--out", metavar="FILE", help="HTML file (default: <data_dir>/reports/report.html); "
                                                 "the metrics go beside it as .json")
    p.set_defaults(func=_report_cmd)

    _add_import_parser(sub)

    p = sub.add_parser("benchmark", help="run TSHAE and the baselines on the same windows and thresholds; print one table")
    p.add_argument("suite", choices=["skab", "sim"],
                   help="skab: SKAB with its leaderboard protocol; sim: a simulated fleet, event metrics")
    p.add_argument("--detectors", action="append",
                   help="comma-separated subset of tshae,pca,iforest,conv_ae,lstm_ae,tst_mvp (default: all)")
    p.add_argument("--out", default="benchmarks/results", help="folder for the results files")
    p.add_argument("--seed", type=int, help="random seed (skab: model seed, default 0; sim: fleet and model seed)")
    p.add_argument("--data", help="skab: SKAB folder holding data/ (default: $PDM_SKAB_DIR, shared/data/skab)")
    p.add_argument("--window", type=int, help="window length: skab in rows (default 64), sim in steps (default 72); "
                                                "TSHAE needs >= 64")
    p.add_argument("--limit", type=int, help="skab: only the first N files (partial run, written as skab_partial.*)")
    p.add_argument("--report-only", dest="report_only", action="store_true",
                   help="skab: rebuild skab.json/.md from the per-detector results already in --out")
    p.add_argument("--quick", action="store_true", help="sim: small fleet, few epochs (a few minutes)")
    p.add_argument("--machines", type=int, help="sim: fleet size")
    p.add_argument("--days", type=float, help="sim: days simulated")
    p.add_argument("--train-days", dest="train_days", type=float, help="sim: days at the start to fit on (default 20)")
    p.add_argument("--stride", type=int, help="sim: window stride in steps (default 6)")
    p.add_argument("--epochs", type=int, help="sim: TSHAE epochs (the neural baselines scale with it; default 5)")
    p.add_argument("--stages", choices=["plain", "product"], default="plain",
                   help="sim: plain = calibration, POT and alarm rule only; product = every detector also through "
                        "pdm's scorer's stages (held-out calibration, running gate, operating envelope, new baseline "
                        "after work orders); results as sim[_quick]_product.*")
    p.add_argument("--tshae-d-model", dest="tshae_d_model", type=int,
                   help="sim: TSHAE's model width (default 32; pdm's own model has 64)")
    p.add_argument("--model-seed", dest="model_seed", type=int,
                   help="sim: the detectors' training seed (default: --seed, the fleet's), for other trainings on one fleet")
    p.add_argument("--ensemble-seeds", dest="ensemble_seeds", metavar="S1,S2,...",
                   help="sim: fit every detector trained here once per seed and score the mean of their errors (a "
                        "seed ensemble; TSHAE trains once per seed unless --tshae-from/--tshae-also give its members)")
    p.add_argument("--tshae-from", dest="tshae_from", metavar="DIR",
                   help="sim: score this model directory's TSHAE weights instead of training one (same windows, "
                        "scaling, calibration and thresholds as the others)")
    p.add_argument("--tshae-also", dest="tshae_also", metavar="DIR", action="append",
                   help="sim: a further model directory scored with --tshae-from's as one detector, the mean of "
                        "their errors (a seed ensemble); repeat for more")
    p.add_argument("--tshae-scoring", dest="tshae_scoring", choices=("modality", "vibration", "reconstruct"),  # pdm.model.tshae.SCORING
                   help="sim: score the --tshae-from weights this way instead of as saved (modality: each modality "
                        "imputed from the other; vibration: only vibration imputed, the rest reconstructed shown; "
                        "reconstruct: every channel shown)")
    p.add_argument("--tshae-save", dest="tshae_save", metavar="DIR",
                   help="sim: write the TSHAE trained here as a model directory under DIR (read back with --tshae-from)")
    p.add_argument("--series", action="store_true",
                   help="sim: also write each detector's per-window scores, thresholds and channel scores "
                        "(STEM_series/DETECTOR.parquet beside the results), to study misses without a rerun")
    p.add_argument("--running-scaling", dest="running_scaling", action="store_true",
                   help="sim: vibration and currents scaled on the steps each machine ran (FeatureConfig.running_scaling)")
    p.add_argument("--temperatures-running", dest="temperatures_running", action="store_true",
                   help="sim: temperatures' median and IQR from the steps each machine ran "
                        "(FeatureConfig.temperatures_running)")
    p.add_argument("--error-trim", dest="error_trim", type=_trim_share, default=0.0, metavar="SHARE",
                   help="sim: leave each window's largest SHARE of step errors out of its channel errors "
                        "(an upper-trimmed mean, so one spike does not carry a window; default 0)")
    p.add_argument("--count-scaling", dest="count_scaling", action=argparse.BooleanOptionalAction, default=None,
                   help="sim (product stages): every window's channel z-scores times the square root of its share "
                        "of counted steps, in calibration and scoring (a part-window's mean scatters more; "
                        "default: off, as the product)")
    p.add_argument("--stops-as-gaps", dest="stops_as_gaps", action=argparse.BooleanOptionalAction, default=None,
                   help="sim (product stages): a stop inside a window, and the warm-up after a start, shown to every "
                        "detector as a gap in a running record, in training, calibration and scoring "
                        "(FeatureConfig.stops_as_gaps; default: off, as the product)")
    p.add_argument("--stop-thresholds", dest="stop_thresholds", action="store_true",
                   help="sim (product stages): windows in which the machine ran every step judged against a "
                        "threshold fitted on the calibration windows run throughout (default: off, as the product)")
    p.add_argument("--tail-quantile", dest="tail_quantile", type=_tail_quantile, default=None, metavar="Q",
                   help="sim (product stages): each channel's z-scores divided by their calibration quantile Q "
                        "(pdm.detect.stages.tail_scale; default: not, as the product)")
    p.add_argument("--last-steps", dest="last_steps", type=int, default=None, metavar="N",
                   help="sim (product stages): only each window's last N steps count towards its errors, in "
                        "calibration and scoring (the model still reads the whole window); 0: every step (default: "
                        "the product's, FeatureConfig.scored_hours in steps)")
    p.add_argument("--tag", help="sim: appended to the results files' names (sim_TAG.json), so runs do not overwrite")
    p.set_defaults(func=_benchmark_cmd)

    p = sub.add_parser("dashboard", help="serve the plant-floor dashboard (Dash) over the store and models")
    p.add_argument("--host", help="address to listen on (default: settings, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: settings, 8050)")
    p.add_argument("--debug", action="store_true", help="Dash's development server with reloading and tracebacks")
    p.set_defaults(func=_dashboard_cmd)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pdmctl``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(f"pdmctl: {exc}", file=sys.stderr)
        return 2
    from pdm.store.errors import StoreError

    try:
        return int(args.func(args, settings))
    except StoreError as exc:
        print(f"pdmctl {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
