# pdm's Airflow image: Airflow 3.3 with the Celery and InfluxDB providers, and pdm installed,
# its DAGs in /opt/airflow/dags. Used by every Airflow service and the simulator in
# docker-compose.yml. Build: `docker compose build` (or `docker build -t pdm-airflow .`).
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential curl procps \
 && rm -rf /var/lib/apt/lists/*
USER airflow

# Torch's CPU build first (the default wheel pulls several GB of CUDA), then tsai with its
# pins, then pdm itself: the same three steps as the Makefile, which a single resolve backtracks on.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir tsai==1.0.1 fastai==2.8.7 "fastcore>=1.13.2,<2" pyts==0.13.0 jupyter_core traitlets

COPY --chown=airflow:root pyproject.toml README.md /opt/pdm/
COPY --chown=airflow:root pdm /opt/pdm/pdm
COPY --chown=airflow:root sensors_sim /opt/pdm/sensors_sim
COPY --chown=airflow:root dashboard /opt/pdm/dashboard
RUN pip install --no-cache-dir "apache-airflow==3.3.2" apache-airflow-providers-celery \
        apache-airflow-providers-influxdb psycopg2-binary redis gunicorn /opt/pdm

COPY --chown=airflow:root dags /opt/airflow/dags
ENV PDM_DATA_DIR=/data
