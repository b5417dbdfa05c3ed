"""What the sync writes on a user, decided in Python from the user's current fields (pure, no I/O).

The write path is the same on every MongoDB-compatible server (MongoDB, Atlas, Cosmos DB, DocumentDB):
the owner look-up reads our fields of each matched user, the functions below merge them with the new data,
and :mod:`umami_sync.users.store` writes a plain ``$set`` guarded by the scalar values it read
(compare-and-set; no aggregation-pipeline update, no ``$sortArray``). A user whose fields would not change
gets no write at all, so a re-run sends nothing. Every change:

- addresses one user by ``_id``, matches only while the user is not deleted, never upserts;
- touches only our fields (``session_id``, ``umamiSessions``, ``umamiAnalytics``) and ``updatedAt``;
- depends only on the stored fields and the new data, so running it twice changes nothing the second time,
  and older data never replaces newer data (newer meaning a later ``lastAt`` that its session's events bear out:
  a stored figure they disprove is replaced, see :func:`outranks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from umami_sync.windows import to_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Set

NOT_DELETED = {"isDeleted": {"$ne": True}}
Rank = tuple[datetime, str, float, int, int]
"""What :func:`outranks` compares of two analytics (see :attr:`Analytics.rank`)."""
ATTRIBUTES = ("browser", "os", "device", "screen", "language", "country", "region", "city")
"""A session's attributes in ``umamiAnalytics`` (Umami keeps one value of each per session)."""
_GUARDED = ("id", "lastAt", "firstAt", "views", "visits", *ATTRIBUTES)
ANALYTICS_GUARD = tuple(f"umamiAnalytics.{name}" for name in _GUARDED)
"""Scalars an analytics change is guarded by: what :func:`merged_analytics` compares (every write changes one)."""


@dataclass(frozen=True)
class KnownSession:
    """A session a user was identified in."""

    id: str
    website_id: str | None
    seen_at: datetime | None

    def as_document(self) -> dict[str, Any]:
        """The sub-document kept in ``umamiSessions``."""
        return {"id": self.id, "websiteId": self.website_id, "seenAt": self.seen_at}


class _Ranked:
    """Figures of one session that :func:`outranks` compares."""

    id: str
    first_at: datetime
    last_at: datetime
    visits: int
    views: int

    @property
    def rank(self) -> Rank:
        """What :func:`outranks` compares."""
        return self.last_at, self.id, -self.first_at.timestamp(), self.views, self.visits


@dataclass(frozen=True)
class Analytics(_Ranked):
    """The ``umamiAnalytics`` of one session in one window: its attributes and exact figures."""

    id: str
    website_id: str
    browser: str | None
    os: str | None
    device: str | None
    screen: str | None
    language: str | None
    country: str | None
    region: str | None
    city: str | None
    first_at: datetime
    last_at: datetime
    visits: int
    views: int

    def as_document(self) -> dict[str, Any]:
        """The sub-document (BSON dates, integer counts; ``createdAt`` is Umami's: the last event)."""
        return {"id": self.id, "websiteId": self.website_id, "browser": self.browser, "os": self.os,
                "device": self.device, "screen": self.screen, "language": self.language,
                "country": self.country, "region": self.region, "city": self.city,
                "firstAt": self.first_at, "lastAt": self.last_at, "visits": self.visits, "views": self.views,
                "createdAt": self.last_at}


@dataclass(frozen=True)
class StoredAnalytics(_Ranked):
    """What a stored ``umamiAnalytics`` says of its session: figures that the session's events must bear out."""

    id: str
    website_id: str | None
    first_at: datetime
    last_at: datetime
    visits: int
    views: int


@dataclass(frozen=True)
class Change:
    """One guarded ``$set`` on one user: ``guard``, filter conditions on scalars (by dotted path) that hold
    while the user is as the merge read it; our fields' new values; and ``redo``: the same merge again on the
    user as it is now (after another writer got there first), None when nothing is left to change."""

    user_id: Any
    guard: dict[str, Any]
    fields: dict[str, Any]
    redo: Callable[[Mapping[str, Any]], Change | None] = field(compare=False, repr=False)


