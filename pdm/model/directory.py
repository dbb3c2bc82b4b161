"""The model directory: everything needed to score, and nothing that runs code.

Layout (``<models>/<version>/``)::

    config.json      TSHAE hyperparameters, training settings, window step/stride
    weights.safetensors
    scalers.json     per-machine robust scaling (median / IQR per channel)
    errors.json      per-machine healthy reconstruction-error statistics per channel (median / IQR of the
                     errors as scoring computes them: running steps, hidden channels without any)
    detect.json      per-machine calibration, threshold and healthy attention baseline, alarm rule
    metadata.json    data range, machines, metrics, library versions, created
    manifest.json    format version, version id, SHA-256 and size of every file above

Loading verifies the manifest (checksums, sizes), the format version and the
agreement of config and weights, and refuses a corrupt, truncated or
mismatched directory with :class:`ModelDirectoryError`. Weights are read with
safetensors, which cannot execute code.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
FILES = ("config.json", "weights.safetensors", "scalers.json", "errors.json", "detect.json", "metadata.json")


class ModelDirectoryError(Exception):
    """The model directory is missing, corrupt, truncated or incompatible."""


@dataclass
class ModelBundle:
    """A trained model with what scoring needs around it."""

    model: Any  # TSHAE
    scalers: dict[str, Any]  # machine → RobustScaler
    errors: dict[str, dict[str, list[float]]]  # machine → {"median": [...], "iqr": [...]} per channel
    config: dict[str, Any]  # {"model": TSHAEConfig dict, "train": ..., "features": {...}}
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    path: Path | None = None
    #: {"rule": AlarmRule dict, "calibration": {...}, "machines": {machine: {"calibrator", "threshold",
    #: "baseline_spatial" (C x C), "speed_max", ...}}} (see :mod:`pdm.detect.score`)
    detect: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "pandas": pandas.__version__}
    try:
        import tsai

        out["tsai"] = tsai.__version__
    except ImportError:
        pass
    from pdm import __version__

    out["pdm"] = __version__
    return out


def new_version() -> str:
    """Sortable and unique: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def save(bundle: ModelBundle, root: str | Path, version: str | None = None) -> Path:
    """Write ``bundle`` to ``root/<version>`` atomically (temp dir, then rename); returns the path."""
    from safetensors.torch import save_file

    version = version or new_version()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise ModelDirectoryError(f"{final} exists already")
    tmp = root / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    state = {k: v.detach().contiguous().cpu() for k, v in bundle.model.state_dict().items()}
    save_file(state, str(tmp / "weights.safetensors"))
    meta = {**bundle.metadata, "version": version, "libraries": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    docs = {
        "config.json": bundle.config,
        "scalers.json": {m: s.to_dict() for m, s in bundle.scalers.items()},
        "errors.json": bundle.errors,
        "detect.json": bundle.detect,
        "metadata.json": meta,
    }
    for name, doc in docs.items():
        (tmp / name).write_text(json.dumps(doc, indent=2, sort_keys=True, default=_json_default))
    manifest = {
        "format": FORMAT_VERSION,
        "version": version,
        "files": {n: {"sha256": _sha256(tmp / n), "bytes": (tmp / n).stat().st_size} for n in FILES},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.rename(final)
    bundle.version, bundle.path = version, final
    return final


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def verify(path: str | Path) -> dict[str, Any]:
    """Check the manifest against the files; return the manifest or raise ModelDirectoryError."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirectoryError(f"{path}: not a model directory")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise ModelDirectoryError(f"{path}: manifest.json is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelDirectoryError(f"{path}: manifest.json is corrupt ({exc})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelDirectoryError(f"{path}: format {manifest.get('format')!r}, this pdm reads format {FORMAT_VERSION}")
    for name in FILES:
        entry = manifest.get("files", {}).get(name)
        f = path / name
        if entry is None or not f.exists():
            raise ModelDirectoryError(f"{path}: {name} is missing")
        if f.stat().st_size != entry["bytes"]:
            raise ModelDirectoryError(f"{path}: {name} is truncated or changed ({f.stat().st_size} bytes, expected {entry['bytes']})")
        if _sha256(f) != entry["sha256"]:
            raise ModelDirectoryError(f"{path}: {name} fails its checksum (corrupt or tampered with)")
    return manifest


def load(path: str | Path) -> ModelBundle:
    """Load and verify a model directory (never executes code from it)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from pdm.features import RobustScaler
    from pdm.model.tshae import TSHAE, TSHAEConfig, upgrade_state_dict

    path = Path(path)
    manifest = verify(path)
    try:
        config = json.loads((path / "config.json").read_text())
        scalers = {m: RobustScaler.from_dict(d) for m, d in json.loads((path / "scalers.json").read_text()).items()}
        errors = json.loads((path / "errors.json").read_text())
        detect = json.loads((path / "detect.json").read_text())
        if not isinstance(detect, dict):
            raise TypeError("detect.json is not an object")
        metadata = json.loads((path / "metadata.json").read_text())
        model = TSHAE(TSHAEConfig.from_dict(config["model"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelDirectoryError(f"{path}: configuration does not describe a TSHAE ({exc})") from None
    try:
        state = upgrade_state_dict(load_file(str(path / "weights.safetensors")))
    except (SafetensorError, OSError) as exc:
        raise ModelDirectoryError(f"{path}: weights.safetensors unreadable ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or extra or wrong:
        raise ModelDirectoryError(
            f"{path}: weights do not match config.json (missing {missing[:3]}, unexpected {extra[:3]}, shape {wrong[:3]})"
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=False)  # non-persistent buffers are rebuilt from the config
    model.eval()
    channels = config["model"].get("channel_names") or []
    for m, s in scalers.items():
        if channels and s.channels != channels:
            raise ModelDirectoryError(f"{path}: scaler of {m} has other channels than the model")
    return ModelBundle(model, scalers, errors, config, metadata, manifest["version"], path, detect)
