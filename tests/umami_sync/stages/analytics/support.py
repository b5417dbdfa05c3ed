"""What the stage-2 tests share: the day they sync, and how they read the truth from Umami's events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tests.factories import WEBSITE, UmamiRows, add_user, at
from umami_sync.stages.analytics.jobs import AnalyticsJob
from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from pymongo.database import Database

DAY = DataInterval(at(0), at(0, day=28))
RUN_AT = datetime(2026, 11, 28, 1, tzinfo=UTC)
FAST = {"http_max_retries": 3, "http_timeout_seconds": 5}


def job(interval: DataInterval = DAY, website_id: str = WEBSITE) -> AnalyticsJob:
    return AnalyticsJob(website_id=website_id, window_start=interval.start, window_end=interval.end)


def user(db: Database, email: str) -> dict[str, Any]:
    found = db["users"].find_one({"email": email})
    assert found is not None
    return found


def visitor(rows: UmamiRows, db: Database, email: str, *, hours: tuple[int, ...] = (9,), day: int = 27,
            **user_fields: Any) -> str:
    """A user, their identified session and its page views."""
    add_user(db["users"], email, **user_fields)
    session = rows.session(at(hours[0], day=day), distinct_id=email)
    for hour in hours:
        rows.event(session, at(hour, day=day))
    return session


def truth(dsn: str, website_id: str, interval: DataInterval) -> dict[str, tuple[Any, ...]]:
    """Each session's (firstAt, lastAt, views, visits) in ``interval``, from Umami's events themselves (performance
    beacons, ``event_type`` 5, are not activity)."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "select session_id::text, min(created_at), max(created_at), sum((event_type = 1)::int),"
            " count(distinct visit_id) from website_event where website_id = %s and created_at >= %s"
            " and created_at < %s and event_type <> 5 group by session_id",
            (website_id, interval.start, interval.end)).fetchall()
    return {row[0]: (row[1].replace(tzinfo=None), row[2].replace(tzinfo=None), row[3], row[4]) for row in found}


def written(db: Database) -> dict[str, tuple[Any, ...]]:
    """What the users hold, as (firstAt, lastAt, views, visits) per session."""
    return {a["id"]: (a["firstAt"], a["lastAt"], a["views"], a["visits"])
            for a in (u.get("umamiAnalytics") for u in db["users"].find()) if a}
