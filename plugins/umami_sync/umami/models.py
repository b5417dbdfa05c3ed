"""Pydantic models of what Umami's REST API returns (2.18 to 3.3+), and the validation of session list pages.

Each model declares only the fields the sync uses, so a field it does not use never makes a row invalid. A page of
the session list is validated whole, from its raw body, into plain rows (:class:`SessionRow`,
:func:`session_page_rows`); a page that does not pass so is validated row by row (:func:`validate_session_rows`),
so that a malformed row cannot sink the rest of its page.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar, cast

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    NonNegativeInt,
    SecretStr,
    ValidationError,
    model_validator,
    with_config,
)
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema
from typing_extensions import TypedDict  # pydantic reads TypedDicts of typing_extensions only, before Python 3.12

from umami_sync.umami.errors import UmamiError

_Row = TypeVar("_Row")
_MAX_ERROR_CHARS = 200
_MAX_ERRORS_SHOWN = 3


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_uuid(value: str) -> str:
    """Umami ids are uuids: keep them in PostgreSQL's lower-case text form. What PostgreSQL sends is in that
    form already and is kept as it is (a match costs a tenth of building a ``uuid.UUID``: two per list row)."""
    return value if _CANONICAL_UUID.fullmatch(value) else str(uuid.UUID(value))


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


BEACON = 5
"""``event_type`` of a performance beacon (web vitals, Umami 3.1+): never activity."""

UmamiId = Annotated[str, AfterValidator(_canonical_uuid)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
CanonicalId = Annotated[str, Field(pattern=f"^{_CANONICAL_UUID.pattern}$")]
"""An id already in PostgreSQL's text form, as Umami sends it (checked in pydantic-core: no Python call)."""
UtcTime = Annotated[datetime, GetPydanticSchema(lambda _type, _handler: core_schema.datetime_schema(tz_constraint=0))]
"""A time with a UTC offset of 0, as Umami sends it (``...Z``; checked in pydantic-core: no Python call)."""

_HEADROOM = 2
"""How much longer than Umami's column a string may be: a real server cannot return more than its column
holds, so a longer value is not Umami's data and its row is refused (counted invalid, never written)."""


# Umami's column sizes (session and website_event, prisma/schema.prisma in 3.1), times the headroom.
Varchar20 = Annotated[str | None, Field(max_length=20 * _HEADROOM)]  # browser, os, device, region
Screen = Annotated[str | None, Field(max_length=11 * _HEADROOM)]
Language = Annotated[str | None, Field(max_length=35 * _HEADROOM)]
Country = Annotated[str | None, Field(max_length=2 * _HEADROOM)]
City = Annotated[str | None, Field(max_length=50 * _HEADROOM)]
Hostname = Annotated[str | None, Field(max_length=100 * _HEADROOM)]


class UmamiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class UmamiSession(UmamiModel):
    """One row of ``GET /api/websites/{id}/sessions``: one session on one hostname.

    Umami 3.x groups the list by session AND hostname, so a session with hits on two hostnames is two rows;
    counts and times cover only that hostname's events inside the requested range. Umami 2.x lists one row per
    session, without ``hostname`` and ``events``. Umami 3.1 and 3.2 list a session's performance beacons
    (``event_type`` 5, no hostname) as a row of their own: :func:`beacons_only`.

    The row-by-row validation of a page (:func:`validate_session_rows`): ids in any form Python reads as a uuid,
    times with any offset (converted to UTC). The sync then holds the row as plain data (:meth:`row`).
    """

    id: UmamiId
    website_id: UmamiId
    hostname: Hostname = None
    browser: Varchar20 = None
    os: Varchar20 = None
    device: Varchar20 = None
    screen: Screen = None
    language: Language = None
    country: Country = None
    region: Varchar20 = None
    city: City = None
    first_at: UtcDatetime
    last_at: UtcDatetime
    visits: NonNegativeInt
    views: NonNegativeInt
    events: NonNegativeInt | None = Field(None, description="Custom events; Umami 2.x does not send it.")

    def row(self) -> SessionRow:
        """The row as plain data."""
        return cast("SessionRow", self.model_dump())


