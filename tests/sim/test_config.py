"""The fleet file: TOML or YAML, validated; a bad entry stops loading with its name in the message."""

from __future__ import annotations

import pytest
import yaml

from pdm.cli import main
from sensors_sim.config import (
    DEFAULT_CONFIG,
    FleetConfigError,
    fleet_config,
    load_config,
    parse_config,
)
from sensors_sim.plant import PlantSimulator
from sensors_sim.run import frames_digest
from tests.sim.plantdata import fleet

GOOD = {"id": "x-1", "type": "fan"}


def error_of(machines=None, **top) -> str:
    with pytest.raises(FleetConfigError) as exc:
        fleet(machines if machines is not None else [GOOD], **top)
    return str(exc.value)


def test_an_unknown_machine_type_is_named_with_its_entry_and_the_known_types():
    msg = error_of([GOOD, {"id": "x-2", "type": "blender"}])
    assert "plants[0].lines[0].machines[1] (x-2).type" in msg
    assert "'blender'" in msg and "centrifugal_pump" in msg
    assert "too short" not in msg.lower() and "at least 1 item" not in msg, "only the real problem is reported"


@pytest.mark.parametrize(("section", "key"), [
    ("nuisance", "spikes_per_month"),
    ("nuisance", "dropouts_per_month"),
    ("faults", "per_machine_year"),
])
def test_a_negative_rate_is_named(section, key):
    msg = error_of(**({"nuisance": {key: -1.0}} if section == "nuisance" else {section: {key: -1.0}}))
    assert f"{section}.{key}" in msg and "greater than or equal to 0" in msg


def test_overlapping_explicit_faults_on_one_machine_are_refused_naming_both():
    msg = error_of([GOOD, {"id": "x-2", "type": "gearbox", "faults": [
        {"mode": "imbalance", "failure": "2024-01-10T00:00:00Z", "onset_days": 10},
        {"mode": "bearing_wear", "failure": "2024-01-14T00:00:00Z", "onset_days": 12},
    ]}])
    assert "plants[0].lines[0].machines[1] (x-2)" in msg
    assert "faults[0] (imbalance) and faults[1] (bearing_wear) overlap" in msg


def test_faults_one_after_the_other_are_fine():
    cfg = fleet([{"id": "x-2", "type": "gearbox", "faults": [
        {"mode": "imbalance", "failure": "2024-01-10T00:00:00Z", "onset_days": 7, "repair_hours": 24},
        {"mode": "bearing_wear", "failure": "2024-01-25T00:00:00Z", "onset_days": 10},
    ]}])
    assert len(cfg.machines()[0].faults) == 2


def test_an_unknown_fault_mode_is_named():
    msg = error_of([{"id": "x-1", "type": "fan", "faults": [{"mode": "rust", "failure": "2024-01-10"}]}])
    assert "plants[0].lines[0].machines[0] (x-1).faults[0].mode" in msg


def test_a_machine_id_used_twice_names_both_entries():
    msg = error_of([GOOD, {"id": "x-2", "type": "fan"}, {"id": "x-1", "type": "gearbox"}])
    assert "plants[0].lines[0].machines[2] (x-1).id" in msg
    assert "first at plants[0].lines[0].machines[0] (x-1)" in msg


def test_intervals_that_do_not_fit_together_are_refused():
    assert "rates" in error_of(rates={"process_interval_s": 7})
    assert "rates" in error_of(rates={"process_interval_s": 60, "vibration_interval_s": 90})


def test_unknown_keys_are_refused_not_ignored():
    assert "nuisance.spike_per_month" in error_of(nuisance={"spike_per_month": 3})


def test_a_yaml_fleet_file_is_the_same_fleet_as_its_toml_twin(tmp_path):
    toml_cfg = load_config(DEFAULT_CONFIG)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(toml_cfg.model_dump(mode="json"), sort_keys=False))
    yaml_cfg = load_config(path)
    assert yaml_cfg == toml_cfg
    assert frames_digest(PlantSimulator(fleet_config(path, machines=2)).day(0)) == \
        frames_digest(PlantSimulator(fleet_config(machines=2)).day(0))


def test_a_hand_written_yaml_file_loads(tmp_path):
    path = tmp_path / "small.yml"
    path.write_text(
        "seed: 11\n"
        "start: 2024-03-01T00:00:00Z\n"
        "plants:\n"
        "  - name: p\n"
        "    lines:\n"
        "      - name: l1\n"
        "        shifts: one\n"
        "        machines:\n"
        "          - {id: pump-a, type: centrifugal_pump,\n"
        "             faults: [{mode: bearing_wear, failure: 2024-03-20T06:00:00Z, onset_days: 9}]}\n"
        "          - {id: fan-b, type: fan}\n"
    )
    cfg = load_config(path)
    assert [m.id for m in cfg.machines()] == ["pump-a", "fan-b"]
    assert cfg.machines()[0].faults[0].onset_days == 9


def test_bad_yaml_names_the_file_and_the_entry(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("plants:\n  - name: p\n    lines:\n      - name: l\n        machines:\n          - {id: a, type: toaster}\n")
    with pytest.raises(FleetConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value) and "plants[0].lines[0].machines[0] (a).type" in str(exc.value)


def test_a_file_that_is_not_toml_or_cannot_be_read_says_so(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("plants = [[[\n")
    with pytest.raises(FleetConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(FleetConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_the_cli_stops_on_a_bad_fleet_file_naming_the_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    path = tmp_path / "fleet.toml"
    path.write_text('[[plants]]\nname = "p"\n[[plants.lines]]\nname = "l"\n'
                    '[[plants.lines.machines]]\nid = "x-1"\ntype = "fan"\n'
                    '[[plants.lines.machines]]\nid = "x-2"\ntype = "hovercraft"\n')
    assert main(["simulate", "backfill", "--config", str(path), "--days", "1"]) == 2
    err = capsys.readouterr().err
    assert "plants[0].lines[0].machines[1] (x-2).type" in err and "hovercraft" in err
    assert not (tmp_path / "s.duckdb").exists(), "nothing is written from a bad file"


def test_scaling_keeps_the_line_patterns_and_drops_explicit_faults():
    cfg = fleet_config(machines=25)
    assert len(cfg.machines()) == 25
    assert [line.shifts for line in cfg.plants[0].lines] == ["two", "three", "two"]
    assert all(not m.faults for m in cfg.machines())
    with pytest.raises(FleetConfigError):
        fleet_config(machines=0)


def test_parse_config_accepts_naive_times_as_utc():
    cfg = parse_config({"start": "2024-02-01T00:00:00", "plants": [
        {"name": "p", "lines": [{"name": "l", "machines": [GOOD]}]}]})
    assert cfg.start.utcoffset().total_seconds() == 0
