"""The API models against real Umami 3.1.0 response bodies, and row-by-row validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from umami_sync.umami.models import (
    ActivityEvent,
    CappedListError,
    InvalidRow,
    LoginResponse,
    SessionRow,
    UmamiPageEnvelope,
    UmamiSession,
    UmamiWebsite,
    beacons_only,
    session_page_rows,
    validate_session_rows,
)

if TYPE_CHECKING:
    from pathlib import Path


def _load(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())


def validate_sessions(rows: list[Any]) -> tuple[list[SessionRow], list[InvalidRow]]:
    """The valid and the invalid rows, each in the order they came."""
    validated = validate_session_rows(rows)
    return ([row for row in validated if not isinstance(row, InvalidRow)],
            [row for row in validated if isinstance(row, InvalidRow)])


def test_session_rows_of_both_pages_validate(umami_fixtures: Path) -> None:
    rows = [row for name in ("api_sessions_p1.json", "api_sessions_p2.json")
            for row in _load(umami_fixtures, name)["data"]]

    valid, invalid = validate_sessions(rows)

    assert invalid == []
    assert [s["id"] for s in valid] == [row["id"] for row in rows]
    first = valid[0]
    assert first["website_id"] == "266abb41-957e-4dd3-8229-6a601f80a9db"
    assert (first["browser"], first["os"], first["country"], first["city"]) == ("safari", "Mac OS", "DE", "Berlin")
    assert first["last_at"] == datetime(2026, 11, 27, 15, 46, 32, 632000, tzinfo=UTC)
    assert first["last_at"].tzinfo is UTC
    assert (first["visits"], first["views"], first["events"]) == (1, 1, 1)


def test_session_detail_counts_sent_as_strings_become_ints(umami_fixtures: Path) -> None:
    detail = _load(umami_fixtures, "api_session_detail.json")
    assert isinstance(detail["views"], str)

    session = UmamiSession.model_validate({**detail, "hostname": None, "createdAt": detail["lastAt"]})

    assert (session.visits, session.views, session.events) == (1, 1, 0)


def test_nullable_columns_accept_null(umami_fixtures: Path) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]
    nullable = ("hostname", "browser", "os", "device", "screen", "language", "country", "region", "city")

    session = UmamiSession.model_validate({**row, **dict.fromkeys(nullable)})

    assert all(getattr(session, name) is None for name in nullable)


def test_offset_times_are_converted_to_utc(umami_fixtures: Path) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]

    session = UmamiSession.model_validate({**row, "firstAt": "2026-11-27T17:46:32+02:00"})

    assert session.first_at == datetime(2026, 11, 27, 15, 46, 32, tzinfo=UTC)
    assert session.first_at.tzinfo is UTC


def test_malformed_rows_become_short_invalid_rows_and_keep_the_rest(umami_fixtures: Path) -> None:
    good, other = _load(umami_fixtures, "api_sessions_p1.json")["data"]
    secret_looking = "x" * 500
    rows: list[Any] = [
        good,
        {**other, "lastAt": secret_looking},  # not a time
        {**good, "id": "not-a-uuid"},
        {**good, "id": "0f5bd9f3-50a4-4f23-9f28-2fd2c1b1e0aa", "visits": -1,
         "firstAt": "2026-11-27T15:46:32"},  # negative count, naive time
        "not an object",
    ]

    valid, invalid = validate_sessions(rows)

    assert [s["id"] for s in valid] == [good["id"]]
    assert [row.session_id for row in invalid] == [other["id"], "not-a-uuid",
                                                   "0f5bd9f3-50a4-4f23-9f28-2fd2c1b1e0aa", None]
    assert invalid[0].error.startswith("lastAt:")
    assert invalid[2].error.count(":") >= 2  # both bad fields are named
    assert all(len(row.error) <= 200 and secret_looking not in row.error for row in invalid)
    assert isinstance(invalid[3], InvalidRow)
    assert [type(row).__name__ for row in validate_session_rows(rows)] == [
        "dict", "InvalidRow", "InvalidRow", "InvalidRow", "InvalidRow"]  # in the page's order


def test_strings_longer_than_umamis_columns_make_a_row_invalid(umami_fixtures: Path) -> None:
    """A real server cannot return more than its varchar column holds (city is varchar(50)): a 2 MB city is
    not Umami's data and never reaches a user."""
    good = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]
    rows = [{**good, "city": "C" * 2_000_000}, {**good, "browser": "b" * 41}, {**good, "city": "C" * 100}]

    valid, invalid = validate_sessions(rows)

    assert [row["city"] for row in valid] == ["C" * 100]  # within the column size times the headroom
    assert [row.error.split(":")[0] for row in invalid] == ["city", "browser"]
    assert [(row.session_id, row.hostname) for row in invalid] == [(good["id"], good["hostname"])] * 2


