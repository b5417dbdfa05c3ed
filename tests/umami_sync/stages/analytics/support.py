"""What the stage-2 tests share: the day they sync, and how they read the truth from Umami's events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
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


def truth_documents(dsn: str, website_id: str, interval: DataInterval) -> dict[str, dict[str, Any]]:
    """The whole ``umamiAnalytics`` each session of ``interval`` should get, every field from Umami's database: the
    session's attributes and the figures of its own events (no beacons, from the website's reset on)."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "select s.session_id::text, s.website_id::text, s.browser, s.os, s.device, s.screen, s.language,"
            " s.country, s.region, s.city, date_trunc('milliseconds', min(e.created_at)),"
            " date_trunc('milliseconds', max(e.created_at)), count(distinct e.visit_id), sum((e.event_type = 1)::int)"
            " from website_event e join session s on s.session_id = e.session_id join website w on"
            " w.website_id = e.website_id where e.website_id = %s and e.created_at >= %s and e.created_at < %s"
            " and e.event_type <> 5 and (w.reset_at is null or e.created_at >= w.reset_at)"
            " group by s.session_id, s.website_id, s.browser, s.os, s.device, s.screen, s.language, s.country,"
            " s.region, s.city", (website_id, interval.start, interval.end)).fetchall()
    names = ("id", "websiteId", "browser", "os", "device", "screen", "language", "country", "region", "city",
             "firstAt", "lastAt", "visits", "views")
    documents = {}
    for row in found:
        document = dict(zip(names, row, strict=True))
        document["firstAt"], document["lastAt"] = (document[name].replace(tzinfo=None) for name in ("firstAt",
                                                                                                   "lastAt"))
        documents[row[0]] = {**document, "createdAt": document["lastAt"]}
    return documents


def written_documents(db: Database) -> dict[str, dict[str, Any]]:
    """Every ``umamiAnalytics`` the users hold, whole, by session."""
    return {a["id"]: a for a in (u.get("umamiAnalytics") for u in db["users"].find()) if a}


def linked_person(rows: UmamiRows, db: Database, n: int, *, hours: tuple[int, ...] = (9, 10)) -> dict[str, str]:
    """A user and three sessions Umami 3.3 links to them (identify with an id): ``today``, 5 page views in two visits
    on two hostnames at ``hours`` of the 27th; ``before``, 6 page views on the 24th; ``after``, 6 page views 20 days
    later (December 17th). What today's code read from the activity of ``today``: firstAt 3 days early, lastAt
    20 days late, views 5 -> 17."""
    email = f"pat{n}@example.com"
    add_user(db["users"], email)
    sessions = {}
    for name, day in (("before", at(hours[0], n, day=24)), ("today", at(hours[0], n)),
                      ("after", at(hours[0], n) + timedelta(days=20))):
        sessions[name] = rows.session(day)
        rows.identify(sessions[name], email, day)
    morning, evening = str(uuid.uuid4()), str(uuid.uuid4())
    for k, (hour, hostname, visit) in enumerate([(hours[0], "a.example.com", morning), (hours[0], "b.example.com",
                                                  morning), (hours[-1], "a.example.com", evening),
                                                 (hours[-1], "b.example.com", evening), (hours[-1], "a.example.com",
                                                                                         evening)]):
        rows.event(sessions["today"], at(hour, n) + timedelta(seconds=k), visit_id=visit, hostname=hostname)
    for name, delta in (("before", timedelta(days=-3)), ("after", timedelta(days=20))):
        for k in range(6):
            rows.event(sessions[name], at(hours[0], n) + delta + timedelta(minutes=k))
    return sessions
