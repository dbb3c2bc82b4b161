"""pdm: predictive maintenance for industrial plants.

The package follows the data flow: ``sensors_sim`` → :mod:`pdm.store` →
``pdm.features`` → ``pdm.model`` → ``pdm.detect`` → ``pdm.evaluate``.
Heavy dependencies (torch, airflow, dash) are imported only by the modules
that need them.
"""

__version__ = "0.1.0"
