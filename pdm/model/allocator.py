"""Keep large tensor buffers in the process heap instead of mapping fresh pages for each one.

glibc's ``malloc`` serves an allocation above its mmap threshold (at most
32 MiB, raised dynamically up to there) with a fresh ``mmap`` and unmaps it on
``free``. A TSHAE training step or a batch-64 scoring pass allocates many
buffers of tens of MiB (the gathered LSH queries and keys, the window blocks,
their gradients): each one comes back as new pages that the kernel faults in
and zeroes on first touch, every step (the heap's top is also trimmed back to
the system after a large free and grown again on the next). ``benchmarks/allocator.py``
measures both settings side by side (fresh processes, alternating). On this
2-core machine, 2026-12-05, two runs: a batch-64 scoring pass (33 channels x
144 steps) 1.16x and 1.31x faster, a fleet-scoring request (16 channels x
1,440 steps) 1.12x and 1.33x, a batch-64 training step 1.17x and 1.37x; the
product's training batch of 32 gains little (1.04x: its buffers mostly stay
below glibc's own threshold). Peak resident memory the same.

:func:`tune` raises the mmap threshold to 1 GiB and the heap's trim threshold
to 512 MiB with ``mallopt`` (process-wide; later calls do nothing). It is
called by training and scoring; ``PDM_MALLOC=default`` leaves glibc's
behaviour alone. On a C library without ``mallopt`` (musl, macOS), or a
glibc that refuses the values, it does nothing and returns False.

The cost: a long-lived process (an Airflow worker) keeps up to the trim
threshold of freed heap after its largest job instead of handing it back at
once; with glibc's defaults a process that had trained kept its resident
memory too (4.2 GiB after a batch-64 training step, either way).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 512 << 20

@functools.cache
def tune() -> bool:
    """Apply the thresholds once per process; True when they are in effect."""
    if os.environ.get("PDM_MALLOC", "").lower() == "default":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if applied:
        log.debug("malloc: mmap threshold %d MiB, trim threshold %d MiB", MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20)
    return applied
