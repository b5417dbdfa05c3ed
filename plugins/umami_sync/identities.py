"""One place for the identity rule: how a raw Umami identity becomes the value a user is matched on."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_IDENTITY_LENGTH = 500  # session_data.string_value is varchar(500); distinct_id is varchar(50)


def fold(value: str) -> str:
    """The form identities and users' match values are compared in: Unicode NFC, lower case
    (``Zoë@Example.com`` typed as one code point or as ``e`` plus a combining diaeresis folds to the same
    text). Spaces stay: a stored value is matched as it is, an identity is trimmed first."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())


def spellings(identity: str) -> list[str]:
    """The stored spellings an exact look-up of a folded ``identity`` must try: its NFC and NFD forms."""
    return list(dict.fromkeys((identity, unicodedata.normalize("NFD", identity))))


@dataclass(frozen=True)
class IdentityRule:
    """Trim, validate and fold identities.

    Users are looked up with the folded form, case-insensitively, which also groups rows of the same
    identity together.
    """

    pattern: re.Pattern[str] | None = None

    @classmethod
    def from_pattern(cls, pattern: str | None) -> IdentityRule:
        """Build the rule from the ``identity_pattern`` setting."""
        return cls(re.compile(pattern) if pattern else None)

    def normalise(self, raw: str | None) -> str | None:
        """The folded identity, or ``None`` when it is empty or malformed."""
        if raw is None:
            return None
        value = raw.strip()
        if not value or len(value) > MAX_IDENTITY_LENGTH or not value.isprintable():
            return None
        if self.pattern is not None and not self.pattern.match(value):
            return None
        return fold(value)
