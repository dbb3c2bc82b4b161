"""HTTP plumbing shared by the InfluxDB back ends: retries with backoff, and
errors that name the URL but never the credentials."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import requests

from pdm.store.errors import AuthenticationError, StoreUnavailableError

log = logging.getLogger(__name__)

#: HTTP statuses worth retrying: the server is busy or restarting.
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


def request_with_retry(
    send: Callable[[], requests.Response],
    url: str,
    *,
    retries: int,
    backoff_s: float,
    max_backoff_s: float = 10.0,
    what: str = "request",
) -> requests.Response:
    """Call ``send`` until it answers with a non-transient status.

    Connection errors, timeouts and 5xx/429 answers are retried ``retries``
    times with exponential backoff and jitter; 401/403 raise
    AuthenticationError at once. Other 4xx are returned for the caller.

    Raises
    ------
    StoreUnavailableError
        Naming ``url`` (which must not contain credentials).
    """
    attempt = 0
    while True:
        try:
            resp = send()
        except requests.RequestException as exc:
            reason = f"{type(exc).__name__}"
            status = None
        else:
            status = resp.status_code
            if status in (401, 403):
                raise AuthenticationError(
                    f"{what} to {url} refused: HTTP {status} (check the token / user and password)"
                )
            if status not in TRANSIENT:
                return resp
            reason = f"HTTP {status}: {server_message(resp)}"
        if attempt >= retries:
            raise StoreUnavailableError(
                f"{what} to {url} failed after {attempt + 1} attempt(s): {reason}"
            )
        delay = min(max_backoff_s, backoff_s * (2**attempt)) * (0.5 + random.random() / 2)
        log.warning("%s to %s failed (%s); retry %d/%d in %.2fs", what, url, reason, attempt + 1, retries, delay)
        time.sleep(delay)
        attempt += 1


def server_message(resp: requests.Response) -> str:
    """The error text of an InfluxDB answer (JSON ``error``/``message`` or body)."""
    try:
        body: Any = resp.json()
    except ValueError:
        return resp.text[:300].strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)[:300]
    return str(body)[:300]
