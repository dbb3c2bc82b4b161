"""The simulated fleet, described in a TOML or YAML file: plants → lines → machines.

A bad entry (unknown machine type, a negative rate, faults on one machine
that overlap) stops loading with :class:`FleetConfigError`, whose message
names the offending entry, e.g. ``plants[0].lines[1].machines[3] (pump-004).type``.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sensors_sim.machines import MACHINE_TYPES

DEFAULT_CONFIG = Path(__file__).with_name("plants") / "default.toml"

FaultMode = Literal["bearing_wear", "lubrication_loss", "misalignment", "imbalance", "cooling_failure"]
FAULT_MODES: tuple[str, ...] = FaultMode.__args__  # type: ignore[attr-defined]
ShiftPattern = Literal["one", "two", "three", "continuous"]


class FleetConfigError(ValueError):
    """The fleet file is invalid; the message names the entry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rates(_Model):
    """How often sensors report and how a vibration burst is sampled."""

    vibration_interval_s: int = Field(600, gt=0)
    process_interval_s: int = Field(60, gt=0, description="temperatures and process values")
    burst_rate_hz: int = Field(5120, ge=1000, le=100_000)
    burst_samples: int = Field(1024, ge=256, le=65_536)

    @model_validator(mode="after")
    def _intervals(self) -> Rates:
        if self.vibration_interval_s % self.process_interval_s:
            raise ValueError("vibration_interval_s must be a multiple of process_interval_s")
        if 86_400 % self.process_interval_s or 86_400 % self.vibration_interval_s:
            raise ValueError("intervals must divide a day (86400 s)")
        return self


class FaultRates(_Model):
    """Random faults: how often, and which modes."""

    per_machine_year: float = Field(3.0, ge=0)
    modes: tuple[FaultMode, ...] = FAULT_MODES  # type: ignore[assignment]
    repair_hours: tuple[float, float] = (8.0, 72.0)

    @field_validator("repair_hours")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("must be (min, max) hours with 0 < min <= max")
        return v


class NuisanceRates(_Model):
    """Things that look like faults but are not, per machine (regime changes per line)."""

    maintenance_per_year: float = Field(4.0, ge=0)
    sensor_replaced_per_year: float = Field(1.5, ge=0)
    dropouts_per_month: float = Field(2.0, ge=0)
    spikes_per_month: float = Field(3.0, ge=0)
    stuck_per_year: float = Field(2.0, ge=0)
    clock_skew_per_year: float = Field(1.0, ge=0)
    duplicates_per_month: float = Field(2.0, ge=0)
    regime_changes_per_line_year: float = Field(4.0, ge=0)


class FaultSpec(_Model):
    """An explicit fault: its mode and when the machine fails."""

    mode: FaultMode
    failure: datetime
    onset_days: float | None = Field(None, gt=0, le=60)
    repair_hours: float | None = Field(None, gt=0, le=24 * 30)

    @field_validator("failure")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class MachineSpec(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: str
    faults: tuple[FaultSpec, ...] = ()
    random_faults: bool = True

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in MACHINE_TYPES:
            raise ValueError(f"unknown machine type {v!r} (known: {', '.join(MACHINE_TYPES)})")
        return v

    @model_validator(mode="after")
    def _faults_do_not_overlap(self) -> MachineSpec:
        spans = sorted(
            (f.failure.timestamp() - (f.onset_days or 20) * 86400, f.failure.timestamp() + (f.repair_hours or 72) * 3600, i)
            for i, f in enumerate(self.faults)
        )
        for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:], strict=False):
            if start_b < end_a:
                raise ValueError(
                    f"faults[{a}] ({self.faults[a].mode}) and faults[{b}] ({self.faults[b].mode}) overlap: "
                    "a machine degrades by one fault at a time; move the second failure after the first repair"
                )
        return self


class LineSpec(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\- ]+$")
    shifts: ShiftPattern = "two"
    machines: tuple[MachineSpec, ...] = Field(min_length=1)


class PlantSpec(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\- ]+$")
    lines: tuple[LineSpec, ...] = Field(min_length=1)