@with_config(ConfigDict(alias_generator=to_camel, validate_by_name=True))
class SessionRow(TypedDict):
    """A row of the session list as plain data (a dict, snake_case keys): the fields of :class:`UmamiSession`.

    Validated a page at a time from the raw body (:func:`session_page_rows`) in the form Umami sends: ids in
    PostgreSQL's text form, times in UTC. A row in another form (an id in capitals, a time with an offset) is
    validated by :class:`UmamiSession`, which converts it, and whose times are then in ``datetime.UTC``; those of
    a page validated whole carry pydantic's own UTC (offset 0, equal times).
    """

    id: CanonicalId
    website_id: CanonicalId
    hostname: Annotated[Hostname, Field(default=None)]
    browser: Annotated[Varchar20, Field(default=None)]
    os: Annotated[Varchar20, Field(default=None)]
    device: Annotated[Varchar20, Field(default=None)]
    screen: Annotated[Screen, Field(default=None)]
    language: Annotated[Language, Field(default=None)]
    country: Annotated[Country, Field(default=None)]
    region: Annotated[Varchar20, Field(default=None)]
    city: Annotated[City, Field(default=None)]
    first_at: UtcTime
    last_at: UtcTime
    visits: NonNegativeInt
    views: NonNegativeInt
    events: Annotated[NonNegativeInt | None, Field(default=None)]


def beacons_only(row: SessionRow) -> bool:
    """Whether the row holds performance beacons only: no hostname, no page view and no custom event (a row Umami
    3.1 lists beside the session's real ones; newer Umami leaves beacons out of the list)."""
    return row["hostname"] is None and row["views"] == 0 and row["events"] == 0


class ActivityEvent(UmamiModel):
    """One event of ``GET .../sessions/{sessionId}/activity`` (newest first, at most 500 per call); Umami 2.x
    sends the whole stored event, with ``id`` where 3.x sends ``eventId``, and its ``sessionId`` (3.x sends none:
    its newer route may answer other sessions' events among the asked one's, see
    :class:`~umami_sync.stages.analytics.reads.SessionEvents`)."""

    created_at: UtcDatetime
    event_id: UmamiId = Field(validation_alias=AliasChoices("eventId", "id"))
    event_type: int
    visit_id: UmamiId
    hostname: Hostname = None
    session_id: UmamiId | None = None


class UmamiWebsite(UmamiModel):
    """One row of ``GET /api/websites``; ``deleted_at`` is set on soft-deleted websites."""

    id: UmamiId
    name: str
    domain: str | None = None
    user_id: UmamiId | None = None
    team_id: UmamiId | None = None
    reset_at: UtcDatetime | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    deleted_at: UtcDatetime | None = None


class CappedListError(UmamiError):
    """A page of a list said ``isCapped``: its ``count`` stops at a cap, so the list cannot be proven complete."""

    @classmethod
    def at(cls, count: int) -> CappedListError:
        """The error of a page whose count stops at ``count``."""
        return cls(f"Umami answered a capped page (isCapped: its count stops at {count:,} rows), so the list holds "
                   "at least that many rows and cannot be proven complete. The sync never asks for a cap (maxResults): "
                   "let the list through whole, or set sub_windows to enough parts per website that each part's list "
                   "stays below the cap")


