"""Pydantic models of what Umami's REST API (3.1) returns, and row-by-row validation of list pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    SecretStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

_MAX_ERROR_CHARS = 200
_MAX_ERRORS_SHOWN = 3


def _canonical_uuid(value: str) -> str:
    """Umami ids are uuids: keep them in PostgreSQL's lower-case text form."""
    return str(uuid.UUID(value))


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UmamiId = Annotated[str, AfterValidator(_canonical_uuid)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class _UmamiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class UmamiSession(_UmamiModel):
    """One row of ``GET /api/websites/{id}/sessions``; counts and times cover only the requested range."""

    id: UmamiId
    website_id: UmamiId
    hostname: str | None = None
    browser: str | None = None
    os: str | None = None
    device: str | None = None
    screen: str | None = None
    language: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    first_at: UtcDatetime
    last_at: UtcDatetime
    visits: NonNegativeInt
    views: NonNegativeInt
    events: NonNegativeInt
    created_at: UtcDatetime = Field(description="Umami sends the last event time in the range here.")


class UmamiWebsite(_UmamiModel):
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


class UmamiPageEnvelope(_UmamiModel):
    """The paged envelope ``{data, count, page, pageSize}``; rows stay raw and are validated one by one."""

    data: list[Any]
    count: NonNegativeInt
    page: int
    page_size: int


class UmamiUser(_UmamiModel):
    """The user part of the login response."""

    id: UmamiId
    username: str
    role: str | None = None
    is_admin: bool = False


class LoginResponse(_UmamiModel):
    """``POST /api/auth/login`` answer; the token is a ``SecretStr`` so it never shows in reprs."""

    token: SecretStr
    user: UmamiUser


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A list row that failed validation: its id when one could be read, and a short reason."""

    session_id: str | None
    error: str


def _short_error(exc: ValidationError) -> str:
    """Field locations and messages only: the offending input values are left out."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(str(loc) for loc in err['loc']) or 'row'}: {err['msg']}" for err in errors]
    shown = "; ".join(parts[:_MAX_ERRORS_SHOWN])
    if len(parts) > _MAX_ERRORS_SHOWN:
        shown += f" (+{len(parts) - _MAX_ERRORS_SHOWN} more)"
    return shown[:_MAX_ERROR_CHARS]


def _row_id(row: Any) -> str | None:
    row_id = row.get("id") if isinstance(row, dict) else None
    return row_id[:64] if isinstance(row_id, str) else None


def validate_sessions(rows: list[Any]) -> tuple[list[UmamiSession], list[InvalidRow]]:
    """Validate session rows one by one, so a malformed row cannot sink the rest of its page."""
    valid: list[UmamiSession] = []
    invalid: list[InvalidRow] = []
    for row in rows:
        try:
            valid.append(UmamiSession.model_validate(row))
        except ValidationError as exc:
            invalid.append(InvalidRow(session_id=_row_id(row), error=_short_error(exc)))
    return valid, invalid
