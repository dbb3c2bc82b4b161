"""Machine types and their physics parameters.

Each type has a drive (nominal speed, whether a VFD varies it with load), a
bearing geometry (defect frequencies as multiples of shaft speed), the
strength of its vibration components, a resonance that bearing impacts ring
at, and its temperature sensors with their rise at full load and thermal time
constants. Numbers are typical orders of magnitude for plant machinery, not a
particular vendor's data sheet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Vibration measurement points: drive end and non-drive end (radial), and the
#: drive end's axial direction, where misalignment shows first.
VIBRATION_POINTS = ("de", "nde", "axial")

#: Vibration features computed per burst, in the store's ``vibration`` measurement.
VIBRATION_FEATURES = (
    "rms", "peak", "kurtosis", "crest",
    "band_1x", "band_2x", "band_bpfo", "band_bpfi", "band_hf",
)


@dataclass(frozen=True)
class Thermal:
    """A temperature sensor: rise over ambient at full load, and its lag."""

    rise_full_load: float  # K above ambient at 100 % load, steady state
    tau_min: float  # first-order time constant, minutes
    idle_rise: float = 0.0  # K above ambient when running unloaded


@dataclass(frozen=True)
class MachineType:
    """Physics parameters of one kind of machine."""

    name: str
    speed_rpm: float
    variable_speed: bool  # a VFD makes speed follow load
    bpfo: float  # outer-race defect frequency / shaft frequency
    bpfi: float  # inner-race defect frequency / shaft frequency
    amp_1x: float  # g at the drive end, full load
    amp_2x: float
    noise_g: float  # broadband floor
    resonance_hz: float  # where bearing impacts ring
    rated_current_a: float
    temperatures: dict[str, Thermal] = field(default_factory=dict)
    mesh_teeth: int = 0  # gearboxes: gear-mesh component at teeth x shaft speed

    @property
    def shaft_hz(self) -> float:
        return self.speed_rpm / 60.0


def _temps(bearing: float, winding: float, third: tuple[str, float, float]) -> dict[str, Thermal]:
    name, rise, tau = third
    return {
        "bearing": Thermal(bearing, 45.0, 3.0),
        "winding": Thermal(winding, 25.0, 8.0),
        name: Thermal(rise, tau, 2.0),
        "ambient": Thermal(0.0, 1.0),
    }


MACHINE_TYPES: dict[str, MachineType] = {
    t.name: t
    for t in [
        MachineType("centrifugal_pump", 1480, False, 3.58, 5.42, 0.30, 0.10, 0.05, 1850, 42,
                    _temps(22, 48, ("casing", 12, 60))),
        MachineType("fan", 990, True, 3.05, 4.95, 0.45, 0.08, 0.06, 1400, 30,
                    _temps(18, 40, ("casing", 6, 40))),
        MachineType("gearbox", 1480, False, 4.12, 6.88, 0.25, 0.12, 0.07, 2100, 55,
                    _temps(25, 45, ("oil", 30, 90)), mesh_teeth=23),
        MachineType("conveyor_motor", 1460, True, 3.10, 4.90, 0.20, 0.07, 0.04, 1650, 18,
                    _temps(20, 55, ("casing", 10, 50))),
        MachineType("compressor", 2960, False, 3.30, 5.70, 0.35, 0.15, 0.08, 2300, 75,
                    _temps(28, 50, ("oil", 35, 80))),
    ]
}


def temperature_sensors(machine_type: str) -> tuple[str, ...]:
    """Temperature sensor names of a machine type, in a stable order."""
    return tuple(MACHINE_TYPES[machine_type].temperatures)
