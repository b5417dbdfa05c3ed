"""One place where an identity appeared, as both of stage 1's sources hand it on (Umami's database and its API)."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 -- pydantic reads IdentityRow's annotations when it validates rows
from typing import Literal, NamedTuple


class IdentityRow(NamedTuple):
    """One place where an identity appeared: a session's distinct_id, a session_link row or a session_data
    value.

    Plain data: the rows of Umami's database are validated by pydantic a fetch at a time (``umami.db.IDENTITY_ROWS``,
    one call per few thousand rows where a model per row cost as much again as reading them); another source
    builds them from what it validated itself. A module of its own, so that the API's source does not load the
    database driver."""

    identity: str | None
    session_id: str
    website_id: str
    seen_at: datetime
    source: Literal["distinct_id", "session_link", "session_data"]
