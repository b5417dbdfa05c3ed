"""The identity rule."""

from __future__ import annotations

from umami_sync.identities import IdentityRule, fold, spellings
from umami_sync.settings import EMAIL_PATTERN

EMAIL = IdentityRule.from_pattern(EMAIL_PATTERN)


def test_identities_are_trimmed_folded_and_validated() -> None:
    assert EMAIL.normalise("  Alice@Example.COM\t") == "alice@example.com"
    assert [EMAIL.normalise(v) for v in (None, "", "  ", "alice", "a@b", "a b@c.d", "a@b.c\x00")] == [None] * 7
    assert IdentityRule.from_pattern(None).normalise(" U-42 ") == "u-42"
    assert IdentityRule.from_pattern(None).normalise("x" * 501) is None


def test_one_person_typed_in_nfc_or_nfd_folds_to_one_identity() -> None:
    nfc, nfd = "Zo\u00eb@Example.com", "Zoe\u0308@example.COM"
    assert EMAIL.normalise(nfc) == EMAIL.normalise(f" {nfd} ") == fold(nfd) == "zo\u00eb@example.com"
    assert fold(" Zoe@x.io") == " zoe@x.io"  # a stored value keeps its spaces: only identities are trimmed
    assert spellings(fold(nfc)) == ["zo\u00eb@example.com", "zoe\u0308@example.com"]
    assert spellings("plain@example.com") == ["plain@example.com"]
