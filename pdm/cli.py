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

from pdm import __version__
from pdm.settings import Settings, SettingsError, load_settings

log = logging.getLogger("pdm")

#: Subcommands that later work fills in: name → (help, issue that delivers it).
PLANNED: dict[str, tuple[str, int]] = {
    "score": ("score the latest windows, write scores, alarms and root causes", 5),
    "evaluate": ("event metrics (lead time, false alarms per machine-month) against a failure log", 5),
    "import": ("import your own plant's history from CSV or Parquet", 5),
    "report": ("write an HTML report with metrics and score timelines", 5),
    "benchmark": ("run TSHAE and the baselines on the same windows", 5),
    "dashboard": ("serve the plant-floor dashboard", 7),
}


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

    run_demo(settings, machines=args.machines, days=args.days, seed=args.seed)
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
    features = FeatureConfig(step=args.step, window=args.window, stride=args.stride)
    overrides = {"attention": args.attention, "d_model": args.d_model, "layers": args.layers, "patch": args.patch}
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size)
    with open_store(settings.store) as store:
        report = train_fleet(store, settings.data_dir / "models", machines=machines, start=args.start,
                             stop=args.stop, features=features, model_overrides=overrides, train_cfg=cfg)
    for m, why in report.skipped.items():
        print(f"skipped {m}: {why}")
    met = report.metrics
    print(f"trained on {len(report.machines)} machines, {met['windows']} windows, {met['epochs_run']} epochs "
          f"in {met['seconds']:.1f}s; valid loss {met['valid_loss'][-1]:.4f}")
    print(f"model directory: {report.path}")
    return 0


def _planned(name: str, issue: int) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        print(f"pdmctl {name}: not available yet (planned in issue #{issue})", file=sys.stderr)
        return 2

    return run


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
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_demo_cmd)

    p = sub.add_parser("train", help="train the hybrid-attention autoencoder on healthy windows from the store")
    p.add_argument("--machines", action="append", help="machine ids, comma-separated or repeated (default: all)")
    p.add_argument("--from", dest="start", help="first time (UTC ISO-8601; default: the data's start)")
    p.add_argument("--to", dest="stop", help="end time, exclusive (default: now)")
    p.add_argument("--step", default="10min", help="grid step")
    p.add_argument("--window", type=int, default=144, help="window length in steps (64..16384)")
    p.add_argument("--stride", type=int, default=12, help="steps between window starts")
    p.add_argument("--patch", type=int, default=8, help="time steps per token")
    p.add_argument("--attention", choices=["hybrid", "full", "window"], default="hybrid")
    p.add_argument("--d-model", dest="d_model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_train_cmd)

    for name, (text, issue) in PLANNED.items():
        p = sub.add_parser(name, help=f"{text} (planned: issue #{issue})")
        p.set_defaults(func=_planned(name, issue))
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
