"""One place for the identity rule: how a raw Umami identity becomes the value a user is matched on."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_IDENTITY_LENGTH = 500  # session_data.string_value is varchar(500); distinct_id is varchar(50)


def fold(value: str) -> str:
    """The form identities are grouped and compared in: trimmed, lower case."""
    return value.strip().lower()


@dataclass(frozen=True)
class IdentityRule:
    """Trim, validate and case-fold identities.

    Users are looked up case-insensitively (a collation of strength 2 in MongoDB) with the folded
    form, which also groups rows of the same identity together.
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
