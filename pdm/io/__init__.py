"""Bringing a plant's own history into the store: sensors, event log, failure log.

``pdm.io.importer`` reads sensor files (long or wide, CSV or Parquet);
``pdm.io.logs`` reads event and failure logs. Every importer validates the
whole file before it writes anything.
"""

from pdm.io.importer import ImportResult, SensorColumns, import_sensors
from pdm.io.logs import LogColumns, failures_as_truth, import_events, import_failures
from pdm.io.tables import ImportFileError, TimeSpec

__all__ = ["ImportFileError", "ImportResult", "LogColumns", "SensorColumns", "TimeSpec", "import_events",
           "failures_as_truth", "import_failures", "import_sensors"]
