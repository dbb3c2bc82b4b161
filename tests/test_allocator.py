"""pdm.model.allocator: applied once per process on glibc, left alone with PDM_MALLOC=default; its benchmark runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.allocator import markdown, run

PROBE = (
    "import ctypes, ctypes.util, json\n"
    "from pdm.model import allocator\n"
    "from pdm.model.train import seed_everything\n"
    "seed_everything(0)\n"
    "first = allocator.tune()\n"
    "libc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
    "libc.malloc.restype = ctypes.c_void_p\n"
    "libc.malloc.argtypes = [ctypes.c_size_t]\n"
    "libc.free.argtypes = [ctypes.c_void_p]\n"
    "def in_heap(addr):\n"
    "    for line in open('/proc/self/maps'):\n"
    "        if line.rstrip().endswith('[heap]'):\n"
    "            lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
    "            if lo <= addr < hi:\n"
    "                return True\n"
    "    return False\n"
    "p = libc.malloc(64 << 20)\n"  # above glibc's largest default mmap threshold (32 MiB)
    "heap = in_heap(p)\n"
    "libc.free(p)\n"
    "print(json.dumps({'first': first, 'again': allocator.tune(), 'from_heap': heap}))\n"
)


def probe(setting: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PDM_MALLOC"}
    if setting:
        env["PDM_MALLOC"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_process_serves_a_64_mib_buffer_from_the_heap() -> None:
    got = probe(None)
    assert got == {"first": True, "again": True, "from_heap": True}


def test_pdm_malloc_default_leaves_glibc_alone() -> None:
    got = probe("default")
    assert got == {"first": False, "again": False, "from_heap": False}  # glibc maps it apart, as shipped


def test_benchmark_smoke_reports_both_settings() -> None:
    res = run(rounds=1, steps=1, small=True, workloads=("score",), progress=False)
    row = res["workloads"]["score"]
    assert row["default"]["applied"] == [False] and row["tuned"]["applied"] == [True]
    assert row["speedup"] > 0 and row["shape"] == "batch 4 x 8 ch x 64"
    res.update(date="today", torch="x", machine="here")
    assert "| scoring pass, batch 4 x 8 ch x 64 |" in markdown(res)
