"""benchmarks/code_speed.py: both trees measured from their own code, the ratio and the int8 line written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_smoke_run_compares_a_revision_checked_out_apart_with_this_tree(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "code_speed.py"), "--baseline", "HEAD", "--small", "--rounds", "1",
           "--steps", "1", "--workloads", "score,score_int8", "--tag", "t", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "code_speed_t_small.json").read_text())
    assert set(res["workloads"]) == {"score", "score_int8"}
    for row in res["workloads"].values():
        assert row["speedup"] > 0 and row["shape"] == "batch 4 x 8 ch x 64"
    md = (tmp_path / "code_speed_t_small.md").read_text()
    assert "| score, batch 4 x 8 ch x 64 |" in md and "int8 / float32 scoring speed-up: baseline" in md
    assert "pdm-baseline-" not in subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True,
                                                 text=True, check=True).stdout  # the checkout is removed again
