"""The same seed gives the same data, byte for byte; another seed gives other data."""

from __future__ import annotations

import pandas as pd

from pdm.store.embedded import EmbeddedStore
from sensors_sim.config import fleet_config
from sensors_sim.plant import PlantSimulator
from sensors_sim.run import backfill, data_digest, frames_digest, labels, write_frames, write_truth
from sensors_sim.timeline import NS_DAY
from tests.sim.plantdata import busy_config


def small(seed: int = 7):
    return fleet_config(machines=4, seed=seed)


def test_a_day_is_the_same_for_the_same_seed():
    a, b = PlantSimulator(small()), PlantSimulator(small())
    assert frames_digest(a.day(0)) == frames_digest(b.day(0))


def test_another_seed_gives_other_data():
    a, b = PlantSimulator(small(7)), PlantSimulator(small(8))
    fa, fb = a.day(0), b.day(0)
    assert frames_digest(fa) != frames_digest(fb)
    for meas in ("process", "temperature", "vibration"):
        assert frames_digest({meas: fa[meas]}) != frames_digest({meas: fb[meas]}), meas


def test_any_day_can_be_generated_on_its_own_in_any_order():
    # What backfill and a resumed stream rely on: day 3 does not depend on
    # which days this simulator generated before (caches, random state).
    fresh = PlantSimulator(small())
    used = PlantSimulator(small())
    for d in (5, 0, 1, 2):
        used.day(d)
    assert frames_digest(fresh.day(3)) == frames_digest(used.day(3))


def test_the_digest_sees_a_single_changed_value():
    frames = PlantSimulator(small()).day(0)
    before = frames_digest(frames)
    frames["temperature"].iloc[100, frames["temperature"].columns.get_loc("celsius")] += 0.001
    assert frames_digest(frames) != before


def test_two_backfills_store_identical_data(tmp_path):
    digests = []
    for name in ("a", "b"):
        store = EmbeddedStore(tmp_path / f"{name}.duckdb")
        res = backfill(store, small(), 1.5, progress=False)
        assert res.points > 0
        digests.append(data_digest(store))
    assert digests[0] == digests[1]


def test_a_backfill_stores_exactly_the_generated_days(tmp_path):
    # The backfill generates ahead, writes measurements side by side, carries
    # clock-skewed points over midnight and sends re-sent points separately;
    # none of that may change what ends up stored.
    config = busy_config()
    fast = EmbeddedStore(tmp_path / "fast.duckdb")
    backfill(fast, config, 2.5, progress=False)
    sim = PlantSimulator(config)
    end = sim.t0 + int(2.5 * NS_DAY)
    days = [sim.day(d) for d in range(3)]
    plain = EmbeddedStore(tmp_path / "plain.duckdb")
    for meas in days[0]:
        frame = pd.concat([f[meas] for f in days])
        write_frames(plain, {meas: frame[(frame.index.asi8 >= sim.t0) & (frame.index.asi8 < end)]})
    write_truth(plain, labels(sim, sim.t0, end))
    assert data_digest(fast) == data_digest(plain)


def test_a_backfill_holds_every_day_it_was_asked_for(tmp_path):
    store = EmbeddedStore(tmp_path / "s.duckdb")
    res = backfill(store, small(), 1.5, progress=False)
    process = store.read("process")
    assert process.index.min() == res.start
    # Up to 36 h minus one step (clock-skewed points may land a little later).
    assert res.end - pd.Timedelta(minutes=10) <= process.index.max() < res.end
    assert sorted(store.machines()) == sorted(m.id for m in small().machines())
