"""Identity rows from Umami's PostgreSQL database, streamed through a server-side cursor.

The queries live beside this module in ``sql/`` (shipped inside the package, so a plugins.zip deploy
carries them too).
"""

from __future__ import annotations

import uuid
from contextlib import closing
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from umami_sync.windows import DataInterval


class IdentityRow(BaseModel):
    """One place where an identity appeared: a session's distinct_id or a session_data value."""

    model_config = ConfigDict(frozen=True)

    identity: str | None
    session_id: str
    website_id: str
    seen_at: datetime
    source: Literal["distinct_id", "session_data"]


@cache
def query(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (resources.files(__package__) / "sql" / f"{name}.sql").read_text()


class UmamiDatabase:
    """Reads what the session sync needs from Umami's tables, through one PostgresHook."""

    def __init__(self, hook: PostgresHook, *, fetch_size: int = 5000) -> None:
        self.hook = hook
        self.fetch_size = fetch_size

    def count_anonymous(self, window: DataInterval, data_key: str) -> int:
        """Sessions created in ``window`` with neither a distinct_id nor an identity key in session_data."""
        with closing(self.hook.get_conn()) as conn, conn.cursor() as cursor:
            cursor.execute(query("anonymous_sessions"), self._params(window, data_key))
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def identity_rows(self, window: DataInterval, data_key: str) -> Iterator[IdentityRow]:
        """Stream the identity rows of ``window`` grouped by identity, newest first within one identity.

        A named (server-side) cursor keeps memory flat whatever the number of rows.
        """
        with closing(self.hook.get_conn()) as conn:
            cursor = conn.cursor(name=f"umami_identities_{uuid.uuid4().hex}")
            cursor.itersize = self.fetch_size
            try:
                cursor.execute(query("identities"), self._params(window, data_key))
                for identity, session_id, website_id, seen_at, source in cursor:
                    yield IdentityRow(identity=identity, session_id=session_id, website_id=website_id,
                                      seen_at=seen_at, source=source)
            finally:
                cursor.close()
                conn.commit()  # ends the read-only transaction the named cursor lived in

    @staticmethod
    def _params(window: DataInterval, data_key: str) -> dict[str, object]:
        return {"start": window.start, "end": window.end, "data_key": data_key}
