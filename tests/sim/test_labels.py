"""Ground truth: the labels file and the store's pdm_truth say the same, apart from the sensor data."""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.store.embedded import EmbeddedStore
from sensors_sim.config import FAULT_MODES
from sensors_sim.plant import PlantSimulator
from sensors_sim.run import TRUTH, backfill, labels
from sensors_sim.timeline import NS_DAY
from tests.sim.plantdata import START, fleet

NUISANCE = {"maintenance_per_year": 60.0, "sensor_replaced_per_year": 40.0, "dropouts_per_month": 20.0,
            "spikes_per_month": 20.0, "stuck_per_year": 60.0, "clock_skew_per_year": 30.0,
            "duplicates_per_month": 20.0, "regime_changes_per_line_year": 40.0}
DAYS = 2.0


def config():
    return fleet([
        {"id": "pump-1", "type": "centrifugal_pump", "random_faults": False,
         "faults": [{"mode": "imbalance", "failure": (START + pd.Timedelta(hours=30)).isoformat(),
                     "onset_days": 6, "repair_hours": 10}]},
        {"id": "gbx-2", "type": "gearbox", "random_faults": False},
    ], nuisance=NUISANCE, seed=21)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labels")
    store = EmbeddedStore(tmp / "s.duckdb")
    backfill(store, config(), DAYS, labels_path=tmp / "labels.csv", progress=False)
    return store, tmp / "labels.csv"


def from_csv(path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False)
    out = pd.DataFrame({
        "machine": df["machine"], "kind": df["kind"],
        "start": pd.to_datetime(df["start"], utc=True),
        "is_failure": df["is_failure"].astype(str) == "True",
        "failure": pd.to_datetime(df["failure"].replace("", None), utc=True),
        "end": pd.to_datetime(df["end"], utc=True),
        "root_cause": df["root_cause"], "affected": df["affected"], "detail": df["detail"],
    })
    return _ns(out)


def _ns(out: pd.DataFrame) -> pd.DataFrame:
    for c in ("start", "failure", "end"):
        out[c] = pd.to_datetime(out[c], utc=True).dt.as_unit("ns")
    return out.sort_values(["start", "machine", "kind"]).reset_index(drop=True)


def from_store(store) -> pd.DataFrame:
    t = store.read(TRUTH)
    out = pd.DataFrame({
        "machine": t["machine"].to_numpy(), "kind": t["kind"].to_numpy(),
        "start": t.index,
        "is_failure": t["is_failure"].astype(bool).to_numpy(),
        "failure": pd.to_datetime(t["failure_ns"].astype("float64"), unit="ns", utc=True).to_numpy(),
        "end": pd.to_datetime(t["end_ns"].astype("int64"), unit="ns", utc=True).to_numpy(),
        "root_cause": t["root_cause"].fillna("").to_numpy(), "affected": t["affected"].fillna("").to_numpy(),
        "detail": t["detail"].fillna("").to_numpy(),
    })
    return _ns(out)


def test_the_labels_file_and_pdm_truth_hold_the_same_events(backfilled):
    store, path = backfilled
    csv, stored = from_csv(path), from_store(store)
    assert len(csv) >= 5, "the busy config has events of several kinds"
    pd.testing.assert_frame_equal(csv, stored, check_dtype=False)


def test_the_labels_cover_every_event_overlapping_the_span_and_only_those(backfilled):
    _, path = backfilled
    csv = from_csv(path)
    t0, t1 = START, START + pd.Timedelta(days=DAYS)
    assert ((csv["start"] < t1) & (csv["end"] >= t0)).all()
    sim = PlantSimulator(config())
    expected = [e for e in sim.events() if e.start < t1.value and (e.repair_end or e.end) >= t0.value]
    assert len(csv) == len(expected)


def test_the_failure_is_labelled_with_onset_failure_repair_and_root_cause(backfilled):
    _, path = backfilled
    csv = from_csv(path)
    (fail,) = csv[csv["is_failure"]].itertuples()
    assert fail.machine == "pump-1" and fail.kind == "imbalance"
    assert fail.failure == START + pd.Timedelta(hours=30)
    assert fail.start == fail.failure - pd.Timedelta(days=6)  # onset, before the backfilled span
    assert fail.end == fail.failure + pd.Timedelta(hours=10)  # back in service
    assert fail.root_cause.split(";")[0] == "vibration.de.band_1x"


def test_every_kind_of_nuisance_is_labelled_as_itself_never_as_a_failure(backfilled):
    _, path = backfilled
    csv = from_csv(path)
    others = csv[~csv["is_failure"]]
    assert set(others["kind"]) >= {"dropout", "spike", "duplicates"}
    assert not set(others["kind"]) & set(FAULT_MODES)
    assert others["failure"].isna().all() and (others["root_cause"] == "").all()
    touched = others[others["kind"].isin(["dropout", "spike", "stuck", "sensor_replaced"])]
    assert touched["affected"].str.match(r"^(temperature|vibration)\.\w+\.\w+$").all()


def test_the_truth_is_never_mixed_into_the_sensor_measurements(backfilled):
    store, _ = backfilled
    assert TRUTH in store.measurements()
    label_columns = {"kind", "is_failure", "failure_ns", "end_ns", "root_cause", "affected", "detail"}
    for meas in ("process", "temperature", "vibration", "operator_log"):
        assert not label_columns & set(store.read(meas).columns), meas


def test_labels_can_be_written_as_parquet(tmp_path):
    store = EmbeddedStore(tmp_path / "s.duckdb")
    backfill(store, config(), 0.25, labels_path=tmp_path / "out" / "labels.parquet", progress=False)
    got = pd.read_parquet(tmp_path / "out" / "labels.parquet")
    sim = PlantSimulator(config())
    want = labels(sim, sim.t0, sim.t0 + NS_DAY // 4)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