@pytest.mark.parametrize("capture", ["api_session_activity.json", "listing_activity_two_hostnames.json"])
def test_activity_events_of_the_real_server_validate(umami_fixtures: Path, capture: str) -> None:
    events = [ActivityEvent.model_validate(event) for event in _load(umami_fixtures, capture)]

    assert events
    assert [event.created_at for event in events] == sorted((e.created_at for e in events), reverse=True)
    assert all(event.event_type == 1 and event.created_at.tzinfo is UTC for event in events)


def test_website_rows_and_envelope(umami_fixtures: Path) -> None:
    body = _load(umami_fixtures, "api_websites.json")

    envelope = UmamiPageEnvelope.model_validate(body)
    website = UmamiWebsite.model_validate(envelope.data[0])

    assert (envelope.count, envelope.page, envelope.page_size) == (1, 1, 10)
    assert (website.id, website.name, website.domain) == (
        "266abb41-957e-4dd3-8229-6a601f80a9db", "Probe Site", "probe.example.com")
    assert website.deleted_at is None
    assert website.created_at == datetime(2026, 11, 27, 15, 46, 22, 751000, tzinfo=UTC)
    deleted = UmamiWebsite.model_validate({**envelope.data[0], "deletedAt": "2026-11-28T00:00:00.000Z"})
    assert deleted.deleted_at == datetime(2026, 11, 28, tzinfo=UTC)


def test_envelope_keeps_malformed_rows_for_row_by_row_validation(umami_fixtures: Path) -> None:
    body = _load(umami_fixtures, "api_sessions_p2.json")

    envelope = UmamiPageEnvelope.model_validate({**body, "data": [*body["data"], 42], "count": "3"})

    assert envelope.count == 3
    assert envelope.data[-1] == 42


def test_login_token_is_hidden_in_reprs(umami_fixtures: Path) -> None:
    body = _load(umami_fixtures, "login.json")

    login = LoginResponse.model_validate(body)

    assert login.token.get_secret_value() == body["token"]
    assert body["token"] not in repr(login)
    assert body["token"] not in str(login.model_dump())
    assert (login.user.username, login.user.is_admin) == ("admin", True)


@pytest.mark.parametrize("field", ["id", "firstAt", "visits"])
def test_missing_required_field_is_invalid(umami_fixtures: Path, field: str) -> None:
    row = dict(_load(umami_fixtures, "api_sessions_p1.json")["data"][0])
    del row[field]

    valid, invalid = validate_sessions([row])

    assert valid == []
    assert len(invalid) == 1
    assert invalid[0].error.startswith(f"{field}:")


def test_a_row_of_umami_2x_is_valid_and_fields_the_sync_does_not_use_never_invalidate(umami_fixtures: Path) -> None:
    """Umami 2.18-2.20 send no ``hostname`` and no ``events``; ``createdAt`` is not read at all."""
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]
    v2 = {key: value for key, value in row.items() if key not in {"hostname", "events"}}

    valid, invalid = validate_sessions([{**v2, "createdAt": "not a time", "orderBy": {"odd": True}}])

    assert invalid == []
    assert (valid[0]["hostname"], valid[0]["events"], valid[0]["views"], beacons_only(valid[0])) == (None, None, 1,
                                                                                                  False)


@pytest.mark.parametrize(("hostname", "views", "events", "beacons"), [
    (None, 0, 0, True),  # Umami 3.1: a session's performance beacons, listed as a row of their own
    (None, 0, None, False),  # Umami 2.x: a session with custom events only (2.x sends no hostname, no events)
    (None, 0, 1, False), ("a.example.com", 0, 0, False), (None, 1, 0, False)])
def test_a_row_of_performance_beacons_only_is_recognised(umami_fixtures: Path, hostname: str | None, views: int,
                                                        events: int | None, beacons: bool) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]

    session = UmamiSession.model_validate({**row, "hostname": hostname, "views": views, "events": events})

    assert beacons_only(session.row()) is beacons


