#!/usr/bin/env bash
# Run a command with a real InfluxDB 1.x on loopback (free port, data in a temp
# dir); PDM_TEST_INFLUXDB1_URL tells the command where. The server is stopped
# and its data removed whatever happens (exit, error, Ctrl-C).
set -uo pipefail
PY=${PY:-.venv/bin/python}
dir=$(mktemp -d -t pdm-influxd.XXXXXX)
cleanup() {
  "$PY" -m pdm.devtools.influxd stop --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
"$PY" -m pdm.devtools.influxd start --dir "$dir" --env-file "$dir/env" || { echo "could not start influxd" >&2; exit 1; }
set -a; . "$dir/env"; set +a
echo "[influxdb] 1.x running at $PDM_TEST_INFLUXDB1_URL (data in $dir)"
"$@"
