"""The tie-heavy day the bench checks stage 2 on (``TieDay`` in ``local_stack.traffic``): whole-second hits,
sessions ending in groups on one second, some sessions on two hostnames; other websites as always."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from local_stack.traffic import TieDay, generate_traffic

pytestmark = pytest.mark.integration


def test_a_tie_day_website_has_whole_seconds_tie_groups_and_two_hostnames(umami_db: str) -> None:
    traffic = generate_traffic(umami_db, day=date(2026, 11, 26), websites=2, sessions=400, identified=100,
                               ties=TieDay(websites=(0,), group=6, two_hostnames=0.2))
    tied, other = traffic.website_ids
    with psycopg.connect(umami_db) as conn:
        fractional = dict(conn.execute(
            "select website_id::text, count(*) filter (where created_at <> date_trunc('second', created_at))"
            " from website_event group by website_id").fetchall())
        groups = conn.execute(
            "select count(*) filter (where n > 1), max(n) from (select last_at, count(*) as n from (select session_id,"
            " max(created_at) as last_at from website_event where website_id = %s group by session_id) s"
            " group by last_at) g", (tied,)).fetchone()
        hostnames = conn.execute(
            "select array_agg(distinct hostname order by hostname) from website_event where website_id = %s"
            " group by session_id having count(distinct hostname) > 1", (tied,)).fetchall()
        other_hostnames = conn.execute(
            "select count(distinct hostname) from website_event where website_id = %s", (other,)).fetchone()
        span = conn.execute("select min(created_at), max(created_at) from website_event").fetchone()

    assert fractional[tied] == 0 and fractional[other] > 0  # only the chosen website is on whole seconds
    assert groups is not None and groups[0] > 10 and groups[1] <= 6  # sessions end together, at most 6 a second
    assert len(hostnames) > 10
    assert all(pair == ["shop.example.com", "www.shop.example.com"] for (pair,) in hostnames)
    assert other_hostnames == (1,)
    assert span is not None and traffic.start <= span[0] and span[1] < traffic.end
