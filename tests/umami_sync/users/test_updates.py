"""The merges that decide what the sync writes on a user (pure: documents as pymongo returns them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umami_sync.users.updates import (
    ANALYTICS_GUARD,
    ATTRIBUTES,
    Analytics,
    KnownSession,
    analytics_change,
    blocking,
    merge_sessions,
    outranks,
    read_path,
    session_change,
    session_guard,
    stored_analytics,
)

NOW = datetime(2026, 11, 28, 1, tzinfo=UTC)
T = datetime(2026, 11, 27, 12, tzinfo=UTC)
H = timedelta(hours=1)


def naive(moment: datetime) -> datetime:
    """A date as pymongo returns it: naive UTC."""
    return moment.replace(tzinfo=None)


def known(session: str, hours: int, website: str = "w1") -> KnownSession:
    return KnownSession(session, website, T + timedelta(hours=hours))


def stored(session: KnownSession) -> dict[str, object]:
    return {"id": session.id, "websiteId": session.website_id, "seenAt": naive(session.seen_at) if session.seen_at
            else None}


def analytics(session: str = "s1", *, last: int = 0, first: int = -1, views: int = 3, visits: int = 2) -> Analytics:
    return Analytics(session, "w1", "chrome", "Linux", "desktop", "1920x1080", "en-US", "NL", None, None,
                     T + timedelta(hours=first), T + timedelta(hours=last), visits, views)


def test_sessions_merge_newest_first_bounded_each_at_its_latest_identity_time() -> None:
    user = {"_id": 1, "umamiSessions": [stored(known("s2", 2)), stored(known("s1", 1))]}

    merged = merge_sessions(user, [known("s3", 3), known("s1", 9), known("s0", 0)], keep=3)

    assert [entry["id"] for entry in merged["umamiSessions"]] == ["s1", "s3", "s2"]
    assert merged["umamiSessions"][0] == known("s1", 9).as_document()  # identified again later: it moves up
    assert merged["session_id"] == "s1"


def test_a_session_identified_again_on_a_later_day_becomes_session_id() -> None:
    """The sequence seen on a real 3.1.0 server: a returning visitor's older session is identified again on day
    A+1 (a new session_data write); ``session_id`` moves to it, as ``umamiAnalytics`` does."""
    user = {"_id": 1, "session_id": "s2", "umamiSessions": [stored(known("s2", 2)), stored(known("s1", 1))]}

    merged = merge_sessions(user, [known("s1", 24)], keep=5)

    assert merged["session_id"] == "s1"
    assert [entry["id"] for entry in merged["umamiSessions"]] == ["s1", "s2"]
    assert merge_sessions(user, [known("s1", 0)], keep=5)["umamiSessions"] == user["umamiSessions"]  # earlier


def test_the_same_identity_time_below_a_millisecond_changes_nothing() -> None:
    """MongoDB keeps whole milliseconds: a time PostgreSQL holds in microseconds is the stored one."""
    user = {"_id": 1, "session_id": "s1", "umamiSessions": [stored(known("s1", 1))]}
    again = KnownSession("s1", "w1", T + timedelta(hours=1, microseconds=999))

    assert session_change(user, [again], keep=5, now=NOW) is None


def test_a_session_id_from_before_the_list_stays_known_after_every_dated_one() -> None:
    merged = merge_sessions({"_id": 1, "session_id": "legacy"}, [known("s1", 1)], keep=5)

    assert merged["umamiSessions"] == [known("s1", 1).as_document(),
                                       {"id": "legacy", "websiteId": None, "seenAt": None}]
    assert merged["session_id"] == "s1"


def test_an_older_backfill_never_moves_session_id_back() -> None:
    user = {"_id": 1, "session_id": "new", "umamiSessions": [stored(known("new", 10))]}

    merged = merge_sessions(user, [known("old", -100)], keep=5)

    assert merged["session_id"] == "new"
    assert [entry["id"] for entry in merged["umamiSessions"]] == ["new", "old"]


def test_a_session_change_is_none_when_nothing_changes_and_guarded_otherwise() -> None:
    user = {"_id": 7, "session_id": "s1", "umamiSessions": [stored(known("s1", 1))], "updatedAt": naive(T)}

    assert session_change(user, [known("s1", 1)], keep=5, now=NOW) is None
    change = session_change(user, [known("s2", 2)], keep=5, now=NOW)
    assert change is not None
    assert change.user_id == 7
    assert change.guard == {"session_id": "s1", "umamiSessions.0.id": "s1", "umamiSessions.0.seenAt": naive(T + H),
                            "umamiSessions.1": {"$exists": False}}
    assert change.fields["session_id"] == "s2" and change.fields["updatedAt"] == NOW
    redone = change.redo({**user, "session_id": "s9"})  # another writer first
    assert redone is not None and redone.guard["session_id"] == "s9"
    assert change.redo({"_id": 7, **change.fields}) is None  # our own write landed: nothing left to do


def test_every_change_of_the_session_list_changes_its_guard() -> None:
    """Two changes planned from one read: once the first is written, the second's guard no longer holds."""
    user = {"_id": 7, "umamiSessions": [stored(known("s1", 1))]}
    first = session_change(user, [known("s2", 2)], keep=5, now=NOW)
    second = session_change(user, [known("s0", -5)], keep=5, now=NOW)  # an older one: session_id stays s1
    assert first is not None and second is not None
    after_second = {**user, **second.fields}

    assert after_second["session_id"] == "s1"
    assert session_guard(after_second) != second.guard  # so a stale third change cannot match any more
    settled = {**user, "session_id": "s1"}
    again = session_change(settled, [known("s1", 5)], keep=5, now=NOW)  # the same ids, a later identity time
    assert again is not None and session_guard({**settled, **again.fields}) != again.guard
    assert session_guard({"_id": 1, "umamiSessions": "corrupt"}) == {"session_id": None,
                                                                      "umamiSessions.0": {"$exists": False}}


