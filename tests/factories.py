"""Rows as Umami writes them, and users as the application stores them, for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from pymongo.collection import Collection

WEBSITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
OTHER_WEBSITE = "5b3a2b8e-2d0e-4c39-9f7e-0f2a9d3c6e11"
UMAMI_USER = "41e2b680-648e-4b09-bcd7-3e2b10c06264"


def at(hour: int, minute: int = 0, day: int = 27) -> datetime:
    """A UTC time on 2026-11-<day>."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


class UmamiRows:
    """Insert Umami rows into the database at ``dsn`` (one connection, autocommit)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def website(self, website_id: str = WEBSITE, name: str = "Probe Site", *, deleted: bool = False,
                user_id: str = UMAMI_USER, team_id: str | None = None) -> str:
        self.conn.execute(
            "INSERT INTO website (website_id, name, domain, user_id, created_at, updated_at, deleted_at, created_by,"
            " team_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (website_id, name, f"{name.lower().replace(' ', '-')}.example.com", user_id, at(0, day=1),
             at(0, day=1), at(0, day=2) if deleted else None, user_id, team_id),
        )
        return website_id

    def session(self, created_at: datetime, *, distinct_id: str | None = None, website_id: str = WEBSITE,
                session_id: str | None = None, browser: str = "chrome", country: str = "US") -> str:
        session_id = session_id or str(uuid.uuid4())
        self.conn.execute(
            "INSERT INTO session (session_id, website_id, browser, os, device, screen, language, country,"
            " region, city, created_at, distinct_id) VALUES (%s, %s, %s, 'Linux', 'desktop', '1920x1080',"
            " 'en-US', %s, NULL, NULL, %s, %s)",
            (session_id, website_id, browser, country, created_at, distinct_id),
        )
        return session_id

    def session_data(self, session_id: str, created_at: datetime, *, key: str = "email",
                     value: str | None = None, website_id: str = WEBSITE, distinct_id: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO session_data (session_data_id, website_id, session_id, data_key, string_value,"
            " number_value, date_value, data_type, created_at, distinct_id)"
            " VALUES (%s, %s, %s, %s, %s, NULL, NULL, 1, %s, %s)",
            (str(uuid.uuid4()), website_id, session_id, key, value, created_at, distinct_id),
        )

    def event(self, session_id: str, created_at: datetime, *, website_id: str = WEBSITE, event_type: int = 1,
              visit_id: str | None = None, url_path: str = "/") -> None:
        self.conn.execute(
            "INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path,"
            " event_type, hostname) VALUES (%s, %s, %s, %s, %s, %s, %s, 'probe.example.com')",
            (str(uuid.uuid4()), website_id, session_id, visit_id or str(uuid.uuid5(uuid.NAMESPACE_URL, session_id)),
             created_at, url_path, event_type),
        )

    def close(self) -> None:
        self.conn.close()


def add_user(users: Collection[dict[str, Any]], email: str, **fields: Any) -> Any:
    """Insert a user the way the application does; return its ``_id``."""
    document = {"email": email, "name": email.split("@")[0].title(), "isDeleted": False,
                "createdAt": datetime(2026, 1, 1), "updatedAt": datetime(2026, 1, 1), "plan": "free", **fields}
    return users.insert_one(document).inserted_id
