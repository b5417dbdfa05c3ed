"""The identity rule, and grouping streamed rows into identities."""

from __future__ import annotations

from datetime import UTC, datetime

from umami_sync.identities import IdentityRule, fold, spellings
from umami_sync.results import SessionSyncResult
from umami_sync.settings import EMAIL_PATTERN
from umami_sync.stages.sessions import group_identities
from umami_sync.umami.db import IdentityRow

EMAIL = IdentityRule.from_pattern(EMAIL_PATTERN)


def row(identity: str | None, session: str, hour: int) -> IdentityRow:
    return IdentityRow(identity=identity, session_id=session, website_id="w", source="distinct_id",
                       seen_at=datetime(2026, 11, 27, hour, tzinfo=UTC))


def test_identities_are_trimmed_folded_and_validated() -> None:
    assert EMAIL.normalise("  Alice@Example.COM\t") == "alice@example.com"
    assert [EMAIL.normalise(v) for v in (None, "", "  ", "alice", "a@b", "a b@c.d", "a@b.c\x00")] == [None] * 7
    assert IdentityRule.from_pattern(None).normalise(" U-42 ") == "u-42"
    assert IdentityRule.from_pattern(None).normalise("x" * 501) is None


def test_rows_group_into_identities_with_their_recent_distinct_sessions() -> None:
    result = SessionSyncResult(window_start=datetime(2026, 1, 1), window_end=datetime(2026, 1, 2))
    rows = [row("a@x.io", "s3", 9), row("A@x.io ", "s3", 8), row("a@x.io", "s2", 7), row("a@x.io", "s1", 6),
            row(None, "s9", 5), row("b@x.io", "s4", 4)]

    groups = list(group_identities(rows, EMAIL, keep=2, result=result))

    assert [(identity, [s.id for s in sessions]) for identity, sessions in groups] == [
        ("a@x.io", ["s3", "s2"]), ("b@x.io", ["s4"])]
    assert (result.rows_read, result.invalid_rows) == (6, 1)


def test_one_person_typed_in_nfc_or_nfd_folds_to_one_identity() -> None:
    nfc, nfd = "Zo\u00eb@Example.com", "Zoe\u0308@example.COM"
    assert EMAIL.normalise(nfc) == EMAIL.normalise(f" {nfd} ") == fold(nfd) == "zo\u00eb@example.com"
    assert fold(" Zoe@x.io") == " zoe@x.io"  # a stored value keeps its spaces: only identities are trimmed
    assert spellings(fold(nfc)) == ["zo\u00eb@example.com", "zoe\u0308@example.com"]
    assert spellings("plain@example.com") == ["plain@example.com"]
