#!/usr/bin/env bash
# The whole pytest suite against a real InfluxDB 1.x (see with-influxdb.sh).
set -uo pipefail
PY=$1; shift
export PY
mkdir -p test-artifacts
exec bash "$(dirname "$0")/with-influxdb.sh" "$PY" -m pytest "$@"
