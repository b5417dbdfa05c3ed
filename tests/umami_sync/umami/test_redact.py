"""Secrets scrubbed out of text: the Redactor alone first, then real HTTP through the hook against FakeUmami and
a scripted server (gateways that echo requests)."""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from local_stack.umami_api import FakeUmami
from tests.factories import OTHER_WEBSITE
from tests.umami_sync.umami.conftest import (
    API_KEY,
    PASSWORD,
    WINDOW,
    SessionMaker,
    cloud_umami,
    current_token,
    exception_texts,
    integration,
    login_reply,
    read_all,
    umami_connection,
)
from umami_sync.umami.errors import UmamiApiError, UmamiAuthError, UmamiRequestError, UmamiRetryError
from umami_sync.umami.redact import MAX_CHARS, Redactor, echoed_forms
from umami_sync.umami.websites import all_websites

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.umami_sync.umami.conftest import Handler, LogCapture
    from umami_sync.umami.api import UmamiHook

# --- the Redactor alone -------------------------------------------------------------------------------


def test_every_echoed_form_of_a_secret_is_scrubbed() -> None:
    secret = 'p"a\\ss w/rd+' + uuid.uuid4().hex[:8]
    redact = Redactor()
    redact.add(secret, None, "")

    text = redact(" | ".join(echoed_forms(secret)))

    assert text == " | ".join(["***"] * len(echoed_forms(secret)))
    assert len(echoed_forms(secret)) > 3  # as is, JSON- and repr-escaped, URL-encoded in three ways


def test_bearer_and_token_like_strings_are_scrubbed_and_the_text_capped() -> None:
    redact = Redactor()

    assert redact("forbidden for Bearer abc.def") == "forbidden for Bearer ***"
    assert redact(f"echo {'x' * 40} end") == "echo *** end"
    assert redact("short words stay") == "short words stay"
    assert len(redact("word " * 100)) == MAX_CHARS


def test_ids_stay_in_umami_errors_as_in_the_alerts_one_scrubbing_rule() -> None:
    """Website and session ids name what an error is about: the client keeps them as the alerts do, and both scrub
    what looks like a credential by the same rule."""
    from umami_sync.alerts import scrub as alert_scrub
    from umami_sync.umami.redact import scrub

    session = str(uuid.uuid4())
    text = (f"website {OTHER_WEBSITE}: session {session} not found (Bearer abc.def, password=hunter2, "
            f"https://sync:s3cr3t@umami.internal/api, {'x' * 40}, AirflowSecretsBackendAccessDenied)")

    assert Redactor()(text) == (f"website {OTHER_WEBSITE}: session {session} not found (Bearer ***, password=***, "
                                "https://***@umami.internal/api, ***, AirflowSecretsBackendAccessDenied)")
    assert Redactor()(text) == scrub(text) == alert_scrub(text)


def test_a_secret_added_later_is_scrubbed_from_then_on() -> None:
    redact = Redactor()
    assert redact("token tok3n") == "token tok3n"

    redact.add("tok3n")

    assert redact("token tok3n") == "token ***"


# --- through the hook ---------------------------------------------------------------------------------


