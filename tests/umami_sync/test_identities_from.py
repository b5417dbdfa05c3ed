"""The whole sync (stage 1, then every stage-2 job of the run) on a generated day of Umami traffic, once through
Umami's database and once through its API only (Umami Cloud mode of the local API, no ``umami_db`` read): the two
leave the same users, byte for byte.

On this day every session's ``created_at`` is its first event, and the identify of an identified session writes
its data after that, so the identity times the API shows are exactly the database's (README, "Umami Cloud":
what differs where a session began before its first event is in ``tests/umami_sync/stages/test_sessions_api.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import pytest

from local_stack.traffic import generate_traffic, seed_users
from local_stack.umami_api import FakeUmami
from tests.conftest import documents
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job, sync_sessions

if TYPE_CHECKING:
    from pymongo.database import Database

    from umami_sync.results import UmamiReads

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 27)
INTERVAL = DataInterval(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
RUN_AT = datetime(2026, 11, 28, 1, tzinfo=UTC)
API_KEY = "cloud-key-1"


def run(mode: UmamiReads, collection: str, *, sub_windows: int, dry_run: bool = False) -> list[str | None]:
    """Stage 1 and every job of stage 2 reading Umami ``mode``; the errors (None for each part that succeeded)."""
    settings = SyncSettings(identities_from=mode, users_collection=collection, sub_windows=sub_windows,
                            page_size=100, dry_run=dry_run)
    sessions = sync_sessions(settings, INTERVAL, now=RUN_AT)
    assert sessions.mode == mode
    results = [sync_analytics_job(settings, job, interval=INTERVAL, now=RUN_AT)
               for job in plan_analytics_jobs(settings, INTERVAL)]
    assert {result.mode for result in results} == {mode}
    if dry_run:  # stage 2 counts the users stage 1 would have given their sessions: read through the API too
        assert sessions.changes > 0 and all(result.changes > 0 for result in results)
    return [sessions.error, *(result.error for result in results)]


@pytest.mark.parametrize("sub_windows", [1, 2])
def test_database_and_api_leave_the_same_users_on_a_generated_day(
        connections: Database, umami_db: str, mongo_uri: str, monkeypatch: pytest.MonkeyPatch,
        sub_windows: int) -> None:
    traffic = generate_traffic(umami_db, day=DAY, websites=2, sessions=400, identified=120)
    for collection in ("users", "users_api"):
        seed_users(mongo_uri, connections.name, collection, identities=traffic.identity_emails(), total=300)
    with FakeUmami(umami_db, api_key=API_KEY, rate_limit=100_000) as cloud:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
            {"conn_type": "http", "host": f"{cloud.url}/v1", "extra": {"api_key": API_KEY}}))
        through_database = run("database", "users", sub_windows=sub_windows)
        before = documents(connections["users_api"])
        rehearsal = run("api", "users_api", sub_windows=sub_windows, dry_run=True)
        assert documents(connections["users_api"]) == before
        cloud.reset()
        through_api = run("api", "users_api", sub_windows=sub_windows)
        api_requests = len(cloud.requests)

    assert set(through_database) == set(rehearsal) == set(through_api) == {None}
    enriched = connections["users"].count_documents({"umamiAnalytics": {"$exists": True}})
    assert enriched > 50 and connections["users"].count_documents({"session_id": {"$exists": True}}) >= enriched
    assert documents(connections["users_api"]) == documents(connections["users"])
    assert api_requests < 4 * traffic.sessions  # bounded: nothing is read per session more than a few times