def test_an_activity_event_of_umami_2x_carries_id() -> None:
    event_id = "4b1e2a4c-2f5e-4a38-9d5e-7e0b6f0f8a11"
    stored = {"id": event_id, "websiteId": "266abb41-957e-4dd3-8229-6a601f80a9db", "createdAt":
              "2026-11-27T15:46:32.531Z", "urlPath": "/", "eventType": 1, "visitId": event_id, "hostname": None}

    assert ActivityEvent.model_validate(stored).event_id == event_id


def test_an_invalid_row_names_the_fields_that_failed(umami_fixtures: Path) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]

    _, invalid = validate_sessions([{**row, "visits": "many", "lastAt": None}, "not an object"])

    assert [entry.fields for entry in invalid] == [("lastAt", "visits"), ("row",)]


@pytest.mark.parametrize("written", ["6E0E58D6-3C4A-4C55-9A4C-4D5C2D6F1A11", "{6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a11}",
                                     "6e0e58d63c4a4c559a4c4d5c2d6f1a11", "6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a11"])
def test_ids_in_any_form_python_reads_as_a_uuid_become_postgresqls_text_form(umami_fixtures: Path,
                                                                             written: str) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]

    session = UmamiSession.model_validate({**row, "id": written, "websiteId": written})

    assert session.id == session.website_id == "6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a11"


@pytest.mark.parametrize("written", ["6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a1", "6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a11\n",
                                     "6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a1g"])
def test_an_id_that_is_not_a_uuid_makes_its_row_invalid(umami_fixtures: Path, written: str) -> None:
    row = _load(umami_fixtures, "api_sessions_p1.json")["data"][0]

    _, invalid = validate_sessions([{**row, "id": written}])

    assert [row.fields for row in invalid] == [("id",)]


# --- a page validated whole, from its body --------------------------------------------------------------------------

def _body(page: dict[str, Any]) -> bytes:
    return json.dumps(page).encode()


def test_a_page_of_the_real_server_is_validated_whole_into_the_rows_row_by_row_validation_gives(
        umami_fixtures: Path) -> None:
    for name in ("api_sessions_p1.json", "api_sessions_p2.json"):
        body = (umami_fixtures / name).read_bytes()

        whole = session_page_rows(body)

        page = _load(umami_fixtures, name)
        assert whole == (page["count"], validate_session_rows(page["data"]))


@pytest.mark.parametrize("change", [
    {"visits": -1},  # malformed: the page is validated row by row, so that the row is counted and named
    {"city": "C" * 101},
    {"id": "6E0E58D6-3C4A-4C55-9A4C-4D5C2D6F1A11"},  # an id in another form: row by row, where it is converted
    {"lastAt": "2026-11-27T17:46:32.632+02:00"},  # a time with an offset: row by row, where it becomes UTC
    {"lastAt": "2026-11-27T15:46:32.632"},  # naive: malformed
])
def test_a_page_with_a_row_not_in_the_form_umami_sends_is_left_to_row_by_row_validation(
        umami_fixtures: Path, change: dict[str, Any]) -> None:
    page = _load(umami_fixtures, "api_sessions_p1.json")
    page["data"][1].update(change)

    assert session_page_rows(_body(page)) is None


@pytest.mark.parametrize("body", [b"not json", b'{"data": "rows", "count": 1}', b'{"data": [], "count": -1}', b"[]"])
def test_a_body_that_is_no_page_is_left_to_the_envelope_and_its_errors(body: bytes) -> None:
    assert session_page_rows(body) is None


def test_a_capped_page_validated_whole_is_refused_as_the_envelope_refuses_it(umami_fixtures: Path) -> None:
    page = {**_load(umami_fixtures, "api_sessions_p1.json"), "isCapped": True, "count": 10_000}

    with pytest.raises(CappedListError) as whole:
        session_page_rows(_body(page))
    with pytest.raises(CappedListError) as envelope:
        UmamiPageEnvelope.model_validate(page)

    assert str(whole.value) == str(envelope.value)
    assert session_page_rows(_body({**page, "isCapped": False})) is not None


def test_a_page_of_umami_2x_is_validated_whole_with_what_it_does_not_send_left_empty(umami_fixtures: Path) -> None:
    page = _load(umami_fixtures, "api_sessions_p1.json")
    page["data"] = [{key: value for key, value in row.items() if key not in {"hostname", "events"}}
                    for row in page["data"]]

    whole = session_page_rows(_body(page))

    assert whole is not None
    assert whole[1] == validate_session_rows(page["data"])
    assert all(row["hostname"] is None and row["events"] is None for row in whole[1])
