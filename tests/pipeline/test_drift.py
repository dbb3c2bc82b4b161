"""The per-channel KS drift test."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pdm.pipeline.drift import DriftReport, channel_drift


def test_same_distribution_does_not_drift_and_a_shift_does():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 2000), "b": rng.normal(0, 1, 2000)})
    rec = pd.DataFrame({"a": rng.normal(0, 1, 1000), "b": rng.normal(1.5, 1, 1000)})
    t = channel_drift(ref, rec).set_index("channel")
    assert not t.loc["a", "drifted"] and t.loc["a", "statistic"] < 0.1
    assert t.loc["b", "drifted"] and t.loc["b", "statistic"] > 0.3 and t.loc["b", "pvalue"] < 0.01


def test_a_small_but_significant_shift_stays_below_the_effect_size_threshold():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(0, 1, 20000)})
    rec = pd.DataFrame({"a": rng.normal(0.15, 1, 20000)})
    row = channel_drift(ref, rec).iloc[0]
    assert row["pvalue"] < 1e-6 and not row["drifted"]


def test_channels_with_too_few_values_are_not_tested():
    ref = pd.DataFrame({"a": np.r_[np.zeros(10), np.full(100, np.nan)]})
    rec = pd.DataFrame({"a": np.zeros(100)})
    assert channel_drift(ref, rec).empty


def test_the_decision_follows_the_share_of_drifting_channels():
    table = pd.DataFrame({"machine": ["m"] * 4, "channel": list("abcd"), "statistic": [0.5, 0.1, 0.1, 0.1],
                          "pvalue": [0.0, 0.5, 0.5, 0.5], "n_reference": 100, "n_recent": 100,
                          "drifted": [True, False, False, False]})
    assert DriftReport(table, 0.25, 0.25, 4).decision == "finetune"
    assert DriftReport(table, 0.25, 0.2, 4).decision == "retrain"
    assert DriftReport(table.iloc[:0], 0.0, 0.25, 0).decision == "finetune"
