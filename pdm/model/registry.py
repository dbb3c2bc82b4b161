"""Model versions under one models directory, and which one is in production.

``<models>/<version>/`` are model directories (see :mod:`pdm.model.directory`);
``<models>/production.json`` names the production version and keeps the
promotion history, so a rollback is one call. Without that file the newest
valid version is used (and said so in the log).

>>> promote(models, "20261129T101500Z-1a2b3c", reason="first model")
>>> production_path(models)            # → models/20261129T101500Z-1a2b3c
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pdm.model.directory import ModelDirectoryError, verify

log = logging.getLogger(__name__)

POINTER = "production.json"


def versions(models_dir: str | Path) -> list[dict[str, Any]]:
    """Every model directory under ``models_dir``, oldest first: version, path, valid, metadata, error."""
    root = Path(models_dir)
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        entry: dict[str, Any] = {"version": p.name, "path": p, "valid": True, "metadata": {}, "error": ""}
        try:
            verify(p)
            entry["metadata"] = json.loads((p / "metadata.json").read_text())
        except (ModelDirectoryError, ValueError, OSError) as exc:
            entry["valid"], entry["error"] = False, str(exc)
        out.append(entry)
    return out


def _read_pointer(root: Path) -> dict[str, Any]:
    f = root / POINTER
    if not f.exists():
        return {"version": None, "history": []}
    try:
        doc = json.loads(f.read_text())
    except ValueError as exc:
        raise ModelDirectoryError(f"{f}: corrupt ({exc}); promote a version again to repair it") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise ModelDirectoryError(f"{f}: does not name a production version")
    doc.setdefault("history", [])
    return doc


def production_version(models_dir: str | Path) -> str | None:
    """The production version's id (None when there is no model at all)."""
    root = Path(models_dir)
    doc = _read_pointer(root)
    if doc["version"]:
        return str(doc["version"])
    valid = [v for v in versions(root) if v["valid"]]
    if not valid:
        return None
    log.info("no %s in %s: using the newest valid model %s", POINTER, root, valid[-1]["version"])
    return str(valid[-1]["version"])


def production_path(models_dir: str | Path) -> Path:
    """Path of the production model directory; raises ModelDirectoryError when there is none."""
    root = Path(models_dir)
    v = production_version(root)
    if v is None:
        raise ModelDirectoryError(f"{root}: no trained model (run `pdmctl train` first)")
    path = root / v
    if not path.is_dir():
        raise ModelDirectoryError(f"{root / POINTER} names {v}, which does not exist")
    return path


def promote(models_dir: str | Path, version: str, reason: str = "", metrics: dict[str, Any] | None = None) -> None:
    """Make ``version`` the production model (verified first); the previous one stays for rollback."""
    root = Path(models_dir)
    verify(root / version)
    doc = _read_pointer(root)
    doc["history"].append({"version": version, "previous": doc["version"], "reason": reason,
                           "metrics": metrics or {}, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    doc["version"] = version
    tmp = root / f".{POINTER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str))
    os.replace(tmp, root / POINTER)
    log.info("production model is now %s (%s)", version, reason or "promoted")


def rollback(models_dir: str | Path) -> str:
    """Return production to the version before the current one; returns it."""
    root = Path(models_dir)
    doc = _read_pointer(root)
    prev = next((h["previous"] for h in reversed(doc["history"]) if h["version"] == doc["version"]), None)
    if not prev:
        raise ModelDirectoryError(f"{root}: no previous production version to roll back to")
    promote(root, prev, reason=f"rollback from {doc['version']}")
    return str(prev)


def history(models_dir: str | Path) -> list[dict[str, Any]]:
    """Promotion history, oldest first."""
    return list(_read_pointer(Path(models_dir))["history"])
