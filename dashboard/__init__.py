"""The plant-floor Dash dashboard, a thin shell over :mod:`pdm` (issue #7)."""
