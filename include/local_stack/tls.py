"""TLS on loopback for the local servers that production reaches over TLS (SMTP with STARTTLS, Key Vault's HTTPS)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def loopback_tls(ca_path: Path) -> ssl.SSLContext:
    """A server context whose certificate (127.0.0.1, localhost) a CA made here signed; the CA goes to ``ca_path``
    for the clients to trust."""
    import trustme  # a test and demo dependency only: imported when a server asks for TLS

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context
