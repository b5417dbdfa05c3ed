"""Scrubbing secrets out of text that leaves the client (error messages, exception texts).

Some servers and gateways echo a request back in their error body: the password inside the JSON login body,
the ``Authorization`` header, a URL-encoded form. A :class:`Redactor` knows the connection's secrets and
replaces each one in every form such an echo gives it, then anything that looks like a bearer token, and caps
the length.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

MAX_CHARS = 200
"""The longest text kept of a message that came from elsewhere."""
MASK = "***"
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_.=-]{32,}")


def echoed_forms(secret: str | None) -> list[str]:
    """The forms a secret takes when a server echoes it: as is, escaped in JSON or a repr, URL-encoded;
    longest first, so that a form is replaced before a shorter one inside it."""
    if not secret:
        return []
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret), quote(secret, safe=""),
             quote_plus(secret)}
    return sorted(forms, key=len, reverse=True)


def cap(text: str) -> str:
    """``text`` cut to :data:`MAX_CHARS` characters."""
    return text[:MAX_CHARS]


class Redactor:
    """Scrubs the secrets it was given, bearer tokens and token-like strings out of text, and caps it."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        """Scrub these secrets too from now on (empty ones are ignored)."""
        self._secrets.update(secret for secret in secrets if secret)

    def __call__(self, text: str) -> str:
        """``text`` with every secret, bearer token and token-like string masked, capped at :data:`MAX_CHARS`."""
        for secret in self._secrets:
            for form in echoed_forms(secret):
                text = text.replace(form, MASK)
        return cap(_TOKEN_LIKE.sub(MASK, _BEARER.sub(f"Bearer {MASK}", text)))
