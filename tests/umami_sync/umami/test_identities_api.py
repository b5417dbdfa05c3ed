"""The pure rules of reading identities through the API: how many sessions have the identity key, and the order
the rows are handed to stage 1's core in (the one ``sql/identities.sql`` gives, by the identity rule's own fold)."""

from __future__ import annotations

from datetime import UTC, datetime

from umami_sync.identities import IdentityRule
from umami_sync.owners import IdentityGroups
from umami_sync.umami.identities_api import MAX_DATA_KEYS, key_sessions, sorted_rows
from umami_sync.umami.identity_models import SessionDataKey
from umami_sync.umami.identity_row import IdentityRow

WEBSITE = "266abb41-957e-4dd3-8229-6a601f80a9db"


def row(identity: str | None, session: str, minute: int) -> IdentityRow:
    return IdentityRow(identity=identity, session_id=session, website_id=WEBSITE,
                       seen_at=datetime(2026, 11, 27, 9, minute, tzinfo=UTC), source="session_data")


def keys(*pairs: tuple[str, int]) -> list[SessionDataKey]:
    return [SessionDataKey(property_name=name, total=total) for name, total in pairs]


def test_the_key_count_is_known_unless_the_answer_is_full_without_the_key() -> None:
    assert key_sessions(keys(("plan", 3), ("email", 2)), "email") == 2
    assert key_sessions(keys(("plan", 3)), "email") == 0
    assert key_sessions([], "email") == 0
    full = keys(*((f"key{n}", 1) for n in range(MAX_DATA_KEYS)))
    assert key_sessions(full, "email") is None  # the 500 most common keys: ours may be cut off


def test_rows_come_grouped_by_folded_identity_newest_first_then_by_session() -> None:
    rows = [row("zoe\u0308@example.com", "s1", 1), row("Bob@example.com", "s2", 5),
            row("\tZo\u00eb@Example.com", "s3", 9), row("bob@example.com ", "s4", 5), row(None, "s5", 3),
            row("zoe.x@example.com", "s6", 2)]

    ordered = sorted_rows(rows)

    assert [r.session_id for r in ordered] == ["s5", "s2", "s4", "s6", "s3", "s1"]
    groups = IdentityGroups(ordered, IdentityRule(), keep=5)
    assert [(group.identity, [session.id for session in group.sessions]) for group in groups] == [
        ("bob@example.com", ["s2", "s4"]), ("zoe.x@example.com", ["s6"]), ("zo\u00eb@example.com", ["s3", "s1"])]
    assert (groups.rows_read, groups.invalid_rows) == (6, 1)
