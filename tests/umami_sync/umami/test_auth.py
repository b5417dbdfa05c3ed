"""The connection rule (self-hosted login/password or a Cloud ``api_key``) and the session it gives; no server."""

from __future__ import annotations

import pytest

from tests.umami_sync.umami.conftest import API_KEY, PASSWORD, umami_connection
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.auth import API_KEY_HEADER
from umami_sync.umami.errors import UmamiConfigError


def test_self_hosted_connection_sends_no_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9/", login="admin", password=PASSWORD,
                     extra={"X-Team": "analytics"})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.cloud is False
    assert session.auth is None
    assert session.headers["X-Team"] == "analytics"
    assert API_KEY_HEADER not in session.headers


def test_cloud_connection_sends_the_key_once_under_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="https://api.umami.is/v1", extra={"api_key": API_KEY})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.cloud is True
    assert session.auth is None
    assert session.headers[API_KEY_HEADER] == API_KEY
    assert [value for value in session.headers.values() if value == API_KEY] == [API_KEY]
    assert "api_key" not in session.headers


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"login": "admin", "password": PASSWORD, "extra": {"api_key": API_KEY}}, "not both"),
        ({"login": "admin"}, "needs login and password"),
        ({}, "needs login and password"),
        ({"extra": {"X-Umami-Api-Key": API_KEY}}, "X-Umami-Api-Key"),
        ({"login": "admin", "password": PASSWORD, "extra": {"Authorization": f"Bearer {API_KEY}"}},
         "Authorization"),
    ],
)
def test_connection_rule_violations_are_clear_and_secret_free(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], complaint: str
) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9", **fields)

    with pytest.raises(UmamiConfigError, match=complaint) as caught:
        UmamiHook().get_conn()

    assert API_KEY not in str(caught.value)
    assert PASSWORD not in str(caught.value)

