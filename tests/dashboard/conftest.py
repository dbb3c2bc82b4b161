"""Fixtures for the dashboard tests: a real plant chain on a private InfluxDB 1.x, headless Chromium.

The browser tests always run headless (a plant-floor test box has no display)
at the 1280x800 of the plant-floor screens, and save a PNG of each page under
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pdm.settings import Settings, load_settings

HERE = Path(__file__).parent
SCREENSHOTS = HERE.parents[1] / "test-artifacts" / "screenshots"
FAULTY, ROOT_CAUSE_MODE = "pump-001", "bearing_wear"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "headless"):
        config.option.headless = True


def pytest_setup_options() -> Any:
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.add_argument("--window-size=1280,800")
    return options


@dataclass
class Plant:
    settings: Settings
    server: Any  # pdm.devtools.influxd.InfluxServer
    model_version: str
    alarms: pd.DataFrame
    truth: pd.DataFrame


@pytest.fixture(scope="session")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    """Simulate 5 machines x 11 days (one bearing failure) into a private InfluxDB 1.x,
    train a tiny TSHAE, promote it and score the fleet: the real chain the dashboard shows."""
    if shutil.which("influxd") is None:
        pytest.skip("no influxd: run `make sysdeps`")
    from pdm.detect.score import score_machines
    from pdm.devtools.influxd import InfluxServer
    from pdm.model.pipeline import FeatureConfig, train_fleet
    from pdm.model.registry import promote
    from pdm.model.train import TrainConfig
    from pdm.store import open_store
    from sensors_sim.config import fleet_config
    from sensors_sim.run import backfill

    root = tmp_path_factory.mktemp("dash-plant")
    server = InfluxServer(root / "influxd")
    server.start()
    try:
        settings = load_settings(
            store={"backend": "influxdb1", "url": server.url, "database": "dash", "retries": 0,
                   "timeout_s": 5.0},
            data_dir=str(root / "data"))
        models = root / "data" / "models"
        with open_store(settings.store) as store:
            sim = backfill(store, fleet_config(HERE / "fleet.toml"), 11, progress=False)
            report = train_fleet(store, models, start=sim.start, stop=sim.end,
                                 features=FeatureConfig(window=72, stride=24),
                                 model_overrides={"d_model": 32, "layers": 1},
                                 train_cfg=TrainConfig(epochs=2, seed=0))
            promote(models, report.path.name, reason="dashboard test")
            score_machines(store, report.path, start=pd.Timestamp("2024-01-02", tz="UTC"), progress=False)
            alarms = store.read("pdm_alarm")
            truth = store.read("pdm_truth")
        yield Plant(settings, server, report.path.name, alarms, truth)
    finally:
        server.stop()


def screenshot(dash_duo: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver = dash_duo.driver
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    # The whole page, at the window's width (a viewport-sized shot would cut it at the fold).
    driver.set_window_size(size["width"], max(size["height"], min(int(height) + 140, 4000)))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    return path
