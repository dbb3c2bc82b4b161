"""tsai 1.0.1 under NumPy 2: one place for the patch both TSHAE and the tsai baselines need.

tsai's ``NumpyDataLoader`` stores batch indices in the smallest integer
type that holds the item count (int8 for a small set); under NumPy 2 the
indices overflow and the last validation batch comes out empty. Call
:func:`patch_tsai` before building tsai data loaders.
"""

from __future__ import annotations

import numpy as np


def patch_tsai() -> None:
    """Make tsai keep batch indices in int64 (idempotent)."""
    import tsai.data.core as tsai_core

    tsai_core.smallest_dtype = lambda n: np.int64
