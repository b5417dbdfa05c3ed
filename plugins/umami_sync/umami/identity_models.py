"""Pydantic models of the API answers identities are read from when there is no database (Umami Cloud): a
session's detail and properties, a website's session-data keys and its session stats.

Shapes as Umami 3.1.0 answers them (``src/queries/sql/sessions/getWebsiteSession.ts``, ``getSessionData.ts``,
``getSessionDataProperties.ts``, ``getWebsiteSessionStats.ts``); each model declares only the fields the sync
uses, so a field it does not use never makes an answer invalid.
"""

from __future__ import annotations

from pydantic import NonNegativeInt

from umami_sync.umami.models import UmamiId, UmamiModel, UtcDatetime


class SessionDetail(UmamiModel):
    """``GET .../sessions/{sessionId}``: the session's ``distinct_id`` and its first event ever (``firstAt``: the
    query joins ``website_event`` with no range, so a session without an event answers ``{}``)."""

    id: UmamiId
    distinct_id: str | None = None
    first_at: UtcDatetime


class SessionProperty(UmamiModel):
    """One ``session_data`` row of ``GET .../sessions/{sessionId}/properties`` (every row of the session, of any
    time). ``stringValue`` is ``replace(string_value, '.0000', '')``; ``createdAt`` is the row's time, to the
    millisecond."""

    data_key: str
    string_value: str | None = None
    created_at: UtcDatetime


class SessionDataKey(UmamiModel):
    """One row of ``GET .../session-data/properties?startAt&endAt``: a key, and how many sessions with an event in
    the range have a row of it (of any time). The answer holds the 500 keys with the most sessions."""

    property_name: str
    total: NonNegativeInt


class _Figure(UmamiModel):
    value: NonNegativeInt


class SessionStats(UmamiModel):
    """``GET .../sessions/stats?startAt&endAt``: ``visitors`` is how many sessions have an event in the range."""

    visitors: _Figure
