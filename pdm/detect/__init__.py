"""From reconstruction error to alarms: calibrate, threshold (POT), alarm rules."""

from pdm.detect.stages import Alarm, AlarmRule, ChannelCalibrator, OperatingEnvelope, POTThreshold

__all__ = ["Alarm", "AlarmRule", "ChannelCalibrator", "OperatingEnvelope", "POTThreshold"]
