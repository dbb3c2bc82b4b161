"""Vibration features the way an edge gateway computes them: from waveform bursts.

Each burst is a short accelerometer recording (``burst_samples`` at
``burst_rate_hz``): shaft-rate (1x) and twice-shaft-rate (2x) components,
a gear-mesh tone on gearboxes, bearing-defect impacts that ring at a
structural resonance, broadband and high-frequency noise. The gateway then
computes time-domain statistics and, by FFT, band energies; bearing defect
frequencies are read off the envelope spectrum (squared, high-passed signal),
as in the classic envelope analysis of rolling-element bearings.

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

    # ------------------------------------------------------------ synthesis
    def _rows(self, k: np.ndarray) -> np.ndarray:
        """Row numbers of quantised frequencies ``k`` in the sine/cosine tables (built lazily)."""
        new = [q for q in np.unique(k) if q not in self._index]
        if new:
            w = 2 * np.pi * np.asarray(new, dtype=np.float64)[:, None] * FREQ_STEP_HZ * self.t[None, :]
            self._table_sin = np.vstack([self._table_sin, np.sin(w).astype(np.float32)])
            self._table_cos = np.vstack([self._table_cos, np.cos(w).astype(np.float32)])
            for q in new:
                self._index[int(q)] = len(self._index)
        return np.fromiter((self._index[int(q)] for q in k), np.int64, len(k))

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
        return pool[offsets[:, None] + np.arange(self.n)[None, :]]

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

    def analyse(self, b: Bursts, rng: np.random.Generator, block: int = 2048) -> dict[str, np.ndarray]:
        """Synthesise and analyse bursts block by block (bounded memory); the features."""
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
    def _band(self, power: np.ndarray, centre_hz: np.ndarray, half_bins: int = 2) -> np.ndarray:
        """RMS amplitude in ±half_bins around each burst's centre frequency."""
        idx = np.rint(centre_hz / self.bin_hz).astype(np.int64)
        offs = np.arange(-half_bins, half_bins + 1)
        cols = np.clip(idx[:, None] + offs[None, :], 1, power.shape[1] - 1)
        e = np.take_along_axis(power, cols, axis=1).sum(axis=1)
        e[centre_hz <= 0] = 0.0
        return np.sqrt(e)

    def features(self, x: np.ndarray, b: Bursts, block: int = 2048) -> dict[str, np.ndarray]:
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
        n = self.n
        mean = x.mean(axis=1, dtype=np.float64)
        xc = x - mean.astype(np.float32)[:, None]
        var = np.einsum("ij,ij->i", xc, xc, dtype=np.float64) / n
        rms = np.sqrt(var + mean**2)
        peak = np.maximum(x.max(axis=1), -x.min(axis=1)).astype(np.float64)
        x2 = xc * xc
        kurt = np.einsum("ij,ij->i", x2, x2, dtype=np.float64) / n / np.maximum(var, 1e-12) ** 2
        scale = 2.0 / (n * self._window_gain) ** 2
        # Amplitude spectrum (Hann window, scaled so a sine of amplitude A reads ~A/sqrt(2) in its band).
        xc *= self._window
        spec = scipy.fft.rfft(xc, axis=1, workers=-1)
        power = (spec.real**2 + spec.imag**2) * scale
        band_hf = np.sqrt(power[:, self._hf_lo :].sum(axis=1, dtype=np.float64))
        # Envelope spectrum: high-pass (first difference), square, FFT.
        d = np.diff(x, axis=1, prepend=x[:, :1])
        d *= d
        d -= d.mean(axis=1, keepdims=True)
        d *= self._window
        espec = scipy.fft.rfft(d, axis=1, workers=-1)
        epower = (espec.real**2 + espec.imag**2) * scale
        shaft = shaft_hz.astype(np.float64)
        return {
            "rms": rms,
            "peak": peak,
            "kurtosis": kurt,
            "crest": peak / np.maximum(rms, 1e-12),
            "band_1x": self._band(power, shaft),
            "band_2x": self._band(power, 2 * shaft),
            "band_bpfo": self._band(epower, shaft * bpfo),
            "band_bpfi": self._band(epower, shaft * bpfi),
            "band_hf": band_hf,
        }
