"""The Dash app: routing, the store banner, auto-refresh and basic authentication.

>>> from dashboard.app import create_app
>>> app = create_app(load_settings())      # app.server is the WSGI application
>>> app.run(host="127.0.0.1", port=8050)

Pages live in :mod:`dashboard.pages`; each has ``layout(**params)`` and
``register(app, ctx)``. No setting reaches the browser except the refresh
interval and the title: store credentials and the acknowledgement password
stay on the server.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import dash
import flask
from dash import Dash, Input, Output, State, dcc, html

from dashboard.data import RANGES, DashboardData, DashboardError
from pdm.settings import Settings
from pdm.store.errors import StoreError

log = logging.getLogger(__name__)
ASSETS = Path(__file__).with_name("assets")
REALM = "pdm dashboard"


@dataclass
class Context:
    """What page callbacks share: the data access and the settings."""

    data: DashboardData
    settings: Settings

    @property
    def auth_required(self) -> bool:
        return bool(self.settings.dashboard.ack_password.get_secret_value())

    def signed_in_operator(self) -> str | None:
        """The basic-auth user of the current request when its credentials are right, else None."""
        cfg = self.settings.dashboard
        auth = flask.request.authorization
        if auth is None or auth.type != "basic":
            return None
        ok_user = hmac.compare_digest((auth.username or "").encode(), cfg.ack_username.encode())
        ok_pass = hmac.compare_digest((auth.password or "").encode(), cfg.ack_password.get_secret_value().encode())
        return (auth.username or "operator") if (ok_user and ok_pass) else None


def guarded(render: Callable[..., Any], fallback: Callable[[str], Any], outputs: int = 1) -> Callable[..., Any]:
    """Run a page's render; trouble becomes a message, never a traceback.

    While the store is unreachable the outputs keep what they show (the banner
    says why); a bad request (unknown machine, empty comment) shows ``fallback``.
    """

    def run(*args: Any) -> Any:
        try:
            return render(*args)
        except StoreError as exc:
            log.warning("store unreachable while rendering: %s", exc)
            return dash.no_update if outputs == 1 else tuple(dash.no_update for _ in range(outputs))
        except DashboardError as exc:
            return fallback(str(exc))
        except Exception:  # noqa: BLE001 - a page must not die with a traceback on the plant floor
            log.exception("page render failed")
            return fallback("This view could not be drawn; the error is in the dashboard's log.")

    return run


def create_app(settings: Settings, *, data: DashboardData | None = None) -> Dash:
    """Build the dashboard over ``settings.store`` and the models directory."""
    from dashboard.pages import alarms, fleet, machine, model, rootcause

    ctx = Context(data or DashboardData(settings), settings)
    app = Dash(__name__, title=settings.dashboard.title, assets_folder=str(ASSETS),
               suppress_callback_exceptions=True, update_title=None)  # type: ignore[arg-type]
    app.layout = html.Div([
        dcc.Location(id="url"),
        dcc.Interval(id="refresh", interval=int(settings.dashboard.refresh_s * 1000)),
        html.Header([
            html.A("pdm", href="/", className="brand"),
            html.Nav([html.A("Fleet", href="/"), html.A("Alarms", href="/alarms"), html.A("Model", href="/model")]),
            html.Span(id="as-of", className="as-of"),
        ], className="topbar"),
        html.Div(id="store-banner", className="banner hidden", role="alert"),
        html.Main(id="page"),
    ])

    routes: list[tuple[Callable[[list[str]], dict[str, str] | None], Any]] = [
        (lambda p: {} if p == [] else None, fleet),
        (lambda p: {"machine": p[1]} if len(p) == 2 and p[0] == "machine" else None, machine),
        (lambda p: {"machine": p[1], "alarm": p[2]} if len(p) == 3 and p[0] == "rootcause" else None, rootcause),
        (lambda p: {} if p == ["alarms"] else None, alarms),
        (lambda p: {} if p == ["model"] else None, model),
    ]

    @app.callback(Output("page", "children"), Input("url", "pathname"), State("url", "search"))
    def route(pathname: str | None, search: str | None) -> Any:
        parts = [unquote(s) for s in (pathname or "/").strip("/").split("/") if s]
        query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
        for match, page in routes:
            params = match(parts)
            if params is not None:
                if page is machine and query.get("range") in RANGES:
                    params["range_key"] = query["range"]
                return page.layout(**params)
        return html.Div([html.H2("Not found"), html.P(f"No page at {pathname}."), html.A("Fleet", href="/")],
                        className="notice")

    @app.callback(Output("store-banner", "children"), Output("store-banner", "className"),
                  Input("refresh", "n_intervals"), Input("url", "pathname"))
    def banner(_n: int | None, _path: str | None) -> tuple[Any, str]:
        try:
            ctx.data.ping(fresh_s=settings.dashboard.refresh_s / 2)
        except StoreError as exc:
            where = settings.store.backend
            return ([html.Strong("Store unreachable. "),
                     f"The {where} store does not answer ({type(exc).__name__}). Pages keep the last data "
                     f"shown and retry every {settings.dashboard.refresh_s:g} s."], "banner")
        return "", "banner hidden"

    for page in (fleet, machine, rootcause, alarms, model):
        page.register(app, ctx)

    @app.server.route("/login")
    def login() -> Any:
        """Ask the browser for basic-auth credentials; they are then sent with every request."""
        if not ctx.auth_required or ctx.signed_in_operator():
            return flask.redirect(flask.request.args.get("next") or "/alarms")
        return flask.Response("Sign in to acknowledge alarms.", 401, {"WWW-Authenticate": f'Basic realm="{REALM}"'})

    @app.server.route("/healthz")
    def healthz() -> flask.Response:
        try:
            ctx.data.ping()
        except StoreError:
            return flask.Response("store unreachable", 503)
        return flask.Response("ok", 200)

    app._pdm_context = ctx  # type: ignore[attr-defined]  # for tests and the benchmark
    return app



def serve(settings: Settings, *, debug: bool = False) -> None:
    """Serve the dashboard on ``settings.dashboard.host:port`` until interrupted.

    waitress (a production WSGI server) when installed, else Flask's; in the
    compose stack gunicorn serves ``dashboard.wsgi:server`` instead.
    """
    cfg = settings.dashboard
    app = create_app(settings)
    url = f"http://{cfg.host}:{cfg.port}/"
    auth = "basic authentication" if cfg.ack_password.get_secret_value() else "no sign-in"
    print(f"pdm dashboard on {url} (store: {settings.store.backend}; acknowledging alarms: {auth}); Ctrl-C stops it",
          flush=True)
    if debug:
        app.run(host=cfg.host, port=cfg.port, debug=True)
        return
    try:
        from waitress import serve as waitress_serve
    except ImportError:
        app.run(host=cfg.host, port=cfg.port, debug=False)
        return
    waitress_serve(app.server, host=cfg.host, port=cfg.port, threads=8)
