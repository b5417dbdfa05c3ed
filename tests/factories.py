"""Rows as Umami writes them, and users as the application stores them, for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from local_stack.postgres import DEFAULT_LEVEL

if TYPE_CHECKING:
    from pymongo.collection import Collection

    from umami_sync.umami.models import SessionRow

WEBSITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
OTHER_WEBSITE = "5b3a2b8e-2d0e-4c39-9f7e-0f2a9d3c6e11"
UMAMI_USER = "41e2b680-648e-4b09-bcd7-3e2b10c06264"


def at(hour: int, minute: int = 0, day: int = 27) -> datetime:
    """A UTC time on 2026-11-<day>."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def list_row(session: str, first_at: datetime, last_at: datetime, *, website_id: str = WEBSITE, visits: int = 1,
             views: int = 1, hostname: str | None = None, **attributes: str | None) -> SessionRow:
    """A row of Umami's session list as the sync holds it (plain data); attributes not given are null."""
    empty = dict.fromkeys(("browser", "os", "device", "screen", "language", "country", "region", "city"))
    return {"id": session, "website_id": website_id, "hostname": hostname, **empty, **attributes,
            "first_at": first_at, "last_at": last_at, "visits": visits, "views": views, "events": None}


class UmamiRows:
    """Write Umami rows into the database at ``dsn`` with the statements Umami's own write path runs at schema
    ``level`` (one connection, autocommit; the Prisma calls of 2.x and 3.1 written as the SQL they send).

    2.x stamps ``session.created_at`` with the arrival of the session's first hit (the column's default), 3.x
    with the hit's time: a test gives that time either way.
    """

    def __init__(self, dsn: str, level: str = DEFAULT_LEVEL) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.level = level

    @property
    def links(self) -> bool:
        """Whether this level's server links identities to sessions (``session_link``, Umami 3.3+)."""
        return self.level not in {"2.20.2", "3.1.0"}

    def website(self, website_id: str = WEBSITE, name: str = "Probe Site", *, deleted: bool = False,
                user_id: str | None = UMAMI_USER, team_id: str | None = None) -> str:
        self.conn.execute(
            "INSERT INTO website (website_id, name, domain, user_id, created_at, updated_at, deleted_at, created_by,"
            " team_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (website_id, name, f"{name.lower().replace(' ', '-')}.example.com", user_id, at(0, day=1),
             at(0, day=1), at(0, day=2) if deleted else None, user_id, team_id),
        )
        return website_id

    def team(self, role: str = "team-owner", *, user_id: str = UMAMI_USER, team_id: str | None = None,
             deleted: bool = False) -> str:
        """A team (new unless ``team_id`` names one) with ``user_id`` among its members in ``role`` (Umami's roles:
        team-owner, team-manager, team-member, team-view-only)."""
        team_id = team_id or str(uuid.uuid4())
        self.conn.execute("insert into team (team_id, name, created_at, deleted_at) values (%s, 'Team', %s, %s)"
                          " on conflict (team_id) do nothing",
                          (team_id, at(0, day=1), at(0, day=2) if deleted else None))
        self.conn.execute("insert into team_user (team_user_id, team_id, user_id, role, created_at)"
                          " values (%s, %s, %s, %s, %s)", (str(uuid.uuid4()), team_id, user_id, role, at(0, day=1)))
        return team_id

    def session(self, created_at: datetime, *, distinct_id: str | None = None, website_id: str = WEBSITE,
                session_id: str | None = None, browser: str = "chrome", country: str = "US") -> str:
        """``createSession``: a session's first hit (with ``distinct_id`` when that hit carried an id)."""
        session_id = session_id or str(uuid.uuid4())
        self.conn.execute(
            "insert into session (session_id, website_id, browser, os, device, screen, language, country, region,"
            " city, distinct_id, created_at) values (%s, %s, %s, 'Linux', 'desktop', '1920x1080', 'en-US', %s, NULL,"
            " NULL, %s, %s) on conflict (session_id) do nothing",
            (session_id, website_id, browser, country, distinct_id, created_at),
        )
        return session_id

    def identify(self, session_id: str, distinct_id: str, created_at: datetime, *, website_id: str = WEBSITE) -> None:
        """Umami 3.3's ``identify`` with an id on an existing session: ``updateSession`` (the last id wins,
        ``created_at`` stays) and ``saveSessionLink`` (the first link time stays)."""
        assert self.links, f"Umami {self.level} gives an identified visitor a session of its own"
        self.conn.execute(
            "update session set distinct_id = %(id)s where website_id = %(website)s and session_id = %(session)s"
            " and coalesce(distinct_id, '') != %(id)s",
            {"id": distinct_id, "website": website_id, "session": session_id})
        self.conn.execute(
            "insert into session_link (website_id, session_id, distinct_id, created_at) values (%s, %s, %s, %s)"
            " on conflict (website_id, distinct_id, session_id) do nothing",
            (website_id, session_id, distinct_id, created_at))

    def claim(self, session_id: str, distinct_id: str, created_at: datetime, *, website_id: str = WEBSITE,
              link_only: bool = False) -> bool:
        """``tryClaimAnonymousSession``: an identified visitor takes over its anonymous session when nobody else
        holds it; whether it could. One version of it sets ``session.distinct_id`` and links; another
        (``link_only``) only links, when no link of another id exists, and leaves ``distinct_id`` NULL."""
        assert self.links, f"Umami {self.level} does not claim anonymous sessions"
        values = {"id": distinct_id, "website": website_id, "session": session_id, "at": created_at}
        if link_only:
            other = ("select 1 from session_link where website_id = %(website)s::uuid"
                     " and session_id = %(session)s::uuid and distinct_id <> %(id)s::varchar")
            row = self.conn.execute(
                f"""with claim as (
                     insert into session_link (website_id, session_id, distinct_id, created_at)
                     select %(website)s::uuid, %(session)s::uuid, %(id)s::varchar, %(at)s::timestamptz
                     where not exists ({other})
                     on conflict (website_id, distinct_id, session_id) do nothing)
                   select not exists ({other}) as "canReuse"
                """, values).fetchone()
            return bool(row and row[0])
        row = self.conn.execute(
            """with claim as (
                 update session set distinct_id = %(id)s
                 where website_id = %(website)s::uuid and session_id = %(session)s::uuid
                   and coalesce(distinct_id, %(id)s) = %(id)s
                 returning 1),
               link as (
                 insert into session_link (website_id, session_id, distinct_id, created_at)
                 select %(website)s::uuid, %(session)s::uuid, %(id)s, %(at)s from claim
                 on conflict (website_id, distinct_id, session_id) do nothing
                 returning 1)
               select exists (select 1 from claim) as "canReuse"
            """, values).fetchone()
        return bool(row and row[0])

    def session_data(self, session_id: str, created_at: datetime, *, key: str = "email",
                     value: str | None = None, website_id: str = WEBSITE, distinct_id: str | None = None) -> None:
        """``saveSessionData`` of one string: on 3.3 an upsert on (session, key) that moves ``created_at`` and
        ``distinct_id`` to this write; before, an update of the session's rows of that key (with a new id),
        else an insert."""
        values = {"id": str(uuid.uuid4()), "website": website_id, "session": session_id, "key": key,
                  "value": value, "distinct": distinct_id, "at": created_at}
        insert = ("insert into session_data (session_data_id, website_id, session_id, data_key, string_value,"
                  " number_value, date_value, data_type, distinct_id, created_at) values (%(id)s, %(website)s,"
                  " %(session)s, %(key)s, %(value)s, NULL, NULL, 1, %(distinct)s, coalesce(%(at)s, now()))")
        if self.links:
            self.conn.execute(
                f"{insert} on conflict (session_id, data_key) do update set website_id = excluded.website_id,"
                " string_value = excluded.string_value, number_value = excluded.number_value,"
                " date_value = excluded.date_value, data_type = excluded.data_type,"
                " distinct_id = excluded.distinct_id, created_at = coalesce(%(at)s, session_data.created_at)",
                values)
            return
        updated = self.conn.execute(
            "update session_data set session_data_id = %(id)s, website_id = %(website)s, string_value = %(value)s,"
            " number_value = NULL, date_value = NULL, data_type = 1, distinct_id = %(distinct)s,"
            " created_at = %(at)s where session_id = %(session)s and data_key = %(key)s", values)
        if updated.rowcount == 0:
            self.conn.execute(insert, values)

    def event(self, session_id: str, created_at: datetime, *, website_id: str = WEBSITE, event_type: int = 1,
              visit_id: str | None = None, url_path: str = "/", hostname: str | None = "probe.example.com") -> None:
        """``saveEvent`` of a page view (``event_type`` 1) or a custom event (2)."""
        self.conn.execute(
            "INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path,"
            " event_type, hostname) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (str(uuid.uuid4()), website_id, session_id, visit_id or str(uuid.uuid5(uuid.NAMESPACE_URL, session_id)),
             created_at, url_path, event_type, hostname),
        )

    def beacon(self, session_id: str, created_at: datetime, *, website_id: str = WEBSITE,
               visit_id: str | None = None, url_path: str = "/") -> None:
        """``saveEvent`` of a web-vitals beacon (3.1+, ``data-performance``): ``event_type`` 5, no hostname."""
        assert self.level != "2.20.2", "Umami 2.x sends no performance beacons"
        self.conn.execute(
            "INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path,"
            " event_type, lcp, inp, cls, fcp, ttfb) VALUES (%s, %s, %s, %s, %s, %s, 5, 1200.5, 80.0, 0.0125,"
            " 640.0, 210.0)",
            (str(uuid.uuid4()), website_id, session_id, visit_id or str(uuid.uuid5(uuid.NAMESPACE_URL, session_id)),
             created_at, url_path),
        )

    def close(self) -> None:
        self.conn.close()


def add_user(users: Collection[dict[str, Any]], email: str, **fields: Any) -> Any:
    """Insert a user the way the application does; return its ``_id``."""
    document = {"email": email, "name": email.split("@")[0].title(), "isDeleted": False,
                "createdAt": datetime(2026, 1, 1), "updatedAt": datetime(2026, 1, 1), "plan": "free", **fields}
    return users.insert_one(document).inserted_id
