"""WSGI entry point for production servers: ``gunicorn dashboard.wsgi:server``.

Settings come from ``PDM_*`` variables and ``PDM_CONFIG`` as for ``pdmctl``.
"""

from __future__ import annotations

from dashboard.app import create_app
from pdm.settings import load_settings

app = create_app(load_settings())
server = app.server
