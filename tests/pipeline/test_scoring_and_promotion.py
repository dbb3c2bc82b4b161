"""Machine groups for the fan-out, and the promotion rule."""

from __future__ import annotations

import pytest

from pdm.pipeline.retrain import candidate_version, decide_promotion
from pdm.pipeline.scoring import machine_groups


def test_groups_cover_every_machine_once_and_are_stable():
    machines = [f"m{i:03d}" for i in range(40)]
    groups = machine_groups(machines, 4)
    assert sorted(m for g in groups for m in g) == machines
    assert len(groups) == 4 and all(groups)
    # A machine keeps its group when another joins.
    more = machine_groups(machines + ["new-1"], 4)
    where = {m: i for i, g in enumerate(groups) for m in g}
    where2 = {m: i for i, g in enumerate(more) for m in g}
    assert all(where[m] == where2[m] for m in machines)
    assert machine_groups(["a"], 8) == [["a"]]
    with pytest.raises(ValueError):
        machine_groups(machines, 0)


def test_a_candidate_is_promoted_only_when_not_worse():
    prod = {"failures": 2, "recall": 0.5, "false_alarms_per_machine_month": 1.0}
    assert decide_promotion({"recall": 0.5, "false_alarms_per_machine_month": 1.4}, prod)[0]
    ok, why = decide_promotion({"recall": 0.0, "false_alarms_per_machine_month": 0.0}, prod)
    assert not ok and "recall" in why
    ok, why = decide_promotion({"recall": 1.0, "false_alarms_per_machine_month": 2.0}, prod)
    assert not ok and "false alarms" in why
    # Without failures in the recent data only false alarms count.
    assert decide_promotion({"recall": None, "false_alarms_per_machine_month": 0.2},
                            {"failures": 0, "recall": None, "false_alarms_per_machine_month": 0.0})[0]
    assert decide_promotion({"recall": 0.0}, None) == (True, "no production model yet")


def test_candidate_versions_are_deterministic_per_range_end():
    assert candidate_version("2024-01-11T00:00Z", "full") == "20240111T000000Z-full"
