"""Who owns what: identity rows grouped into identities, sessions' users, and the dry-run overlay (pure, with
the users collection answered in memory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from umami_sync.identities import IdentityRule
from umami_sync.owners import IdentityGroup, IdentityGroups, planned_owners, session_owners
from umami_sync.settings import EMAIL_PATTERN
from umami_sync.umami.db import IdentityRow
from umami_sync.users.updates import KnownSession

EMAIL = IdentityRule.from_pattern(EMAIL_PATTERN)
SEEN = datetime(2026, 11, 27, 9, tzinfo=UTC)


def row(identity: str | None, session: str, hour: int) -> IdentityRow:
    return IdentityRow(identity=identity, session_id=session, website_id="w", source="distinct_id",
                       seen_at=datetime(2026, 11, 27, hour, tzinfo=UTC))


def test_rows_group_into_identities_with_their_recent_distinct_sessions() -> None:
    rows = [row("a@x.io", "s3", 9), row("A@x.io ", "s3", 8), row("a@x.io", "s2", 7), row("a@x.io", "s1", 6),
            row(None, "s9", 5), row("b@x.io", "s4", 4)]

    grouped = IdentityGroups(rows, EMAIL, keep=2)
    groups = list(grouped)

    assert [(group.identity, [s.id for s in group.sessions]) for group in groups] == [
        ("a@x.io", ["s3", "s2"]), ("b@x.io", ["s4"])]
    assert (grouped.rows_read, grouped.invalid_rows) == (6, 1)


def test_each_identity_is_folded_once_for_its_rows_not_once_a_row() -> None:
    folded: list[str | None] = []

    class Counted(IdentityRule):
        def normalise(self, raw: str | None) -> str | None:
            folded.append(raw)
            return super().normalise(raw)

    rows = [row("a@x.io", "s3", 9), row("a@x.io", "s2", 8), row("A@x.io ", "s1", 7), row(None, "s8", 6),
            row(None, "s9", 5), row("b@x.io", "s4", 4), row("b@x.io", "s4", 3)]

    groups = list(IdentityGroups(rows, Counted(EMAIL.pattern), keep=5))

    assert [(group.identity, [s.id for s in group.sessions]) for group in groups] == [
        ("a@x.io", ["s3", "s2", "s1"]), ("b@x.io", ["s4"])]
    assert folded == ["a@x.io", "A@x.io ", None, "b@x.io"]


def test_the_dry_run_overlay_gives_sessions_the_users_stage_1_would_give_them() -> None:
    ann = {"_id": 1, "email": "ann@x.io", "session_id": "old", "umamiSessions": [
        {"id": "old", "websiteId": "w", "seenAt": datetime(2026, 11, 1, tzinfo=UTC)}]}
    chunk = [IdentityGroup("ann@x.io", [KnownSession("new", "w", SEEN)]),
             IdentityGroup("cy@x.io", [KnownSession("elsewhere", "other", SEEN)]),
             IdentityGroup("nobody@x.io", [KnownSession("lost", "w", SEEN)])]

    owners = planned_owners([(chunk, {"ann@x.io": [ann], "cy@x.io": [{"_id": 3}]})], "w", keep=5)

    assert set(owners) == {"new", "old"}  # every session Ann will be known by; Cy's is another website's
    assert owners["new"][0]["session_id"] == "new" and owners["new"] == owners["old"]
    assert ann["session_id"] == "old"  # the users read are not changed


class Users:
    """The one look-up :func:`session_owners` makes, answered from a dict."""

    def __init__(self, by_session: dict[str, list[Any]]) -> None:
        self.by_session = by_session

    def users_by_session(self, session_ids: list[str]) -> dict[str, list[Any]]:
        return {s: list(self.by_session[s]) for s in session_ids if s in self.by_session}


def test_planned_owners_come_first_and_replace_the_same_user_as_stored() -> None:
    stored = {"_id": 1, "session_id": "a"}
    planned = {"_id": 1, "session_id": "b", "umamiSessions": [{"id": "a"}, {"id": "b"}]}
    other = {"_id": 2, "session_id": "a"}
    users = Users({"a": [stored, other]})

    assert session_owners(users, ["a", "c"]) == {"a": [stored, other]}
    assert session_owners(users, ["a", "b"], {"a": [planned], "b": [planned]}) == {
        "a": [planned, other], "b": [planned]}
