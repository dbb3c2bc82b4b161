"""One data interval of the simulated plant into the store (``pdm_simulate``).

The simulator is deterministic per day, so an interval is the same points
every time it is written: a retried or cleared task writes them again and the
store merges them. Ground truth of events overlapping the interval goes to
``pdm_truth``.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pdm.store import Store

log = logging.getLogger(__name__)


def simulate_interval(store: Store, start: Any, stop: Any, *, config_path: str | None = None,
                      machines: int | None = None, seed: int | None = None, sim_start: str | None = None) -> int:
    """Write the simulated plant's points of ``[start, stop)``; returns field values written."""
    from sensors_sim.config import fleet_config
    from sensors_sim.plant import PlantSimulator
    from sensors_sim.run import _clip, labels, write_frames, write_truth
    from sensors_sim.timeline import NS_DAY

    config = fleet_config(config_path, machines=machines, seed=seed, start=sim_start)
    sim = PlantSimulator(config)
    lo, hi = pd.Timestamp(start).value, pd.Timestamp(stop).value
    if hi <= lo:
        raise ValueError("empty interval")
    if hi <= sim.t0:
        log.info("simulate: interval ends before the simulated plant starts (%s)", config.start)
        return 0
    lo = max(lo, sim.t0)
    written = 0
    # Clock-skewed points of the day before can fall into this interval.
    for d in range(max((lo - sim.t0) // NS_DAY - 1, 0), (hi - 1 - sim.t0) // NS_DAY + 1):
        first, resent = sim.day_parts(int(d))
        written += write_frames(store, _clip(first, lo, hi), _clip(resent, lo, hi))
    written += write_truth(store, labels(sim, lo, hi))
    log.info("simulate: %d values for %s .. %s", written, pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC"))
    return written
