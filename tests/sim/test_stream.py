"""Stream mode: live points at real time x speed, resuming after a restart without gaps or duplicates.

A fake clock stands in for the wall clock and ``sleep`` advances it, so the
tests run as fast as the simulator does. A restart is a second ``stream``
call on the same store; what it holds afterwards must equal a backfill of
the same span, ground truth included.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pdm.store.embedded import EmbeddedStore
from sensors_sim.run import CURSOR, backfill, data_digest, read_cursor, stream
from tests.sim.plantdata import START, busy_config


def config():
    return busy_config(seed=2)


class FakeClock:
    """Wall clock in seconds; ``sleep`` moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(store, speed: float, ticks: int) -> int:
    """One stream process: ``ticks`` ticks of one (fake) second each, then stopped."""
    clock = FakeClock()
    return stream(store, config(), speed, tick_s=1.0, max_ticks=ticks, clock=clock, sleep=clock.sleep)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> str:
    """Digest of a backfill of the first 30 hours (sensor data, logs and ground truth)."""
    store = EmbeddedStore(tmp_path_factory.mktemp("bf") / "s.duckdb")
    backfill(store, config(), 30 / 24, progress=False)
    return data_digest(store)


def test_stream_writes_at_real_time_times_speed(tmp_path):
    store = EmbeddedStore(tmp_path / "s.duckdb")
    assert read_cursor(store) is None
    written = run(store, speed=60.0, ticks=4)  # the first tick only starts the clock
    assert written > 0
    assert read_cursor(store) == START.value + 3 * 60 * 10**9
    process = store.read("process")
    assert process.index.max() == START + pd.Timedelta(minutes=2)
    assert len(process) == 3 * 2


def test_a_restarted_stream_continues_where_it_stopped_without_gaps_or_duplicates(tmp_path, backfilled):
    store = EmbeddedStore(tmp_path / "s.duckdb")
    # 2 h 13 min 20 s per tick: the restart points fall between samples and bursts.
    run(store, speed=8000.0, ticks=5)
    assert read_cursor(store) == START.value + 4 * 8000 * 10**9
    run(store, speed=19_000.0, ticks=5)  # 4 x 19,000 s = the remaining 76,000 s of 30 h
    assert read_cursor(store) == START.value + 30 * 3600 * 10**9
    assert data_digest(store) == backfilled


class CrashBeforeCursor(EmbeddedStore):
    """A store whose process dies after writing a tick's points, before the cursor."""

    def __init__(self, path, crash_at_cursor_write: int) -> None:
        super().__init__(path)
        self.cursor_writes = 0
        self.crash_at = crash_at_cursor_write

    def write(self, data, measurement=None, *args, **kwargs):
        if measurement == CURSOR:
            self.cursor_writes += 1
            if self.cursor_writes == self.crash_at:
                raise KeyboardInterrupt("killed")
        return super().write(data, measurement, *args, **kwargs)


def test_a_stream_killed_between_points_and_cursor_rewrites_the_tick_without_duplicates(tmp_path, backfilled):
    path = tmp_path / "s.duckdb"
    crashing = CrashBeforeCursor(path, crash_at_cursor_write=3)
    with pytest.raises(KeyboardInterrupt):
        run(crashing, speed=27_000.0, ticks=10)  # 7.5 h a tick; dies in the third
    assert read_cursor(EmbeddedStore(path)) == START.value + 2 * 27_000 * 10**9
    store = EmbeddedStore(path)
    run(store, speed=27_000.0, ticks=3)  # the lost tick again, and one more: 30 h
    assert read_cursor(store) == START.value + 30 * 3600 * 10**9
    assert data_digest(store) == backfilled


def test_a_stream_stopped_at_midnight_still_writes_the_late_points_of_the_day_before(tmp_path, backfilled):
    # Points of a gateway whose clock runs ahead carry times just after
    # midnight, though they belong to the day before: the restart must
    # write them too.
    store = EmbeddedStore(tmp_path / "s.duckdb")
    run(store, speed=24 * 3600.0, ticks=2)  # day 0 in one tick, stopped at midnight
    assert read_cursor(store) == START.value + 24 * 3600 * 10**9
    run(store, speed=3 * 3600.0, ticks=3)  # then 6 h more
    assert data_digest(store) == backfilled


def test_speed_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="speed"):
        stream(EmbeddedStore(tmp_path / "s.duckdb"), config(), 0)
