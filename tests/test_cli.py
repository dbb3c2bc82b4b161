"""pdmctl: every subcommand has --help; the store commands work on the embedded store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pdm.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ["store", "simulate", "demo", "train", "score", "evaluate", "import", "report", "dashboard"]:
        assert name in out


@pytest.mark.parametrize("name", _subcommands())
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: pdmctl " + name in capsys.readouterr().out


def test_simulate_then_store_summary_on_the_embedded_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__PATH", str(tmp_path / "s.duckdb"))
    monkeypatch.setenv("PDM_STORE__BACKEND", "embedded")
    assert main(["simulate", "backfill", "--machines", "2", "--days", "0.25"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["store", "machines"]) == 0
    assert capsys.readouterr().out.split() == ["fan-002", "pump-001"]
    assert main(["store", "summary"]) == 0
    out = capsys.readouterr().out
    assert "vibration" in out and "temperature" in out and "process" in out


def test_an_invalid_setting_exits_2_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "oracle")
    assert main(["store", "ping"]) == 2
    assert "store.backend" in capsys.readouterr().err


def test_an_unreachable_store_exits_1_with_the_url_not_the_token(monkeypatch, capsys):
    monkeypatch.setenv("PDM_STORE__BACKEND", "influxdb1")
    monkeypatch.setenv("PDM_STORE__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PDM_STORE__PASSWORD", "pw-secret-123")
    monkeypatch.setenv("PDM_STORE__USERNAME", "admin")
    monkeypatch.setenv("PDM_STORE__RETRIES", "1")
    monkeypatch.setenv("PDM_STORE__BACKOFF_S", "0.01")
    assert main(["store", "ping"]) == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9" in err and "pw-secret-123" not in err


def test_the_console_script_is_installed_and_answers():
    out = subprocess.run([sys.executable, "-m", "pdm.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pdmctl ")


def test_benchmark_sim_offers_every_tshae_scoring_and_no_other():
    from pdm.model.tshae import SCORING

    parser = build_parser()
    for s in SCORING:
        assert parser.parse_args(["benchmark", "sim", "--tshae-scoring", s]).tshae_scoring == s
    with pytest.raises(SystemExit):
        parser.parse_args(["benchmark", "sim", "--tshae-scoring", "other"])
