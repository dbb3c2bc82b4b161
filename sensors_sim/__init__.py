"""Sensor simulator: plants, machines, sensors and operator logs for demos and tests."""