@integration
def test_a_password_echoed_escaped_is_scrubbed_too(scripted_server: Callable[[Handler], str],
                                                   make_hook: Callable[..., UmamiHook],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    password = 'p"a\\ss w/rd+' + uuid.uuid4().hex

    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        from urllib.parse import quote

        echoed = f"{body.decode()} {quote(password)} {password!r}"  # JSON-escaped, URL-encoded, repr-escaped
        return 400, {}, json.dumps({"error": {"message": echoed, "code": "bad"}}).encode()

    url = scripted_server(serve)
    umami_connection(monkeypatch, url, login="admin", password=password)

    with pytest.raises(UmamiApiError) as caught:
        all_websites(make_hook())

    message = caught.value.message
    assert message.count("***") == 3
    for form in (password, json.dumps(password)[1:-1], "p%22a", "a\\\\ss"):
        assert form not in message


@integration
def test_error_bodies_that_echo_secrets_are_reduced_to_umamis_message(
    scripted_server: Callable[[Handler], str], make_hook: Callable[..., UmamiHook], logged: LogCapture
) -> None:
    """A login endpoint that echoes the request body, and a gateway that echoes the Authorization header:
    only Umami's error message and code may be kept, without the password or the token."""
    token = "tok3n-" + uuid.uuid4().hex * 2
    logins = []

    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        if path == "/api/auth/login":
            logins.append(body)
            if len(logins) == 1:  # the first login is answered by an echoing proxy
                return 400, {}, json.dumps({"error": {"message": f"bad request {body.decode()}",
                                                      "code": "bad-request"}, "echo": body.decode()}).encode()
            return login_reply(token)
        echoed = headers.get("authorization", "")
        return 403, {}, json.dumps({"error": f"forbidden for {echoed}", "headers": headers}).encode()

    scripted_server(serve)
    with pytest.raises(UmamiApiError) as refused:
        all_websites(make_hook())
    with pytest.raises(UmamiApiError) as forbidden:
        all_websites(make_hook())

    texts = [str(refused.value), "".join(traceback.format_exception(refused.value)),
             str(forbidden.value), "".join(traceback.format_exception(forbidden.value)), logged.text()]
    assert refused.value.message.startswith("bad request")
    assert forbidden.value.message == "forbidden for Bearer ***"
    assert all(len(exc.message) <= 200 for exc in (refused.value, forbidden.value))
    for secret in (PASSWORD, token):
        assert not any(secret in text for text in texts)


@integration
def test_secrets_never_reach_logs_errors_or_results(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., UmamiHook], logged: LogCapture,
) -> None:
    made = make_sessions(6)
    texts: list[str] = []
    tokens: set[str] = set()

    def keep(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    with FakeUmami(umami_pg, password=PASSWORD) as fake:
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        hook = make_hook(max_retries=2)
        hook.log.info("canary %s", PASSWORD)  # proves the capture sees secrets unmasked
        logging.getLogger("canary").info("canary %s", API_KEY)
        canary = logged.text()
        assert PASSWORD in canary
        assert API_KEY in canary
        logged.clear()

        fake.faults.throttle_next, fake.faults.retry_after_seconds = 1, 0
        fake.faults.malformed_ids = {made[2]}
        fake.faults.on_session_page = lambda page: fake.revoke_tokens() if page == 2 else None
        texts.append(repr(hook.session_page(OTHER_WEBSITE, WINDOW, 1, 2)))
        tokens.add(current_token(hook))
        texts.append(repr([hook.session_page(OTHER_WEBSITE, WINDOW, page, 2) for page in (2, 3)]))
        tokens.add(current_token(hook))
        fake.faults.on_session_page = None
        fake.faults.fail_next = 10
        with pytest.raises(UmamiRetryError) as retried:
            read_all(hook, OTHER_WEBSITE, 2)
        keep(retried.value)
        texts.extend([repr(hook.stats), repr(all_websites(hook)), repr(hook.__dict__)])

        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD + "-typo")
        with pytest.raises(UmamiAuthError) as rejected:
            all_websites(make_hook())
        keep(rejected.value)
        fake.reset()
        fake.faults.delay_next, fake.faults.delay_seconds = 10, 1.0
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        with pytest.raises(UmamiRetryError) as timed_out:
            all_websites(make_hook(timeout=0.2, max_retries=1))
        keep(timed_out.value)

    with cloud_umami(umami_pg, monkeypatch) as cloud:
        hook = make_hook()
        texts.append(repr(all_websites(hook)))
        cloud.faults.throttle_next = 1
        texts.append(repr(read_all(hook, OTHER_WEBSITE, 4)))
        texts.append(repr(hook.__dict__))

    assert len(tokens) == 2
    everything = logged.text() + "\n".join(texts)
    assert "retry 1/2" in everything  # the failures above were logged
    for secret in (PASSWORD, API_KEY, *tokens):
        assert secret not in everything



@integration
def test_an_exception_requests_raises_leaves_the_hook_scrubbed(umami_pg: str, monkeypatch: pytest.MonkeyPatch,
                                                               make_hook: Callable[..., UmamiHook]) -> None:
    """http.client cannot encode a header value outside Latin-1: its UnicodeEncodeError holds the whole value (the
    API key) in its args and repr. The hook wraps it, and the key leaves in no text of the error or its chain."""
    key = f"{API_KEY}-\u2603"
    with cloud_umami(umami_pg, monkeypatch) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1", extra={"api_key": key})

        with pytest.raises(UmamiRequestError, match=r"^Umami GET /v1/websites: UnicodeEncodeError: ") as caught:
            all_websites(make_hook())

        assert fake.requests == []
    for text in exception_texts(caught.value):
        assert API_KEY not in text