class UmamiPageEnvelope(UmamiModel, Generic[_Row]):
    """The paged envelope ``{data, count, page, pageSize}``; its rows stay raw (and are validated one by one), or are
    validated as ``_Row`` (``UmamiPageEnvelope[SessionRow]``).

    A capped page is never taken as the whole list. Umami's newer ``pagedRawQuery`` (``src/lib/prisma.ts`` after
    3.3; ``prisma.test.ts`` at 17f0c4a4) counts at most ``maxResults`` rows when a request asks for a cap (the UI asks
    for 10,000) and then answers ``isCapped: true`` with ``count`` at the cap. The sync never asks for one, so a capped
    page comes from a server or proxy that caps on its own: :class:`CappedListError` is raised out of validation
    (it is no ``ValidationError``, so no caller takes the page for a malformed one), naming the cap.
    """

    model_config = ConfigDict(cache_strings="keys")  # the values are mostly ids: a cache of them would only hold memory

    data: list[_Row]
    count: NonNegativeInt
    page: int
    page_size: int
    is_capped: bool = False

    @model_validator(mode="after")
    def _not_capped(self) -> Self:
        if self.is_capped:
            raise CappedListError.at(self.count)
        return self


_SESSION_PAGE = UmamiPageEnvelope[SessionRow]
"""A session list page whose every row is valid in the form Umami sends (see :class:`SessionRow`)."""


class UmamiUser(UmamiModel):
    """The user part of the login response."""

    id: UmamiId
    username: str
    role: str | None = None
    is_admin: bool = False


class LoginResponse(UmamiModel):
    """``POST /api/auth/login`` answer; the token is a ``SecretStr`` so it never shows in reprs.

    On an account with two-factor authentication, Umami 3.4 answers 200 with ``{requiresTwoFactor: true,
    partialToken}`` instead (``src/app/api/auth/login/contract.ts`` at ec0ff503): :meth:`asks_for_two_factor`
    tells, and no model keeps that partial token.
    """

    token: SecretStr
    user: UmamiUser

    @staticmethod
    def asks_for_two_factor(body: Any) -> bool:
        """Whether ``body`` is the answer of a two-factor account (a second step the sync cannot take)."""
        return isinstance(body, dict) and body.get("requiresTwoFactor") is True


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A list row that failed validation: its id and hostname when they could be read, a short reason, and the
    fields that failed (``row`` for a row that is not an object)."""

    session_id: str | None
    hostname: str | None
    error: str
    fields: tuple[str, ...]


def _failed_fields(exc: ValidationError) -> tuple[str, ...]:
    """The fields that failed, by their names on the wire (``row`` for the row itself)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return tuple(".".join(str(loc) for loc in err["loc"]) or "row" for err in errors)


def _short_error(exc: ValidationError) -> str:
    """Field locations and messages only: the offending input values are left out."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{field}: {err['msg']}" for field, err in zip(_failed_fields(exc), errors, strict=True)]
    shown = "; ".join(parts[:_MAX_ERRORS_SHOWN])
    if len(parts) > _MAX_ERRORS_SHOWN:
        shown += f" (+{len(parts) - _MAX_ERRORS_SHOWN} more)"
    return shown[:_MAX_ERROR_CHARS]


def _text(row: Any, key: str) -> str | None:
    value = row.get(key) if isinstance(row, dict) else None
    return value[:100] if isinstance(value, str) else None


def session_page_rows(body: bytes) -> tuple[int, list[SessionRow]] | None:
    """The ``count`` and the rows of a session list page, from its raw body in one call when every row is valid in
    the form Umami sends; None when the page must be validated row by row (:class:`UmamiPageEnvelope`, then
    :func:`validate_session_rows`): a malformed row, an id or a time in another form, a body that is no page.

    :raises CappedListError: the page says ``isCapped``.
    """
    try:
        page = _SESSION_PAGE.model_validate_json(body)
    except ValidationError:
        return None
    return page.count, page.data


def validate_session_rows(rows: list[Any]) -> list[SessionRow | InvalidRow]:
    """Validate list rows one by one, in order, so a malformed row cannot sink the rest of its page."""
    validated: list[SessionRow | InvalidRow] = []
    for row in rows:
        try:
            validated.append(UmamiSession.model_validate(row).row())
        except ValidationError as exc:
            validated.append(InvalidRow(_text(row, "id"), _text(row, "hostname"), _short_error(exc),
                                        _failed_fields(exc)))
    return validated
