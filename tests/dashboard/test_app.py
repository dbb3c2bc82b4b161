"""The app without a browser: secrets stay on the server, acknowledging needs the configured sign-in."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dashboard.app import create_app
from pdm.settings import load_settings
from tests.dashboard import handmade

STORE_PASSWORD = "influx-pa55-Zq8"
ACK_PASSWORD = "ack-pa55-Wx3"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("dash-app")
    handmade.build(root / "pdm.duckdb")
    settings = load_settings(
        store={"backend": "embedded", "path": str(root / "pdm.duckdb"), "password": STORE_PASSWORD,
               "token": STORE_PASSWORD + "-token"},
        data_dir=str(root), dashboard={"ack_username": "anna", "ack_password": ACK_PASSWORD})
    return create_app(settings)


def _ack(client: Any, app: Any, comment: str, auth: str | None = None) -> tuple[int, str]:
    key = next(k for k in app.callback_map if "ack-message.children" in k)
    body = {
        "output": key,
        "outputs": [{"id": "ack-message", "property": "children"}, {"id": "ack-done", "property": "data"},
                    {"id": "ack-comment", "property": "value"}],
        "inputs": [{"id": "ack-button", "property": "n_clicks", "value": 1}],
        "state": [{"id": "ack-alarm", "property": "value", "value": f"m-alarm|{int(handmade.ALARM_AT.value)}"},
                  {"id": "ack-comment", "property": "value", "value": comment},
                  {"id": "ack-operator", "property": "value", "value": "mallory"},
                  {"id": "ack-done", "property": "data", "value": 0}],
        "changedPropIds": ["ack-button.n_clicks"],
    }
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    r = client.post("/_dash-update-component", json=body, headers=headers)
    return r.status_code, r.get_data(as_text=True)


def _acks(app: Any) -> Any:
    log = app._pdm_context.data.read("operator_log", "m-alarm")
    return log[log["event_type"] == "alarm_ack"]


def test_no_secret_reaches_the_browser(app: Any) -> None:
    client = app.server.test_client()
    served = []
    for url in ("/", "/_dash-layout", "/_dash-dependencies", "/alarms", "/machine/m-alarm"):
        r = client.get(url)
        assert r.status_code == 200, url
        served.append(r.get_data(as_text=True))
    status, text = _ack(client, app, "no credentials")
    served.append(text)
    for secret in (STORE_PASSWORD, ACK_PASSWORD, "-token"):
        assert not any(secret in s for s in served), secret
    assert "anna" not in served[1]  # not even the user name is in the layout


def test_acknowledging_without_or_with_wrong_credentials_stores_nothing(app: Any) -> None:
    client = app.server.test_client()
    for auth in (None, "anna:wrong", "mallory:" + ACK_PASSWORD):
        status, text = _ack(client, app, "tried", auth)
        assert status == 200 and "sign in" in text.lower()
    assert _acks(app).empty
    assert client.get("/login").status_code == 401
    assert "Basic" in client.get("/login").headers["WWW-Authenticate"]


def test_acknowledging_with_credentials_stores_it_under_the_signed_in_user(app: Any) -> None:
    client = app.server.test_client()
    status, text = _ack(client, app, "checked the bearing", "anna:" + ACK_PASSWORD)
    assert status == 200 and "Acknowledged by anna" in json.loads(text)["response"]["ack-message"]["children"]["props"]["children"]
    acks = _acks(app)
    assert list(acks["operator"]) == ["anna"]  # not the typed name
    assert "checked the bearing" in acks["message"].iloc[0]
    creds = base64.b64encode(f"anna:{ACK_PASSWORD}".encode()).decode()
    assert client.get("/login", headers={"Authorization": f"Basic {creds}"}).status_code == 302


def test_unknown_pages_and_health(app: Any) -> None:
    client = app.server.test_client()
    assert client.get("/healthz").status_code == 200