def test_later_last_event_wins_and_older_never_replaces_newer() -> None:
    assert outranks(analytics(last=1), None)
    assert outranks(analytics(last=1), analytics(last=0).as_document())
    assert not outranks(analytics(last=0), {**analytics(last=1).as_document(), "lastAt": naive(T + timedelta(hours=1))})


def test_for_the_same_session_and_last_event_the_fuller_figures_win() -> None:
    """One hostname's row (fewer views, a later first event) never replaces the whole session's figures."""
    whole = analytics(first=-3, views=5, visits=3).as_document()
    one_hostname = analytics(first=-1, views=2, visits=1)

    assert not outranks(one_hostname, whole)
    assert outranks(analytics(first=-3, views=5, visits=3), one_hostname.as_document())
    assert not outranks(analytics(first=-3, views=5, visits=3), whole)  # equal: nothing to change


def test_two_sessions_ending_at_the_same_instant_are_ordered_by_id_whatever_comes_first() -> None:
    a, b = analytics("a"), analytics("b")
    assert outranks(b, a.as_document()) and not outranks(a, b.as_document())


@pytest.mark.parametrize("bad", ["x", {"lastAt": "yesterday"}, {"id": "s1", "lastAt": T}, 5])
def test_malformed_stored_analytics_are_replaced(bad: object) -> None:
    assert outranks(analytics(), bad)


def test_an_analytics_change_is_guarded_by_the_figures_it_compared() -> None:
    old = analytics(last=0).as_document()
    user = {"_id": 3, "umamiAnalytics": {**old, "lastAt": naive(T), "firstAt": naive(T - timedelta(hours=1))}}

    change = analytics_change(user, analytics(last=2), now=NOW)

    assert change is not None
    assert change.guard == {"umamiAnalytics.id": "s1", "umamiAnalytics.lastAt": naive(T),
                            "umamiAnalytics.firstAt": naive(T - timedelta(hours=1)),
                            "umamiAnalytics.views": 3, "umamiAnalytics.visits": 2,
                            **{f"umamiAnalytics.{name}": old[name] for name in ATTRIBUTES}}
    assert change.fields == {"umamiAnalytics": analytics(last=2).as_document(), "updatedAt": NOW}
    assert analytics_change(user, analytics(last=-2), now=NOW) is None
    assert analytics_change({"_id": 4}, analytics(), now=NOW) is not None
    for stored in ({}, {"umamiAnalytics": "not a document"}, {"umamiAnalytics": {"id": "s9", "views": 1}}):
        guarded = analytics_change({"_id": 4, **stored}, analytics(), now=NOW)
        assert guarded is not None
        assert guarded.guard == {path: read_path(stored, path) for path in ANALYTICS_GUARD}


