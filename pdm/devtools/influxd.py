"""Start and stop a real InfluxDB 1.x server on loopback, for tests and ``make test``.

>>> server = InfluxServer(tmp_path)        # data, config and log live in tmp_path
>>> server.start()                         # free ports, waits until /ping answers 204
>>> server.url
'http://127.0.0.1:41234'
>>> server.kill(); server.restart()        # crash and come back on the same port and data
>>> server.stop()

From a shell (the Makefile's test scripts do this)::

    python -m pdm.devtools.influxd start --dir DIR --env-file DIR/env
    python -m pdm.devtools.influxd stop --dir DIR

``start`` leaves the server running detached, writes its PID to ``DIR/influxd.pid``
and ``PDM_TEST_INFLUXDB1_URL=http://127.0.0.1:PORT`` to the env file.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PID_FILE = "influxd.pid"
CONFIG_FILE = "influxdb.conf"
LOG_FILE = "influxd.log"
ENV_VAR = "PDM_TEST_INFLUXDB1_URL"


class InfluxServerError(RuntimeError):
    """The server could not be started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_influxd() -> str:
    """Path of the ``influxd`` binary (PATH, then /usr/bin)."""
    path = shutil.which("influxd") or ("/usr/bin/influxd" if os.access("/usr/bin/influxd", os.X_OK) else None)
    if path is None:
        raise InfluxServerError("influxd not found: install InfluxDB 1.x (apt-get install influxdb)")
    return path


def render_config(data_dir: Path, port: int, rpc_port: int, *, auth: bool = False) -> str:
    """The server's TOML config: everything under ``data_dir``, loopback only, quiet."""
    d = Path(data_dir).resolve()
    return f"""\
# Written by pdm.devtools.influxd; throwaway server for tests.
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{d / 'meta'}"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{d / 'data'}"
  wal-dir = "{d / 'wal'}"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[retention]
  enabled = false

[continuous_queries]
  enabled = false
  log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {'true' if auth else 'false'}
  log-enabled = false
  suppress-write-log = true
  write-tracing = false
  pprof-enabled = false
  https-enabled = false
  flux-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""


class InfluxServer:
    """One ``influxd`` process with its config, data, WAL and log under ``data_dir``.

    Parameters
    ----------
    data_dir
        Created if missing. Reusing a directory reuses its data.
    port, rpc_port
        HTTP and RPC (backup) ports; free ones are picked when None.
    auth
        Start with ``auth-enabled = true`` (create a user with :meth:`create_admin`).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int | None = None,
        *,
        rpc_port: int | None = None,
        auth: bool = False,
        startup_timeout_s: float = 30.0,
        influxd: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.rpc_port = rpc_port
        self.auth = auth
        self.startup_timeout_s = startup_timeout_s
        self.influxd = influxd
        self.proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        if self.port is None:
            raise InfluxServerError("server not started yet: no port")
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------- lifecycle
    def start(self, *, detach: bool = False) -> InfluxServer:
        """Write the config, run ``influxd run -config FILE`` and wait for /ping.

        With ``detach`` the server gets its own session and outlives this
        process (the CLI uses that). Ports that turn out to be taken between
        picking and binding are re-picked (when they were not given).
        """
        if self.running():
            return self
        exe = self.influxd or find_influxd()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pick_http, pick_rpc = self.port is None, self.rpc_port is None
        last_error = ""
        for _attempt in range(5):
            if pick_http and self.port is None:
                self.port = free_port()
            if pick_rpc and self.rpc_port is None:
                self.rpc_port = free_port()
                while self.rpc_port == self.port:
                    self.rpc_port = free_port()
            assert self.port is not None and self.rpc_port is not None
            self.config_path.write_text(render_config(self.data_dir, self.port, self.rpc_port, auth=self.auth))
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [exe, "run", "-config", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=detach,
                    close_fds=True,
                )
            try:
                self._wait_ready()
                if not detach:
                    atexit.register(self._kill_at_exit, self.proc)
                return self
            except InfluxServerError as exc:
                last_error = str(exc)
                self._terminate(signal.SIGKILL, 5.0)
                if "address already in use" not in last_error:
                    break
                if pick_http:
                    self.port = None
                if pick_rpc:
                    self.rpc_port = None
                time.sleep(0.2)
        raise InfluxServerError(last_error)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        with requests.Session() as s:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise InfluxServerError(f"influxd exited with {code} while starting: {self._log_tail()}")
                try:
                    if s.get(f"{self.url}/ping", timeout=1.0).status_code == 204:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.05)
        raise InfluxServerError(
            f"influxd did not answer {self.url}/ping within {self.startup_timeout_s:.0f}s: {self._log_tail()}"
        )

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    @staticmethod
    def _kill_at_exit(proc: subprocess.Popen[bytes]) -> None:
        """Do not leave a test server behind when the test run dies."""
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def _terminate(self, sig: int, timeout_s: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10.0)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, and wait for the server to exit (SIGKILL after ``timeout_s``)."""
        self._terminate(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would; the data dir stays for :meth:`restart`."""
        self._terminate(signal.SIGKILL, 10.0)

    def restart(self) -> InfluxServer:
        """Stop (if running) and start again on the same data dir and ports."""
        self.stop()
        return self.start()

    def create_admin(self, username: str, password: str) -> None:
        """Create an admin user (allowed without credentials while there is none)."""
        pw = password.replace("\\", "\\\\").replace("'", "\\'")
        user = username.replace("\\", "\\\\").replace('"', '\\"')
        r = requests.post(
            f"{self.url}/query",
            data={"q": f"CREATE USER \"{user}\" WITH PASSWORD '{pw}' WITH ALL PRIVILEGES"},
            timeout=10,
        )
        if r.status_code != 200 or '"error"' in r.text:
            raise InfluxServerError(f"creating user {username!r} on {self.url} failed: HTTP {r.status_code}")

    def __enter__(self) -> InfluxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------- CLI
