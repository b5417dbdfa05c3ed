"""Planning stage 2 against the local Umami API: the websites (checked or discovered) and sub-windows."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, at
from tests.umami_sync.stages.analytics.support import DAY
from umami_sync.settings import SyncSettings
from umami_sync.stages.analytics.jobs import UnknownWebsiteError
from umami_sync.stages.analytics.sizing import AnalyticsPlanError
from umami_sync.wiring import plan_analytics_jobs

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.database import Database

    from local_stack.umami_api import FakeUmami

pytestmark = pytest.mark.integration


def test_jobs_cover_discovered_websites_and_sub_windows(rows: UmamiRows) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    rows.website("9d7c4f52-94e4-4a36-9fd8-6b0e2f6f3b77", "Gone Site", deleted=True)

    jobs = plan_analytics_jobs(SyncSettings(sub_windows=2), DAY)

    assert sorted({(j.website_id, j.website_name) for j in jobs}) == [
        (WEBSITE, "Probe Site"), (OTHER_WEBSITE, "Other Site")]
    assert len(jobs) == 4
    assert {j.label for j in jobs if j.website_id == WEBSITE} == {"Probe Site · 2026-11-27 1/2",
                                                                  "Probe Site · 2026-11-27 2/2"}
    assert [(j.window_start, j.window_end) for j in jobs if j.website_id == WEBSITE] == [
        (at(0), at(12)), (at(12), at(0, day=28))]


def test_configured_websites_are_checked_and_named(rows: UmamiRows, umami_server: FakeUmami) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    umami_server.reset()

    jobs = plan_analytics_jobs(SyncSettings(website_ids=(OTHER_WEBSITE,), analytics_days_back=2), DAY)

    assert [(j.website_id, j.label, j.window_start) for j in jobs] == [
        (OTHER_WEBSITE, "Other Site · 2026-11-26..2026-11-27", at(0, day=26))]
    assert [record.path for record in umami_server.requests if record.method == "GET"] == [
        f"/api/websites/{OTHER_WEBSITE}", f"/api/websites/{OTHER_WEBSITE}/sessions"]  # sub_windows auto: its count


def test_a_configured_id_that_no_website_has_fails_the_plan_naming_it(rows: UmamiRows,
                                                                       umami_server: FakeUmami) -> None:
    ghost = str(uuid.uuid4())
    gone = rows.website(str(uuid.uuid4()), "Gone Site", deleted=True)

    for missing in (ghost, gone):
        with pytest.raises(UnknownWebsiteError, match=rf"website {missing}: Umami has no such website"):
            plan_analytics_jobs(SyncSettings(website_ids=(WEBSITE, missing)), DAY)


@contextmanager
def a_user_who_owns_no_website(umami_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUmami]:
    """The local API with the connection's user a plain user, and WEBSITE someone else's."""
    from local_stack.umami_api import FakeUmami

    rows = UmamiRows(umami_db)
    rows.website(WEBSITE, user_id=str(uuid.uuid4()))  # someone else's
    rows.close()
    with FakeUmami(umami_db, role="user") as fake:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
            {"conn_type": "http", "host": fake.url, "login": fake.username, "password": fake.password}))
        yield fake


def test_a_website_the_user_may_not_view_fails_the_plan(umami_db: str, connections: Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with (a_user_who_owns_no_website(umami_db, monkeypatch),
          pytest.raises(UnknownWebsiteError, match=rf"website {WEBSITE}: the connection's user may not view it")):
        plan_analytics_jobs(SyncSettings(website_ids=(WEBSITE,)), DAY)


@pytest.mark.parametrize("include_teams", [False, True])
def test_discovery_that_finds_no_website_fails_the_plan_saying_what_to_set(
        umami_db: str, connections: Database, monkeypatch: pytest.MonkeyPatch, include_teams: bool) -> None:
    """A team member who does not own the team (seen on a real 3.1.0 server: includeTeams lists only the teams
    the user owns) discovers nothing; so does any user who owns no website."""
    from umami_sync.stages.analytics.jobs import NoWebsiteError

    with (a_user_who_owns_no_website(umami_db, monkeypatch) as fake,
          pytest.raises(NoWebsiteError, match=rf"Umami lists no website for user '{fake.username}'.*website_ids")):
        plan_analytics_jobs(SyncSettings(include_team_websites=include_teams), DAY)


# --- sub_windows auto: as many tasks as keep each within max_task_rows ------------------------------------------

def test_planning_asks_each_website_its_count_and_splits_only_the_big_one(rows: UmamiRows,
                                                                           umami_server: FakeUmami) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    for hour in range(8):
        rows.event(rows.session(at(hour)), at(hour, 30))
    rows.event(rows.session(at(3), website_id=OTHER_WEBSITE), at(3, 30), website_id=OTHER_WEBSITE)
    umami_server.reset()

    jobs = plan_analytics_jobs(SyncSettings(max_task_rows=3), DAY)

    assert [(j.website_id, j.part, j.parts) for j in jobs if j.website_id == OTHER_WEBSITE] == [(OTHER_WEBSITE, 1, 1)]
    mine = [j for j in jobs if j.website_id == WEBSITE]  # 8 rows: thirds of the day, then thirds of the first
    assert [(j.window_start, j.window_end) for j in mine] == [
        (at(0), at(2, 40)), (at(2, 40), at(5, 20)), (at(5, 20), at(8)), (at(8), at(16)), (at(16), at(0, day=28))]
    assert [j.parts for j in mine] == [5] * 5 and all(j.contested for j in jobs)
    counts = [record for record in umami_server.requests if record.path.endswith("/sessions")]
    assert len(counts) == 1 + 3 + 3 + 1 and all(record.query["pageSize"] == "1" for record in counts)


def test_more_tasks_than_airflow_maps_fail_the_plan_saying_what_to_change(rows: UmamiRows,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "5")

    assert len(plan_analytics_jobs(SyncSettings(sub_windows=2), DAY)) == 4
    with pytest.raises(AnalyticsPlanError, match=r"needs 6 tasks \(2 websites x their sub-windows\), more than "
                                                 r"Airflow maps \(core.max_map_length = 5\). Lower sub_windows"):
        plan_analytics_jobs(SyncSettings(sub_windows=3), DAY)
