"""Guarded update operations on user documents, built as plain data (no I/O).

Every operation:
- addresses one user by ``_id`` (found beforehand, see :mod:`umami_sync.users.store`), matches only
  while the user is not deleted (``isDeleted`` is not ``true``), and never upserts;
- touches only our fields (``session_id``, ``umamiSessions``, ``umamiAnalytics``) and ``updatedAt``;
- is an aggregation-pipeline update whose result depends only on the document and the new data, so
  running it twice changes nothing the second time, and older data never replaces newer data;
- moves ``updatedAt`` only when one of our fields really changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from umami_sync.umami.models import UmamiSession

NOT_DELETED = {"isDeleted": {"$ne": True}}


@dataclass(frozen=True)
class KnownSession:
    """A session a user was identified in."""

    id: str
    website_id: str
    seen_at: datetime

    def as_document(self) -> dict[str, Any]:
        """The sub-document kept in ``umamiSessions``."""
        return {"id": self.id, "websiteId": self.website_id, "seenAt": self.seen_at}


@dataclass(frozen=True)
class UserUpdate:
    """One update of at most one user, ready for ``bulk_write``."""

    filter: dict[str, Any]
    pipeline: list[dict[str, Any]]


def _unless_unchanged(old: Any, new: Any, now: datetime) -> dict[str, Any]:
    return {"$cond": [{"$eq": [old, new]}, "$updatedAt", now]}


def identity_update(user_id: Any, sessions: list[KnownSession], *, keep: int, now: datetime) -> UserUpdate:
    """Record ``sessions`` (newest first) on one user.

    ``umamiSessions`` keeps the ``keep`` most recent sessions, newest first; a session already known
    keeps its first record. ``session_id`` is the most recent of them. A ``session_id`` written before
    this sync kept a list (by the original tool) stays known, ranked after every dated session.
    """
    old = {"$ifNull": ["$umamiSessions", []]}
    old_ids = {"$map": {"input": old, "in": "$$this.id"}}
    fresh = {"$filter": {"input": [s.as_document() for s in sessions],
                         "cond": {"$not": [{"$in": ["$$this.id", old_ids]}]}}}
    legacy = {"$cond": [
        {"$and": [{"$eq": [{"$type": "$session_id"}, "string"]}, {"$not": [{"$in": ["$session_id", old_ids]}]}]},
        [{"id": "$session_id", "websiteId": None, "seenAt": None}],
        [],
    ]}
    merged = {"$slice": [
        {"$sortArray": {"input": {"$concatArrays": [fresh, old, legacy]}, "sortBy": {"seenAt": -1, "id": 1}}},
        keep,
    ]}
    newest = {"$let": {"vars": {"top": {"$arrayElemAt": ["$umamiSessions", 0]}}, "in": "$$top.id"}}
    return UserUpdate(
        filter={"_id": user_id, **NOT_DELETED},
        pipeline=[
            {"$set": {"umamiSessions": merged, "updatedAt": _unless_unchanged(old, merged, now)}},
            {"$set": {"session_id": newest}},
        ],
    )


def analytics_document(session: UmamiSession) -> dict[str, Any]:
    """The ``umamiAnalytics`` sub-document of one Umami session (BSON dates, integer counts)."""
    return {
        "id": session.id,
        "websiteId": session.website_id,
        "browser": session.browser,
        "os": session.os,
        "device": session.device,
        "screen": session.screen,
        "language": session.language,
        "country": session.country,
        "region": session.region,
        "city": session.city,
        "firstAt": session.first_at,
        "lastAt": session.last_at,
        "visits": session.visits,
        "views": session.views,
        "createdAt": session.created_at,
    }


def analytics_update(user_id: Any, session: UmamiSession, *, now: datetime) -> UserUpdate:
    """Set ``umamiAnalytics`` of one user from ``session`` unless the user holds newer analytics.

    Newer means a later ``lastAt``; on an equal ``lastAt`` the same session's figures are refreshed.
    """
    new = analytics_document(session)
    current = "$umamiAnalytics"
    newer = {"$or": [
        {"$not": [{"$eq": [{"$type": "$umamiAnalytics.lastAt"}, "date"]}]},
        {"$gt": [new["lastAt"], "$umamiAnalytics.lastAt"]},
        {"$and": [{"$eq": [new["lastAt"], "$umamiAnalytics.lastAt"]}, {"$eq": [new["id"], "$umamiAnalytics.id"]}]},
    ]}
    chosen = {"$cond": [newer, {"$literal": new}, current]}
    return UserUpdate(
        filter={"_id": user_id, **NOT_DELETED},
        pipeline=[{"$set": {"umamiAnalytics": chosen, "updatedAt": _unless_unchanged(current, chosen, now)}}],
    )
