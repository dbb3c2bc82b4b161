"""Fixtures of the simulator tests: plants generated once per session."""

from __future__ import annotations

import pytest

from sensors_sim.plant import PlantSimulator
from tests.sim.plantdata import FAULT_DAYS, Plant, fault_config, generate


@pytest.fixture(scope="session")
def fault_plant() -> Plant:
    """One machine per fault mode, all failing on day 14 (see plantdata)."""
    config = fault_config()
    sim = PlantSimulator(config)
    return Plant(config, sim, generate(sim, range(FAULT_DAYS)))
