"""Every page in real headless Chromium over a simulated, trained and scored plant on InfluxDB 1.x.

Each test saves a screenshot of its page under test-artifacts/screenshots/.
The store-down test stops the InfluxDB server, so it runs last.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from dashboard.app import create_app
from dashboard.data import STATUS_ORDER
from pdm.store import open_store
from tests.dashboard.conftest import FAULTY, Plant, screenshot

pytestmark = pytest.mark.slow


def _wait(pred: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
        except Exception:  # noqa: BLE001 - elements come and go while Dash re-renders
            got = None
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _click(dash_duo: Any, selector: str) -> None:
    """Click ``selector``, again if Dash re-rendered it between finding and clicking."""

    def attempt() -> bool:
        dash_duo.find_element(selector).click()
        return True

    _wait(attempt, what=f"a click on {selector}")


def _tiles(dash_duo: Any) -> list[str]:
    return [e.get_attribute("data-machine") for e in dash_duo.find_elements(".tile")]


def _faulty_alarm_ns(plant: Plant) -> int:
    mine = plant.alarms[plant.alarms["machine"] == FAULTY]
    assert not mine.empty, f"the model raised no alarm on {FAULTY}: {plant.alarms}"
    return int(mine.index[-1].value)


def test_fleet_page_shows_every_machine_grouped_by_line(dash_duo: Any, plant: Plant) -> None:
    dash_duo.start_server(create_app(plant.settings))
    with open_store(plant.settings.store) as store:
        machines = store.machines(["vibration"])
    shown = _wait(lambda: _tiles(dash_duo) if len(_tiles(dash_duo)) == len(machines) else None,
                  what="a tile per machine")
    assert sorted(shown) == machines
    lines = [e.get_attribute("data-line") for e in dash_duo.find_elements(".line-group")]
    assert sorted(lines) == ["line-1", "line-2"]
    statuses = [e.get_attribute("data-status") for e in dash_duo.find_elements(".tile")]
    order = STATUS_ORDER
    for group in dash_duo.find_elements(".line-group"):  # worst first within a line
        ranks = [order[t.get_attribute("data-status")] for t in group.find_elements(By.CSS_SELECTOR, ".tile")]
        assert ranks == sorted(ranks)
    assert set(statuses) <= set(order)
    assert dash_duo.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(dash_duo, "fleet")
    dash_duo.driver.set_window_size(820, 1180)  # a tablet, portrait
    time.sleep(0.5)
    assert dash_duo.driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(dash_duo, "fleet-tablet")
    assert not dash_duo.get_logs()


def test_machine_with_a_fault_shows_its_alarm_and_score_above_threshold_then_its_root_cause(
        dash_duo: Any, plant: Plant) -> None:
    alarm_ns = _faulty_alarm_ns(plant)
    dash_duo.start_server(create_app(plant.settings))
    _click(dash_duo, f".tile[data-machine='{FAULTY}']")
    dash_duo.wait_for_text_to_equal("#machine-title", FAULTY, timeout=20)
    item = f".alarm-item[data-alarm='{alarm_ns}']"
    _wait(lambda: dash_duo.find_element(item), what="its alarm")
    peak = _wait(lambda: float(dash_duo.find_element("#machine-peak").text), what="the peak score")
    assert peak > 1.0, "score never above the threshold"
    _wait(lambda: dash_duo.find_elements("#machine-graph .js-plotly-plot"), what="the trend graph")
    time.sleep(1.0)
    screenshot(dash_duo, "machine")
    # "all" (the last range): from the first data on, aggregated by the store.
    _wait(lambda: dash_duo.find_elements("#machine-range input")[-1].click() or True, what="the range picker")
    _wait(lambda: "2024-01-01 00:00 →" in dash_duo.find_element("#machine-summary").text, what="the whole range")
    assert "store-aggregated" in dash_duo.find_element("#machine-summary").text

    _click(dash_duo, f"{item} .rc-link")
    ranking = _wait(lambda: dash_duo.find_elements("#rc-ranking li"), what="the channel ranking")
    ranked = [li.get_attribute("data-channel") for li in ranking]
    truth = plant.truth[(plant.truth["machine"] == FAULTY) & plant.truth["is_failure"].fillna(False).astype(bool)]
    cause = str(truth["root_cause"].iloc[0]).split(";")
    assert ranked[0] in cause or ranked[1] in cause, f"ground truth {cause} not ranked 1st or 2nd: {ranked[:5]}"
    for gid in ("rc-spatial", "rc-baseline", "rc-diff", "rc-temporal"):
        _wait(lambda gid=gid: dash_duo.find_elements(f"#{gid} .js-plotly-plot"), what=f"heatmap {gid}")
    time.sleep(1.0)
    screenshot(dash_duo, "rootcause")
    assert not dash_duo.get_logs()


def test_acknowledging_an_alarm_stores_it_in_the_operator_log(dash_duo: Any, plant: Plant) -> None:
    alarm_ns = _faulty_alarm_ns(plant)
    dash_duo.start_server(create_app(plant.settings))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/alarms")
    _wait(lambda: dash_duo.find_elements("#alarms tbody tr"), what="the alarm table")
    dash_duo.find_element("#ack-alarm").click()
    option = _wait(lambda: next(o for o in dash_duo.find_elements(".dash-dropdown-option")
                                if FAULTY in o.text), what="the faulty machine's alarm in the list")
    option.click()
    dash_duo.find_element("#ack-operator").send_keys("op-tester")
    dash_duo.find_element("#ack-comment").send_keys("replaced DE bearing, vibration back to normal")
    dash_duo.find_element("#ack-button").click()
    dash_duo.wait_for_contains_text("#ack-message", "Acknowledged by op-tester", timeout=20)
    with open_store(plant.settings.store) as store:
        log = store.read("operator_log", FAULTY)
    ack = log[log["event_type"] == "alarm_ack"]
    assert len(ack) >= 1
    assert "replaced DE bearing" in ack["message"].iloc[-1] and ack["operator"].iloc[-1] == "op-tester"
    assert int(ack["alarm_ns"].iloc[-1]) in set(plant.alarms.index.map(lambda t: int(t.value)))
    _wait(lambda: "op-tester" in dash_duo.find_element("#alarms").text, what="the acknowledgement in the table")
    screenshot(dash_duo, "alarms")
    dash_duo.wait_for_page(f"{dash_duo.server_url}/machine/{FAULTY}")
    _wait(lambda: "acknowledged by op-tester" in dash_duo.find_element(
        f".alarm-item[data-alarm='{alarm_ns}']").text or any(
        "acknowledged by op-tester" in e.text for e in dash_duo.find_elements(".alarm-item")),
        what="the acknowledgement on the machine page")


def test_model_page_shows_the_production_version(dash_duo: Any, plant: Plant) -> None:
    dash_duo.start_server(create_app(plant.settings))
    dash_duo.wait_for_page(f"{dash_duo.server_url}/model")
    dash_duo.wait_for_text_to_equal("#model-production", plant.model_version, timeout=20)
    assert plant.model_version in dash_duo.find_element("#model-versions").text
    assert "valid_loss" in dash_duo.find_element("#model-metrics").text
    _wait(lambda: dash_duo.find_elements("#model-drift .js-plotly-plot"), what="the drift figure")
    screenshot(dash_duo, "model")


def test_store_down_shows_a_banner_and_recovers(dash_duo: Any, plant: Plant) -> None:
    fast = plant.settings.dashboard.model_copy(update={"refresh_s": 2.0})
    dash_duo.start_server(create_app(plant.settings.model_copy(update={"dashboard": fast})))
    _wait(lambda: len(_tiles(dash_duo)) == 5, what="the fleet")
    banner = "#store-banner"
    assert "hidden" in dash_duo.find_element(banner).get_attribute("class")
    plant.server.stop()
    try:
        _wait(lambda: "hidden" not in dash_duo.find_element(banner).get_attribute("class"), timeout=30,
              what="the store banner")
        assert "Store unreachable" in dash_duo.find_element(banner).text
        assert "Traceback" not in dash_duo.driver.page_source
        assert len(_tiles(dash_duo)) == 5  # the last data stays on screen
        screenshot(dash_duo, "store-down")
    finally:
        plant.server.start()
    _wait(lambda: "hidden" in dash_duo.find_element(banner).get_attribute("class"), timeout=40,
          what="the banner to go")
    dash_duo.find_element(".brand").click()
    _wait(lambda: len(_tiles(dash_duo)) == 5, what="the fleet again")
