"""Vibration features the way an edge gateway computes them: from waveform bursts.

Each burst is a short accelerometer recording (``burst_samples`` at
``burst_rate_hz``): shaft-rate (1x) and twice-shaft-rate (2x) components,
a gear-mesh tone on gearboxes, bearing-defect impacts that ring at a
structural resonance, broadband and high-frequency noise. The gateway then
computes time-domain statistics and, by FFT, band energies; bearing defect
frequencies are read off the envelope spectrum (squared, high-passed signal),
as in the classic envelope analysis of rolling-element bearings.

The 1x and 2x amplitudes are order-tracked: the gateway knows the shaft
speed (tachometer / drive) and fits sines at 1x and 2x jointly by weighted
least squares. An FFT band cannot separate them on a short burst: at 5 Hz
resolution a VFD fan turning at 8-16 Hz has its 2x only 1.5-3 bins above its
1x, so an imbalance (1x) would leak into the 2x band and look like
misalignment. Condition-monitoring systems with a tach reference measure
orders this way.

Everything is vectorised over bursts: one call synthesises and analyses
thousands of bursts of many machines at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

#: Frequencies are quantised to this step for the sine tables; far below the
#: FFT's bin width (5 Hz at the defaults), so the spectrum is unaffected.
FREQ_STEP_HZ = 0.05
FEATURES = ("rms", "peak", "kurtosis", "crest", "band_1x", "band_2x", "band_bpfo", "band_bpfi", "band_hf")
IMPACT_TAPS = 96


@dataclass
class Bursts:
    """Per-burst physical parameters (all arrays of the same length, float32).

    ``shaft_hz`` 0 means the machine is stopped (only background noise).
    """

    shaft_hz: np.ndarray
    amp_1x: np.ndarray
    amp_2x: np.ndarray
    amp_mesh: np.ndarray
    mesh_order: np.ndarray  # teeth (0 = no gear mesh)
    amp_impact: np.ndarray  # bearing defect impact strength
    defect_order: np.ndarray  # impacts per shaft revolution (the damaged race's factor)
    bpfo_order: np.ndarray  # outer-race defect frequency / shaft frequency
    bpfi_order: np.ndarray  # inner-race defect frequency / shaft frequency
    resonance_hz: np.ndarray
    noise: np.ndarray  # broadband floor (g rms)
    hf_noise: np.ndarray  # high-frequency noise from poor lubrication (g rms)

    def __len__(self) -> int:
        return len(self.shaft_hz)

    def take(self, idx: np.ndarray) -> Bursts:
        return Bursts(**{k: getattr(self, k)[idx] for k in Bursts.__dataclass_fields__})

    @staticmethod
    def concat(parts: list[Bursts]) -> Bursts:
        return Bursts(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in Bursts.__dataclass_fields__})


class Gateway:
    """Synthesises bursts and computes their features; holds reusable tables."""

    def __init__(self, rate_hz: int, samples: int, seed: int) -> None:
        self.rate = rate_hz
        self.n = samples
        self.t = np.arange(samples, dtype=np.float64) / rate_hz
        self._index: dict[int, int] = {}
        # Quantised frequency -> row in the tables (-1: not built yet).
        self._row_of = np.full(int(rate_hz / 2 / FREQ_STEP_HZ) + 2, -1, dtype=np.int64)
        self._table_sin = np.empty((0, samples), dtype=np.float32)
        self._table_cos = np.empty((0, samples), dtype=np.float32)
        rng = np.random.default_rng([seed, 424242])
        # Noise pools: bursts take windows at random offsets (cheap, and as
        # white as drawing afresh for the statistics the gateway computes).
        self._white = rng.standard_normal(1 << 20).astype(np.float32)
        spec = scipy.fft.rfft(rng.standard_normal(1 << 20))
        freqs = scipy.fft.rfftfreq(1 << 20, 1 / rate_hz)
        spec[freqs < rate_hz * 0.3] = 0  # lubrication noise lives above ~1.5 kHz
        hf = scipy.fft.irfft(spec, 1 << 20)
        self._hf = (hf / hf.std()).astype(np.float32)
        self.freqs = scipy.fft.rfftfreq(samples, 1 / rate_hz)
        self.bin_hz = rate_hz / samples
        self._window = np.hanning(samples).astype(np.float32)
        self._window_gain = float(np.sqrt(np.mean(self._window**2)))
        self._hf_lo = int(np.searchsorted(self.freqs, rate_hz * 0.3))
        self._gram: dict[tuple[int, int], np.ndarray] = {}

    # ------------------------------------------------------------ synthesis
    def _rows(self, k: np.ndarray) -> np.ndarray:
        """Row numbers of quantised frequencies ``k`` in the sine/cosine tables (built lazily)."""
        rows = self._row_of[k]
        if (rows < 0).any():
            new = np.unique(k[rows < 0])
            w = 2 * np.pi * new.astype(np.float64)[:, None] * FREQ_STEP_HZ * self.t[None, :]
            self._table_sin = np.vstack([self._table_sin, np.sin(w).astype(np.float32)])
            self._table_cos = np.vstack([self._table_cos, np.cos(w).astype(np.float32)])
            for q in new.tolist():
                self._index[q] = len(self._index)
            self._row_of[new] = [self._index[q] for q in new.tolist()]
            rows = self._row_of[k]
        return rows

    def _tone(self, hz: np.ndarray, amp: np.ndarray, phase: np.ndarray, out: np.ndarray) -> None:
        """Add amp·sin(2π·hz·t + phase) per burst to ``out``, from cached quantised tables."""
        k = np.rint(hz / FREQ_STEP_HZ).astype(np.int64)
        live = np.flatnonzero((amp > 0) & (k > 0) & (k * FREQ_STEP_HZ < self.rate / 2))
        if live.size == 0:
            return
        rows = self._rows(k[live])
        a = amp[live].astype(np.float32)
        ph = phase[live]
        cs = (a * np.cos(ph).astype(np.float32))[:, None]
        sn = (a * np.sin(ph).astype(np.float32))[:, None]
        if live.size == len(out):
            out += np.take(self._table_sin, rows, axis=0) * cs
            out += np.take(self._table_cos, rows, axis=0) * sn
        else:
            out[live] += np.take(self._table_sin, rows, axis=0) * cs + np.take(self._table_cos, rows, axis=0) * sn

    def _pool(self, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        offsets = rng.integers(0, len(pool) - self.n, count)
        # Whole windows at a time (row copies), the same as pool[offsets[:, None] + arange(n)].
        return np.lib.stride_tricks.sliding_window_view(pool, self.n)[offsets]

    def _impacts(self, b: Bursts, rng: np.random.Generator) -> np.ndarray:
        """Bearing-defect impact trains, each impact ringing at the resonance."""
        m = len(b)
        out = np.zeros((m, self.n), dtype=np.float32)
        live = np.arange(m)
        rate = (b.shaft_hz * b.defect_order)[live]  # impacts per second
        period = self.rate / rate  # samples between impacts
        k_max = int(np.ceil(self.n / period.min())) + 1
        k = np.arange(k_max)[None, :]
        start = rng.uniform(0, 1, live.size)[:, None] * period[:, None]
        # Slight slip between impacts, as real bearings have.
        pos = start + k * period[:, None] * (1 + rng.normal(0, 0.01, (live.size, k_max)))
        pos = np.rint(pos).astype(np.int64)
        strength = b.amp_impact[live][:, None] * rng.lognormal(0, 0.25, (live.size, k_max))
        valid = pos < self.n
        rows = np.broadcast_to(live[:, None], pos.shape)[valid]
        cols = pos[valid]
        amps = strength[valid].astype(np.float32)
        res = b.resonance_hz[live]
        taps = np.arange(IMPACT_TAPS) / self.rate
        # Damped ringing at the resonance (damping ratio ~5 %).
        ring = np.exp(-2 * np.pi * 0.05 * res[:, None] * taps[None, :]) * np.sin(2 * np.pi * res[:, None] * taps[None, :])
        ring_of = {r: i for i, r in enumerate(live)}
        ring_rows = np.fromiter((ring_of[r] for r in rows), np.int64, len(rows))
        for j in range(IMPACT_TAPS):
            c = cols + j
            ok = c < self.n
            np.add.at(out, (rows[ok], c[ok]), amps[ok] * ring[ring_rows[ok], j].astype(np.float32))
        return out

    def synthesise(self, b: Bursts, rng: np.random.Generator) -> np.ndarray:
        """Waveforms (bursts × samples, float32, in g)."""
        m = len(b)
        ph = rng.uniform(0, 2 * np.pi, (3, m))
        x = self._pool(self._white, m, rng)
        x *= b.noise.astype(np.float32)[:, None]
        self._tone(b.shaft_hz, b.amp_1x, ph[0], x)
        self._tone(2 * b.shaft_hz, b.amp_2x, ph[1], x)
        self._tone(b.mesh_order * b.shaft_hz, b.amp_mesh, ph[2], x)
        hf = np.flatnonzero(b.hf_noise > 0)
        if hf.size:
            x[hf] += self._pool(self._hf, hf.size, rng) * b.hf_noise[hf].astype(np.float32)[:, None]
        imp = np.flatnonzero((b.amp_impact > 0) & (b.shaft_hz > 0))
        if imp.size:
            x[imp] += self._impacts(b.take(imp), rng)
        return x

    def analyse(self, b: Bursts, rng: np.random.Generator, block: int = 512) -> dict[str, np.ndarray]:
        """Synthesise and analyse bursts block by block; the features.

        Blocks of a few hundred bursts keep each pass over the samples in the
        CPU caches (2 MB at the defaults): 40 % faster than blocks of 2048.
        """
        m = len(b)
        out = {k: np.empty(m, dtype=np.float64) for k in FEATURES}
        for lo in range(0, m, block):
            idx = np.arange(lo, min(m, lo + block))
            part = b.take(idx)
            x = self.synthesise(part, rng)
            feats = self._features_block(x, part.shaft_hz, part.bpfo_order, part.bpfi_order)
            for k, v in feats.items():
                out[k][lo : lo + len(idx)] = v
        return out

    # ------------------------------------------------------------- analysis
    def _band(self, spec: np.ndarray, centre_hz: np.ndarray, scale: float, half_bins: int = 2) -> np.ndarray:
        """RMS amplitude in ±half_bins around each burst's centre frequency, from a complex spectrum."""
        idx = np.rint(centre_hz / self.bin_hz).astype(np.int64)
        offs = np.arange(-half_bins, half_bins + 1)
        cols = np.clip(idx[:, None] + offs[None, :], 1, spec.shape[1] - 1)
        z = np.take_along_axis(spec, cols, axis=1)
        e = (z.real.astype(np.float64) ** 2 + z.imag.astype(np.float64) ** 2).sum(axis=1) * scale
        e[centre_hz <= 0] = 0.0
        return np.sqrt(e)

    def _orders(self, xw: np.ndarray, shaft_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RMS amplitudes at 1x and 2x shaft speed, order-tracked (see the module docstring).

        ``xw`` is the mean-free, Hann-windowed burst; the fit minimises
        sum(w (x - B c)^2) over B = [sin, cos at 1x, sin, cos at 2x, 1] with
        the window w as weights, so B' w x is ``xw`` projected on the basis.
        The weighted Gram matrix depends only on the two (quantised)
        frequencies and is cached. A stopped machine reads 0.
        """
        m = len(shaft_hz)
        a1, a2 = np.zeros(m), np.zeros(m)
        k1 = np.rint(shaft_hz / FREQ_STEP_HZ).astype(np.int64)
        k2 = np.rint(2 * shaft_hz / FREQ_STEP_HZ).astype(np.int64)
        live = np.flatnonzero((k1 > 0) & (k2 * FREQ_STEP_HZ < self.rate / 2))
        if live.size == 0:
            return a1, a2
        k1, k2 = k1[live], k2[live]
        r1, r2 = self._rows(k1), self._rows(k2)
        x = xw[live]
        proj = np.empty((live.size, 5))
        for j, (table, rows) in enumerate(((self._table_sin, r1), (self._table_cos, r1),
                                           (self._table_sin, r2), (self._table_cos, r2))):
            proj[:, j] = np.einsum("ij,ij->i", x, np.take(table, rows, axis=0))
        proj[:, 4] = x.sum(axis=1)
        pairs, inverse = np.unique(np.stack([k1, k2], axis=1), axis=0, return_inverse=True)
        gram = np.empty((len(pairs), 5, 5))
        for i, (p1, p2) in enumerate(pairs.tolist()):
            g = self._gram.get((p1, p2))
            if g is None:
                q1, q2 = self._index[p1], self._index[p2]
                basis = np.stack([self._table_sin[q1], self._table_cos[q1], self._table_sin[q2],
                                  self._table_cos[q2], np.ones(self.n, dtype=np.float32)]).astype(np.float64)
                g = self._gram[(p1, p2)] = (basis * self._window) @ basis.T
            gram[i] = g
        coef = np.linalg.solve(gram[inverse.ravel()], proj[:, :, None])[:, :, 0]
        a1[live] = np.hypot(coef[:, 0], coef[:, 1]) / np.sqrt(2)
        a2[live] = np.hypot(coef[:, 2], coef[:, 3]) / np.sqrt(2)
        return a1, a2

    def features(self, x: np.ndarray, b: Bursts, block: int = 512) -> dict[str, np.ndarray]:
        """The gateway's features per burst: rms, peak, kurtosis, crest, band energies.

        Works through the bursts in blocks so temporaries stay cache-sized.
        """
        m = len(b)
        out = {k: np.empty(m, dtype=np.float64) for k in FEATURES}
        for lo in range(0, m, block):
            hi = min(m, lo + block)
            part = self._features_block(x[lo:hi], b.shaft_hz[lo:hi], b.bpfo_order[lo:hi], b.bpfi_order[lo:hi])
            for k, v in part.items():
                out[k][lo:hi] = v
        return out

    def _features_block(self, x: np.ndarray, shaft_hz: np.ndarray, bpfo: np.ndarray, bpfi: np.ndarray) -> dict[str, np.ndarray]:
        # Single precision with few passes over the block: the features are
        # statistics of noisy signals, far coarser than float32 rounding.
        n = self.n
        mean = x.mean(axis=1)
        xc = x - mean[:, None]
        var = np.einsum("ij,ij->i", xc, xc).astype(np.float64) / n
        mean = mean.astype(np.float64)
        rms = np.sqrt(var + mean**2)
        peak = np.maximum(x.max(axis=1), -x.min(axis=1)).astype(np.float64)
        x2 = xc * xc
        kurt = np.einsum("ij,ij->i", x2, x2).astype(np.float64) / n / np.maximum(var, 1e-12) ** 2
        del x2
        scale = 2.0 / (n * self._window_gain) ** 2
        # Amplitude spectrum (Hann window, scaled so a sine of amplitude A reads ~A/sqrt(2) in its band).
        xc *= self._window
        order_1x, order_2x = self._orders(xc, shaft_hz)
        spec = scipy.fft.rfft(xc, axis=1, workers=-1)
        hf = spec[:, self._hf_lo :].view(np.float32)  # (re, im) pairs
        band_hf = np.sqrt(np.einsum("ij,ij->i", hf, hf).astype(np.float64) * scale)
        del spec, hf
        # Envelope spectrum: high-pass (first difference), square, FFT.
        d = xc  # reuse the buffer
        d[:, 0] = 0.0
        np.subtract(x[:, 1:], x[:, :-1], out=d[:, 1:])
        d *= d
        d -= d.mean(axis=1, keepdims=True)
        d *= self._window
        espec = scipy.fft.rfft(d, axis=1, workers=-1)
        shaft = shaft_hz.astype(np.float64)
        return {
            "rms": rms,
            "peak": peak,
            "kurtosis": kurt,
            "crest": peak / np.maximum(rms, 1e-12),
            "band_1x": order_1x,
            "band_2x": order_2x,
            "band_bpfo": self._band(espec, shaft * bpfo, scale),
            "band_bpfi": self._band(espec, shaft * bpfi, scale),
            "band_hf": band_hf,
        }