def read_path(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``document``; None when absent (as a ``{path: None}`` filter)."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _utc(moment: Any) -> datetime | None:
    """A stored date as an aware UTC datetime (pymongo returns naive UTC); None for anything else."""
    return to_utc(moment) if isinstance(moment, datetime) else None


def _sort_key(entry: Mapping[str, Any]) -> tuple[int, float, str]:
    """Newest ``seenAt`` first, undated last, then by id (as the pipeline's ``$sortArray`` did)."""
    seen = _utc(entry.get("seenAt"))
    return (0, -seen.timestamp(), str(entry.get("id"))) if seen else (1, 0.0, str(entry.get("id")))


def _later(new: datetime | None, stored: Any) -> bool:
    """Whether ``new`` is a later identity time than ``stored``, in whole milliseconds (what a BSON date keeps)."""
    old = _utc(stored)
    return new is not None and (old is None or int(new.timestamp() * 1000) > int(old.timestamp() * 1000))


def merge_sessions(user: Mapping[str, Any], sessions: Iterable[KnownSession], *,
                   keep: int) -> dict[str, Any]:
    """``session_id`` and ``umamiSessions`` of ``user`` after learning ``sessions``.

    ``umamiSessions`` keeps the ``keep`` most recent sessions, newest first, each at its latest identity time:
    a known session identified again later moves up. ``session_id`` is the most recent of them. A
    ``session_id`` written before this sync kept a list (by the original tool) stays known, ranked after every
    dated session.
    """
    stored = user.get("umamiSessions")
    old = [entry for entry in stored if isinstance(entry, dict)] if isinstance(stored, list) else []
    merged = list(old)
    known: dict[Any, int] = {}
    for position, entry in enumerate(old):
        known.setdefault(entry.get("id"), position)
    for session in sessions:
        index = known.get(session.id)
        if index is None:
            known[session.id] = len(merged)
            merged.append(session.as_document())
        elif _later(session.seen_at, merged[index].get("seenAt")):
            merged[index] = session.as_document()
    legacy = user.get("session_id")
    if isinstance(legacy, str) and legacy not in known:
        merged.append(KnownSession(legacy, None, None).as_document())
    merged = sorted(merged, key=_sort_key)[:keep]
    return {"session_id": merged[0]["id"] if merged else legacy, "umamiSessions": merged}


def stored_analytics(stored: Any) -> StoredAnalytics | None:
    """What a stored ``umamiAnalytics`` says of its session; None for a missing or malformed one."""
    if not isinstance(stored, dict):
        return None
    last, first = _utc(stored.get("lastAt")), _utc(stored.get("firstAt"))
    views, visits, website = stored.get("views"), stored.get("visits"), stored.get("websiteId")
    if last is None or first is None or not isinstance(views, int) or not isinstance(visits, int):
        return None
    return StoredAnalytics(str(stored.get("id")), website if isinstance(website, str) else None, first, last, visits,
                           views)


def outranks(new: Analytics, stored: Any, *, disproved: Set[StoredAnalytics] = frozenset()) -> bool:
    """True when ``new`` should replace the ``stored`` ``umamiAnalytics``.

    A later ``lastAt`` wins. For the same session and ``lastAt``, the fuller figures win (an earlier
    ``firstAt``, then more views, then more visits: a wider window, or one hostname's row replaced by the
    whole session). Two sessions ending at the same instant are ordered by id, so the result does not
    depend on the order the candidates come in. Anything malformed is replaced, and so is what the events of
    its own session disprove (``disproved``: a ``lastAt`` or ``firstAt`` at which the session had no event, more
    views or visits than it had), however late its ``lastAt``: a wrong figure never blocks the true one.
    """
    return _replaces(new, stored_analytics(stored), disproved)


def _replaces(new: Analytics, old: StoredAnalytics | None, disproved: Set[StoredAnalytics]) -> bool:
    """:func:`outranks` over the stored analytics already read (``old``)."""
    return old is None or old in disproved or new.rank > old.rank


def blocking(new: Analytics, stored: Any) -> StoredAnalytics | None:
    """The stored analytics that keep ``new`` from being written (they outrank it), if they do: what must be
    checked against its session's events before ``new`` is given up."""
    old = stored_analytics(stored)
    return old if old is not None and old.rank > new.rank else None


def session_change(user: Mapping[str, Any], sessions: Iterable[KnownSession], *, keep: int,
                   now: datetime) -> Change | None:
    """The change that records ``sessions`` on ``user``, or None when nothing would change."""
    sessions = list(sessions)
    merged = merge_sessions(user, sessions, keep=keep)
    if merged["session_id"] == user.get("session_id") and merged["umamiSessions"] == user.get("umamiSessions"):
        return None
    merged["updatedAt"] = now
    return Change(user["_id"], session_guard(user), merged,
                  lambda current: session_change(current, sessions, keep=keep, now=now))


def session_guard(user: Mapping[str, Any]) -> dict[str, Any]:
    """Conditions that hold while ``session_id`` and ``umamiSessions`` are as read: the id and ``seenAt`` at
    each position, and nothing after the last (every change of ours changes one of them; scalar paths, as
    every compatible server compares them)."""
    stored = user.get("umamiSessions")
    entries = stored if isinstance(stored, list) else []
    guard: dict[str, Any] = {"session_id": user.get("session_id")}
    for index, entry in enumerate(entries):
        for name in ("id", "seenAt"):
            guard[f"umamiSessions.{index}.{name}"] = read_path(entry, name) if isinstance(entry, dict) else None
    guard[f"umamiSessions.{len(entries)}"] = {"$exists": False}
    return guard


def analytics_guard(user: Mapping[str, Any]) -> dict[str, Any]:
    """Conditions that hold while ``umamiAnalytics`` is as read: the value of each path of :data:`ANALYTICS_GUARD`
    (None where absent, as :func:`read_path` reads it)."""
    stored = user.get("umamiAnalytics")
    if not isinstance(stored, dict):
        return dict.fromkeys(ANALYTICS_GUARD)
    return {path: stored.get(name) for path, name in zip(ANALYTICS_GUARD, _GUARDED, strict=True)}


def merged_analytics(stored: Any, new: Analytics, *,
                     disproved: Set[StoredAnalytics] = frozenset()) -> dict[str, Any] | None:
    """The ``umamiAnalytics`` after learning ``new``, or None when the stored one stays as it is.

    ``new`` replaces what :func:`outranks` says it beats. The same session read again also heals its
    attributes: a known value replaces a missing or different one (a faulty answer's nulls are mended by a
    clean re-run), and a null never replaces a known value of the same session.
    """
    document = new.as_document()
    old = stored_analytics(stored)  # read once: this runs for every owned session's user
    same = old is not None and stored.get("id") == new.id
    if _replaces(new, old, disproved):
        if same:
            document.update({name: stored[name] for name in ATTRIBUTES
                             if document[name] is None and stored.get(name) is not None})
        return document
    if not same:
        return None
    healed = {name: document[name] for name in ATTRIBUTES
              if document[name] is not None and document[name] != stored.get(name)}
    return {**stored, **healed} if healed else None


def analytics_change(user: Mapping[str, Any], analytics: Analytics, *, now: datetime,
                     disproved: Set[StoredAnalytics] = frozenset()) -> Change | None:
    """The change that records ``analytics`` on ``user``, or None when nothing would change (``disproved``: stored
    analytics their session's events do not bear out, see :func:`outranks`)."""
    merged = merged_analytics(user.get("umamiAnalytics"), analytics, disproved=disproved)
    if merged is None:
        return None
    return Change(user["_id"], analytics_guard(user), {"umamiAnalytics": merged, "updatedAt": now},
                  lambda current: analytics_change(current, analytics, now=now, disproved=disproved))
