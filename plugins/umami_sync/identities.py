"""One place for the identity rule: how a raw Umami identity becomes the value a user is matched on."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_IDENTITY_LENGTH = 500  # session_data.string_value is varchar(500); distinct_id is varchar(50)


@dataclass(frozen=True)
class IdentityRule:
    """Trim, validate and case-fold identities.

    Matching users is case-insensitive (a collation of strength 2 in MongoDB); the folded form here
    only groups rows of the same identity together and is what gets sent in the filter.
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
        return value.lower()