def test_the_same_session_read_again_heals_its_attributes() -> None:
    """A faulty answer wrote nulls (and a wrong city); the clean re-run of the same figures mends them."""
    clean = analytics(last=0)
    faulty = {**clean.as_document(), "browser": None, "city": "Nowhere", "lastAt": naive(T),
              "firstAt": naive(T - timedelta(hours=1))}

    change = analytics_change({"_id": 5, "umamiAnalytics": faulty}, clean, now=NOW)

    assert change is not None
    assert change.fields["umamiAnalytics"] == {**faulty, "browser": "chrome"}  # the figures stay as stored
    assert change.guard["umamiAnalytics.browser"] is None  # guarded by what it heals, too
    narrower = analytics(last=0, first=0, views=1, visits=1)  # fewer figures, the same session: heals only
    assert analytics_change({"_id": 5, "umamiAnalytics": faulty}, narrower, now=NOW).fields[
        "umamiAnalytics"]["firstAt"] == naive(T - timedelta(hours=1))
    assert analytics_change({"_id": 5, "umamiAnalytics": clean.as_document()}, clean, now=NOW) is None


def test_a_null_never_replaces_a_known_attribute_of_the_same_session() -> None:
    known_city = {**analytics(last=0).as_document(), "city": "Delft"}
    later_without_city = analytics(last=1)  # city None in this answer

    change = analytics_change({"_id": 6, "umamiAnalytics": known_city}, later_without_city, now=NOW)

    assert change is not None and change.fields["umamiAnalytics"]["city"] == "Delft"
    assert change.fields["umamiAnalytics"]["lastAt"] == T + timedelta(hours=1)
    other_session = analytics("s2", last=2)
    assert analytics_change({"_id": 6, "umamiAnalytics": known_city}, other_session, now=NOW).fields[
        "umamiAnalytics"]["city"] is None  # another session's attributes are its own


def test_figures_their_session_disproves_never_block_the_true_ones() -> None:
    """What an activity answer of other sessions' events wrote (lastAt 20 days late, firstAt 3 days early, views
    5 -> 17) outranks the true figures; once its session's events disprove it, the true figures replace it, and the
    same false figures read again on a conflict (``redo``) are still replaced. What is not disproved keeps winning."""
    true = analytics(last=0, first=-1, views=5, visits=2)
    wrong = {**analytics(last=20 * 24, first=-3 * 24, views=17, visits=4).as_document()}
    user = {"_id": 7, "umamiAnalytics": {**wrong, "lastAt": naive(T + timedelta(days=20)),
                                         "firstAt": naive(T - timedelta(days=3))}}
    claim = stored_analytics(user["umamiAnalytics"])
    assert claim is not None and blocking(true, user["umamiAnalytics"]) == claim

    assert analytics_change(user, true, now=NOW) is None  # what today's rule does: a later lastAt always wins
    change = analytics_change(user, true, now=NOW, disproved={claim})

    assert change is not None and change.fields["umamiAnalytics"] == true.as_document()
    assert change.redo(user) == change  # the same false figures, read again
    assert change.redo({"_id": 7, "umamiAnalytics": analytics(last=1).as_document()}) is None  # another writer's
    assert blocking(analytics(last=1), true.as_document()) is None  # nothing to check when the new one wins


def test_read_path_reads_dotted_paths_and_absent_is_none() -> None:
    document = {"a": {"b": 1}, "c": "x"}
    assert [read_path(document, path) for path in ("a.b", "a.z", "c.d", "q")] == [1, None, None, None]
