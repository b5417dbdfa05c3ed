"""Scrubbing secrets out of text that leaves the package (error messages, exception texts, alerts).

:func:`scrub` is the one rule for text that may carry a credential nobody named: bearer tokens, the
``user:password@`` of a URL, ``password=``/``api_key:``-like pairs and long token-like strings become ``***``;
website and session ids (UUIDs) stay, so an error still says which website or session it is about. The alerts
use it as it is.

Some servers and gateways echo a request back in their error body: the password inside the JSON login body,
the ``Authorization`` header, a URL-encoded form. A :class:`Redactor` knows the connection's secrets and
replaces each one in every form such an echo gives it, then applies :func:`scrub`, and caps the length.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

MAX_CHARS = 200
"""The longest text kept of a message that came from elsewhere."""
MASK = "***"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CREDENTIALS = (
    (re.compile(r"(?i)\bbearer\s+[^\s,;'\"]+"), f"Bearer {MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@"), rf"\1{MASK}@"),  # user:password@ of a URL
    (re.compile(r"(?i)\b(authorization|password|passwd|pwd|secret|token|api[_-]?key|x-umami-api-key)"
                r"(['\"]?\s*[=:]\s*['\"]?)(?!bearer\s)(?:basic\s+)?[^\s,;&'\"]+"), rf"\1\2{MASK}"),
)
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_.=-]{32,}")
_KEPT = re.compile(rf"{_UUID.pattern}|(?:[A-Z][a-z]+)+")
"""Long strings that are no token: ids, and CamelCase names (``AirflowSecretsBackendAccessDenied``)."""


def scrub(text: str) -> str:
    """``text`` without anything that looks like a credential (bearer tokens, passwords in URLs, headers and
    ``key=value`` pairs, long token-like strings); website and session ids and long error names stay. Not capped."""
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return _TOKEN_LIKE.sub(lambda found: found[0] if _KEPT.fullmatch(found[0]) else MASK, text)


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
    """Scrubs the secrets it was given out of text, then what :func:`scrub` scrubs, and caps it."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        """Scrub these secrets too from now on (empty ones are ignored)."""
        self._secrets.update(secret for secret in secrets if secret)

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked and :func:`scrub`-bed, capped at :data:`MAX_CHARS`."""
        for secret in self._secrets:
            for form in echoed_forms(secret):
                text = text.replace(form, MASK)
        return cap(scrub(text))