class FleetConfig(_Model):
    """A whole simulated fleet."""

    seed: int = 7
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    rates: Rates = Rates()
    faults: FaultRates = FaultRates()
    nuisance: NuisanceRates = NuisanceRates()
    plants: tuple[PlantSpec, ...] = Field(min_length=1)

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @model_validator(mode="after")
    def _unique_ids(self) -> FleetConfig:
        # The error is raised at the top level, so name both entries here.
        seen: dict[str, str] = {}
        for p, plant in enumerate(self.plants):
            for k, line in enumerate(plant.lines):
                for i, m in enumerate(line.machines):
                    where = f"plants[{p}].lines[{k}].machines[{i}] ({m.id})"
                    if m.id in seen:
                        raise ValueError(f"{where}.id: machine id {m.id!r} appears twice (first at {seen[m.id]})")
                    seen[m.id] = where
        return self

    def machines(self) -> list[MachineSpec]:
        """All machines in file order."""
        return [m for p in self.plants for line in p.lines for m in line.machines]

    def placement(self) -> dict[str, tuple[str, str, str]]:
        """machine id → (plant, line, shift pattern)."""
        return {m.id: (p.name, line.name, line.shifts) for p in self.plants for line in p.lines for m in line.machines}


def _entry_name(data: Any, loc: tuple[Any, ...]) -> str:
    """``plants[0].lines[1].machines[3] (pump-004).type`` from a pydantic location."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            parts[-1] += f"[{key}]"
            try:
                node = node[key]
                if isinstance(node, dict) and "id" in node:
                    parts[-1] += f" ({node['id']})"
            except (IndexError, KeyError, TypeError):
                node = None
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_config(data: dict[str, Any], source: str = "config") -> FleetConfig:
    """Validate a fleet description; raise FleetConfigError naming each bad entry."""
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = [(tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))), err)
                  for err in exc.errors()]
        for loc, err in errors:
            # A list whose bad entry was refused also reports itself as too short:
            # noise next to the real error, which names the entry.
            if err["type"] == "too_short" and any(other[: len(loc)] == loc and other != loc for other, _ in errors):
                continue
            msg = err["msg"].removeprefix("Value error, ")
            name = _entry_name(data, loc)
            # Checks across entries (duplicate ids) name the entries themselves.
            problems.append(f"{name}: {msg}" if name else msg)
        raise FleetConfigError(f"{source}: " + "; ".join(problems)) from None


def load_config(path: str | Path | None = None) -> FleetConfig:
    """Read a fleet file (``.toml``, ``.yaml``/``.yml``); the default 20-machine plant without one."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = path.read_text()
    except OSError as exc:
        raise FleetConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise FleetConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise FleetConfigError(f"{path}: expected a table/mapping at the top level")
    return parse_config(data, str(path))


def scaled(config: FleetConfig, machines: int) -> FleetConfig:
    """The same plants and line patterns with ``machines`` machines, types cycling.

    Lines hold 10 machines each; explicit faults of the original are dropped.
    """
    if machines < 1:
        raise FleetConfigError("--machines must be at least 1")
    types = list(MACHINE_TYPES)
    prefix = {"centrifugal_pump": "pump", "fan": "fan", "gearbox": "gbx", "conveyor_motor": "conv", "compressor": "comp"}
    lines, n, k = [], 0, 0
    patterns = [line.shifts for p in config.plants for line in p.lines] or ["two"]
    while n < machines:
        count = min(10, machines - n)
        ms = [
            {"id": f"{prefix[types[(n + i) % len(types)]]}-{n + i + 1:03d}", "type": types[(n + i) % len(types)]}
            for i in range(count)
        ]
        lines.append({"name": f"line-{k + 1}", "shifts": patterns[k % len(patterns)], "machines": ms})
        n += count
        k += 1
    plant = config.plants[0].name
    data = config.model_dump(exclude={"plants"})
    data["plants"] = [{"name": plant, "lines": lines}]
    return parse_config(data, "scaled config")


def fleet_config(path: str | Path | None = None, *, machines: int | None = None, seed: int | None = None,
                 start: str | datetime | None = None) -> FleetConfig:
    """The fleet from ``path`` (default plant without), optionally scaled, re-seeded or moved in time."""
    config = load_config(path)
    if machines is not None:
        config = scaled(config, machines)
    update: dict[str, Any] = {}
    if seed is not None:
        update["seed"] = seed
    if start is not None:
        try:
            ts = pd.Timestamp(start)
        except ValueError:
            raise FleetConfigError(f"start: not a time: {start!r}") from None
        update["start"] = (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    if update:
        data = config.model_dump()
        data.update(update)
        config = parse_config(data, str(path or DEFAULT_CONFIG))
    return config