def _pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_influxd(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled PID: the process must run our config file."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the PID file
    return str(data_dir / CONFIG_FILE).encode() in cmdline


def cli_start(data_dir: Path, env_file: Path | None, port: int | None, auth: bool) -> int:
    server = InfluxServer(data_dir, port, auth=auth)
    pid_file = server.data_dir / PID_FILE
    if pid_file.exists():
        old = int(pid_file.read_text().strip() or 0)
        if old and _pid_alive(old) and _is_our_influxd(old, server.data_dir):
            print(f"influxd already running (pid {old}) for {server.data_dir}", file=sys.stderr)
            return 1
    server.start(detach=True)
    assert server.pid is not None
    pid_file.write_text(f"{server.pid}\n")
    line = f"{ENV_VAR}={server.url}\n"
    if env_file is not None:
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text(line)
    print(f"influxd running at {server.url} (pid {server.pid}, data in {server.data_dir})")
    # The detached child is not waited for by this process: forget it so
    # Popen's destructor does not warn.
    server.proc = None
    return 0


def cli_stop(data_dir: Path, timeout_s: float = 30.0) -> int:
    data_dir = data_dir.resolve()
    pid_file = data_dir / PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"no influxd PID file in {data_dir}: nothing to stop", file=sys.stderr)
        return 0
    if _pid_alive(pid) and _is_our_influxd(pid, data_dir):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pdm.devtools.influxd", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start a detached server with its data in DIR")
    p_start.add_argument("--dir", required=True, type=Path)
    p_start.add_argument("--env-file", type=Path, default=None)
    p_start.add_argument("--port", type=int, default=None)
    p_start.add_argument("--auth", action="store_true", help="auth-enabled = true")
    p_stop = sub.add_parser("stop", help="stop the server started with the same DIR")
    p_stop.add_argument("--dir", required=True, type=Path)
    p_stop.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "start":
            return cli_start(args.dir, args.env_file, args.port, args.auth)
        return cli_stop(args.dir, args.timeout)
    except InfluxServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
