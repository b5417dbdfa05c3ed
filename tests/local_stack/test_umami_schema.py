"""Umami's schema levels (``include/sql/umami``): what each leaves of the tables
the sync reads, checked in PostgreSQL."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

TIMESTAMPTZ = "timestamp with time zone"


def _columns(dsn: str, table: str) -> list[tuple[str, str, int | None, str, str | None]]:
    """(name, type, length, nullable, default) of ``table``'s columns, in column order."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """select column_name, data_type, coalesce(character_maximum_length, numeric_precision),
                      is_nullable, column_default
               from information_schema.columns
               where table_schema = 'public' and table_name = %s order by ordinal_position""",
            (table,)).fetchall()
    return [(name, kind, length, nullable, default) for name, kind, length, nullable, default in rows]


def _indexes(dsn: str) -> set[tuple[str, str, bool]]:
    """(table, columns, unique) of every index."""
    with psycopg.connect(dsn) as conn:
        return {(table, re.sub(r".*\((.*)\)$", r"\1", definition), " UNIQUE " in definition)
                for table, definition in conn.execute(
                    "select tablename, indexdef from pg_indexes where schemaname = 'public'")}


def test_rows_written_by_a_real_server_load_unchanged(umami_rows_db: str, umami_fixtures: Path) -> None:
    """rows.sql inserts without column lists, so it loads only when every column order matches 3.1.0's."""
    rows_sql = (umami_fixtures / "rows.sql").read_text()
    inserted = Counter(re.findall(r"^INSERT INTO public\.(\w+) VALUES", rows_sql, flags=re.MULTILINE))
    with psycopg.connect(umami_rows_db) as conn:
        stored = {table: conn.execute(f'select count(*) from "{table}"').fetchone() for table in inserted}
    assert {table: row[0] for table, row in stored.items() if row} == dict(inserted)
    assert set(inserted) == {"website", "session", "session_data", "website_event", "event_data"}


@pytest.mark.umami_levels
def test_session_and_session_data_are_the_same_on_every_level(umami_db: str) -> None:
    assert _columns(umami_db, "session") == [
        ("session_id", "uuid", None, "NO", None),
        ("website_id", "uuid", None, "NO", None),
        ("browser", "character varying", 20, "YES", None),
        ("os", "character varying", 20, "YES", None),
        ("device", "character varying", 20, "YES", None),
        ("screen", "character varying", 11, "YES", None),
        ("language", "character varying", 35, "YES", None),
        ("country", "character", 2, "YES", None),
        ("region", "character varying", 20, "YES", None),
        ("city", "character varying", 50, "YES", None),
        ("created_at", TIMESTAMPTZ, None, "YES", "CURRENT_TIMESTAMP"),
        ("distinct_id", "character varying", 50, "YES", None),
    ]
    assert _columns(umami_db, "session_data") == [
        ("session_data_id", "uuid", None, "NO", None),
        ("website_id", "uuid", None, "NO", None),
        ("session_id", "uuid", None, "NO", None),
        ("data_key", "character varying", 500, "NO", None),
        ("string_value", "character varying", 500, "YES", None),
        ("number_value", "numeric", 19, "YES", None),
        ("date_value", TIMESTAMPTZ, None, "YES", None),
        ("data_type", "integer", 32, "NO", None),
        ("created_at", TIMESTAMPTZ, None, "YES", "CURRENT_TIMESTAMP"),
        ("distinct_id", "character varying", 50, "YES", None),
    ]


@pytest.mark.umami_levels
def test_website_and_event_columns_follow_each_level(umami_db: str, umami_level: str) -> None:
    website = [column[0] for column in _columns(umami_db, "website")]
    base = ["website_id", "name", "domain", "reset_at", "user_id", "created_at", "updated_at", "deleted_at",
            "created_by", "team_id"]
    assert website == {"2.20.2": [*base[:3], "share_id", *base[3:]],
                       "3.1.0": [*base, "replay_enabled", "replay_config"],
                       "3.3": [*base, "recorder_enabled", "replay_config"]}[umami_level]
    event = _columns(umami_db, "website_event")
    vitals = ["cls", "fcp", "inp", "lcp", "ttfb"]
    assert [column[0] for column in event] == [
        "event_id", "website_id", "session_id", "created_at", "url_path", "url_query", "referrer_path",
        "referrer_query", "referrer_domain", "page_title", "event_type", "event_name", "visit_id", "tag",
        "fbclid", "gclid", "li_fat_id", "msclkid", "ttclid", "twclid", "utm_campaign", "utm_content",
        "utm_medium", "utm_source", "utm_term", "hostname", *(vitals if umami_level != "2.20.2" else [])]
    by_name = {column[0]: column for column in event}
    assert by_name["event_type"][3:] == ("NO", "1")
    assert by_name["url_path"][2:4] == (500, "NO")


@pytest.mark.umami_levels
def test_the_keys_and_indexes_the_sync_and_the_write_path_rely_on(umami_db: str, umami_level: str) -> None:
    indexes = _indexes(umami_db)
    with psycopg.connect(umami_db) as conn:
        foreign_keys = conn.execute(
            "select count(*) from information_schema.table_constraints "
            "where table_schema = 'public' and constraint_type = 'FOREIGN KEY'").fetchone()
    assert {("session", "created_at", False), ("session", "website_id, created_at", False),
            ("session", "session_id", True), ("session_data", "session_id, created_at", False),
            ("session_data", "created_at", False), ("website_event", "website_id, created_at", False),
            ("website_event", "website_id, session_id, created_at", False), ("website", "website_id", True)
            } <= indexes
    assert foreign_keys == (0,)
    stitching = {("session_link", "website_id, distinct_id, session_id", True),
                 ("session_link", "website_id, session_id", False),
                 ("session_data", "session_id, data_key", True)}
    assert indexes & stitching == (stitching if umami_level == "3.3" else set())
