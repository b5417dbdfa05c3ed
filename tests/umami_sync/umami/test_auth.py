"""The connection rule (self-hosted login/password or a Cloud ``api_key``) and the session it gives, without a
server; then credentials as a secret store may hand them over (white space, control characters), over real HTTP
against FakeUmami."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories import WEBSITE
from tests.umami_sync.umami.conftest import (
    API_KEY,
    PASSWORD,
    cloud_umami,
    exception_texts,
    integration,
    umami_connection,
)
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.auth import API_KEY_HEADER, AuthMode
from umami_sync.umami.errors import UmamiConfigError
from umami_sync.umami.websites import all_websites

if TYPE_CHECKING:
    from collections.abc import Callable

    from local_stack.umami_api import FakeUmami


def test_self_hosted_connection_sends_no_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9/", login="admin", password=PASSWORD,
                     extra={"X-Team": "analytics"})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.credentials.cloud is False
    assert session.auth is None
    assert session.headers["X-Team"] == "analytics"
    assert API_KEY_HEADER not in session.headers


def test_cloud_connection_sends_the_key_once_under_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="https://api.umami.is/v1", extra={"api_key": API_KEY})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.credentials.cloud is True
    assert session.auth is None
    assert session.headers[API_KEY_HEADER] == API_KEY
    assert [value for value in session.headers.values() if value == API_KEY] == [API_KEY]
    assert "api_key" not in session.headers


SELF_HOSTED_KEY = "umami_" + "Vt3neverlogged" * 2 + "ab"  # umami_ and 30 more characters


@pytest.mark.parametrize(("host", "extra", "mode", "first_path"), [
    ("https://api.umami.is/v1", {"api_key": API_KEY}, AuthMode.CLOUD, "/v1/websites"),
    ("https://api.umami.is/v1/", {"api_key": API_KEY}, AuthMode.CLOUD, "/v1/websites"),
    ("https://umami.example.com", {"api_key": SELF_HOSTED_KEY}, AuthMode.API_KEY, "/api/websites"),
    # a self-hosted server behind a path prefix (Umami's BASE_PATH)
    ("https://example.com/analytics", {"api_key": SELF_HOSTED_KEY}, AuthMode.API_KEY, "/analytics/api/websites"),
    # the override: a self-hosted prefix that ends in /v1, and Cloud's API behind a gateway of one's own
    ("https://example.com/v1", {"api_key": SELF_HOSTED_KEY, "umami_cloud": False}, AuthMode.API_KEY,
     "/v1/api/websites"),
    ("https://gateway.example.com/umami", {"api_key": API_KEY, "umami_cloud": True}, AuthMode.CLOUD,
     "/umami/websites"),
])
def test_the_rule_tells_umami_cloud_from_a_self_hosted_key(
    monkeypatch: pytest.MonkeyPatch, host: str, extra: dict[str, Any], mode: AuthMode, first_path: str
) -> None:
    umami_connection(monkeypatch, host=host, extra=extra)
    hook = UmamiHook()

    session = hook.get_conn()

    key = extra["api_key"]
    assert hook.credentials.mode is mode
    assert hook._shown("websites") == first_path
    assert session.auth is None
    if mode is AuthMode.CLOUD:
        assert (session.headers[API_KEY_HEADER], "Authorization" in session.headers) == (key, False)
    else:
        assert (session.headers["Authorization"], API_KEY_HEADER in session.headers) == (f"Bearer {key}", False)
    assert [value for value in session.headers.values() if key in value] == [session.headers.get(
        API_KEY_HEADER, f"Bearer {key}")]
    assert not {"api_key", "umami_cloud"} & {name.lower() for name in session.headers}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"login": "admin", "password": PASSWORD, "extra": {"api_key": API_KEY}}, "not both"),
        ({"login": "admin"}, "needs login and password"),
        ({}, "needs login and password"),
        ({"extra": {"X-Umami-Api-Key": API_KEY}}, "X-Umami-Api-Key"),
        ({"login": "admin", "password": PASSWORD, "extra": {"Authorization": f"Bearer {API_KEY}"}},
         "Authorization"),
        # a key that is not a self-hosted one (Umami Cloud's, say) on a host that is not Cloud's
        ({"extra": {"api_key": API_KEY}}, r"not a self-hosted Umami API key .*'umami_'.*https://api\.umami\.is/v1"),
        ({"extra": {"api_key": API_KEY}, "host": "https://api.umami.is"},
         r"Umami Cloud's API is https://api\.umami\.is/v1"),
        ({"extra": {"api_key": SELF_HOSTED_KEY, "umami_cloud": "no"}}, "'umami_cloud' must be true or false"),
        ({"login": "admin", "password": PASSWORD, "extra": {"umami_cloud": True}}, "Umami Cloud needs extra 'api_key'"),
    ],
)
def test_connection_rule_violations_are_clear_and_secret_free(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], complaint: str
) -> None:
    umami_connection(monkeypatch, **{"host": "http://127.0.0.1:9", **fields})

    with pytest.raises(UmamiConfigError, match=complaint) as caught:
        UmamiHook().get_conn()

    for text in exception_texts(caught.value):
        assert API_KEY not in text and PASSWORD not in text and SELF_HOSTED_KEY not in text



# --- credentials as a secret store may hand them over -------------------------------------------------


@integration
@pytest.mark.parametrize("key", [f"{API_KEY}\n", f"\t{API_KEY}", f" {API_KEY}\r\n"])
def test_white_space_around_an_api_key_is_trimmed(key: str, umami_pg: str, monkeypatch: pytest.MonkeyPatch,
                                                  make_hook: Callable[..., UmamiHook]) -> None:
    with cloud_umami(umami_pg, monkeypatch) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1", extra={"api_key": key})

        websites = all_websites(make_hook())

        assert [record.status for record in fake.requests] == [200]  # the fake checks the key
    assert [website.id for website in websites] == [WEBSITE]


@integration
def test_white_space_around_a_login_and_password_is_trimmed(fake_umami: FakeUmami, monkeypatch: pytest.MonkeyPatch,
                                                            make_hook: Callable[..., UmamiHook]) -> None:
    umami_connection(monkeypatch, fake_umami.url, login=f" {fake_umami.username}\t", password=f"{PASSWORD}\n")

    assert [website.id for website in all_websites(make_hook())] == [WEBSITE]
    assert (fake_umami.requests[0].path, fake_umami.requests[0].status) == ("/api/auth/login", 200)


@integration
@pytest.mark.parametrize(("fields", "field", "value"), [
    ({"extra": {"api_key": f"{API_KEY}\nX-Injected: 1"}}, "extra 'api_key'", f"{API_KEY}\nX-Injected: 1"),
    ({"extra": {"api_key": f"\t{API_KEY}\x00"}}, "extra 'api_key'", f"{API_KEY}\x00"),
    ({"login": "admin", "password": f"{PASSWORD}\tsecond"}, "password", f"{PASSWORD}\tsecond"),
    ({"login": "ad\x7fmin", "password": PASSWORD}, "login", "ad\x7fmin"),
])
def test_a_control_character_inside_a_credential_is_refused_before_any_request(
    fields: dict[str, Any], field: str, value: str, fake_umami: FakeUmami, monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., UmamiHook],
) -> None:
    umami_connection(monkeypatch, fake_umami.url, **fields)

    with pytest.raises(UmamiConfigError,
                       match=rf"^connection 'umami_api': {re.escape(field)} holds a control character") as caught:
        all_websites(make_hook())

    assert fake_umami.requests == []
    for text in exception_texts(caught.value):
        for hidden in (value, repr(value)[1:-1], PASSWORD, API_KEY):
            assert hidden not in text


def test_an_api_key_that_is_not_text_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9", extra={"api_key": 1234567890})

    with pytest.raises(UmamiConfigError, match=r"connection 'umami_api': extra 'api_key' must be text") as caught:
        UmamiHook().get_conn()

    assert not any("1234567890" in text for text in exception_texts(caught.value))
