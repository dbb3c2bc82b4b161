"""From store frames to model windows: align, mask, scale, condition, cut.

``pdm.features.grid`` aligns one machine's measurements onto a time grid;
``pdm.features.windows`` scales them and cuts windows for the model.
"""

from pdm.features.grid import MachineGrid, align_machine, channel_id
from pdm.features.windows import RobustScaler, WindowSet, make_windows

__all__ = ["MachineGrid", "RobustScaler", "WindowSet", "align_machine", "channel_id", "make_windows"]
