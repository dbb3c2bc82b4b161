"""What the Airflow DAGs run, as plain functions that tests and the CLI call too.

- :mod:`pdm.pipeline.ingest`: validate one data interval, record data quality.
- :mod:`pdm.pipeline.drift`: per-channel drift of recent healthy data.
- :mod:`pdm.pipeline.retrain`: full retrain or fine-tune, evaluate, promote.
- :mod:`pdm.pipeline.scoring`: machine groups and scoring one group.
- :mod:`pdm.pipeline.notify`: tell someone about new critical alarms, once.
- :mod:`pdm.pipeline.simulate`: write one interval of the simulated plant.

Every function is idempotent for its interval: a retried or re-run task
writes the same points again, which the store merges.
"""
