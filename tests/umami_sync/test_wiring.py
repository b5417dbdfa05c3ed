"""The hooks the wiring builds, end to end against the local Umami API (real HTTP), PostgreSQL and MongoDB: the DAG's
rate limit shared by tasks running at once, a whole stage-2 task on a self-hosted API key, an account with
two-factor authentication, and the client's waits in the task's result."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from local_stack.umami_api import FakeUmami
from tests.factories import UmamiRows, add_user, at
from tests.umami_sync.stages.analytics.support import DAY, FAST, RUN_AT, truth, written
from umami_sync.api_tasks import ANALYTICS_TASKS, API_TASKS, task_share
from umami_sync.results import AnalyticsResult
from umami_sync.settings import SyncSettings
from umami_sync.stages.analytics.jobs import AnalyticsJob
from umami_sync.umami.errors import UmamiCredentialsError
from umami_sync.wiring import Wiring, plan_analytics_jobs, sync_analytics_job, sync_sessions

if TYPE_CHECKING:
    from pymongo.database import Database

pytestmark = pytest.mark.integration

CLOUD_KEY = "cloud-key-Wq2-never-logged"
SELF_HOSTED_KEY = "umami_" + "Zr5neverlogged" * 2 + "ef"
WEBSITES = [f"7e1c0a5e-0000-4000-8000-00000000000{number}" for number in range(1, 5)]


def set_umami_api(monkeypatch: pytest.MonkeyPatch, host: str, **fields: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps({"conn_type": "http", "host": host, **fields}))


def day_of_traffic(dsn: str, users: Database, websites: list[str], sessions: int) -> None:
    """``sessions`` identified sessions on each website, each with two page views on two hostnames (so that the
    task reads each one's events too), and their users, who know their sessions (stage 1 ran)."""
    rows = UmamiRows(dsn)
    for website in websites:
        rows.website(website, f"Site {website[-1]}")
        for number in range(sessions):
            email = f"u{number}@site{website[-1]}.example.com"
            add_user(users["users"], email)
            session = rows.session(at(8 + number), distinct_id=email, website_id=website)
            rows.event(session, at(8 + number), website_id=website, hostname="a.example.com")
            rows.event(session, at(8 + number, 30), website_id=website, hostname="b.example.com")
    rows.close()
    sync_sessions(SyncSettings(session_window_hours=24), DAY, now=RUN_AT)


def test_each_task_sends_its_share_and_the_settings_keep_one_for_each() -> None:
    shares = [task_share(calls, pooled=False) for calls in (None, 50, API_TASKS, 59)]
    assert shares == [None, 8, 1, 9]
    assert [task_share(calls, pooled=True) for calls in (None, 50)] == [None, 50]  # one task at a time: all of it
    with pytest.raises(ValueError, match="rate_limit_calls"):
        SyncSettings(rate_limit_calls=API_TASKS - 1)


def test_in_the_configured_pool_a_task_is_given_the_whole_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SyncSettings(rate_limit_calls=50)
    shared = Wiring(settings).umami_api.transport
    monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__API_POOL", "umami_api")
    pooled = Wiring(settings).umami_api.transport

    assert (shared.rate_limit_calls, pooled.rate_limit_calls) == (8, 50)


def test_four_analytics_tasks_at_once_stay_within_the_dags_limit_on_umami_cloud(
    connections: Database, umami_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    day_of_traffic(umami_db, connections, WEBSITES, sessions=6)
    limit, period = 2 * API_TASKS, 1.0  # a share of 2 per task and period
    settings = SyncSettings(**FAST, page_size=2, rate_limit_calls=limit, rate_limit_period_seconds=period)
    jobs = [AnalyticsJob(website_id=website, window_start=DAY.start, window_end=DAY.end, run_websites=tuple(WEBSITES))
            for website in WEBSITES]
    assert len(jobs) == ANALYTICS_TASKS
    # Umami Cloud's per-key limiter, with real 429s
    with FakeUmami(umami_db, api_key=CLOUD_KEY, rate_limit=limit, rate_window_seconds=period) as fake:
        set_umami_api(monkeypatch, f"{fake.url}/v1", extra={"api_key": CLOUD_KEY})

        def task(job: AnalyticsJob) -> AnalyticsResult:  # its own wiring and hook, as each task has
            return sync_analytics_job(settings, job, interval=DAY, now=RUN_AT)

        with ThreadPoolExecutor(max_workers=ANALYTICS_TASKS) as pool:
            results = list(pool.map(task, jobs))

        statuses = [record.status for record in fake.requests]
    assert [result.error for result in results] == [None] * ANALYTICS_TASKS
    assert statuses.count(429) == 0
    assert len(statuses) == sum(result.requests for result in results) > limit  # more than one window's worth
    assert all(result.rate_limited_seconds > 0 and result.retries == 0 for result in results)
    assert sum(result.modified for result in results) == 4 * 6
    expected = {}
    for website in WEBSITES:
        expected |= truth(umami_db, website, DAY)
    assert written(connections) == expected


def test_a_whole_stage_2_task_runs_on_a_self_hosted_api_key(
    connections: Database, umami_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    day_of_traffic(umami_db, connections, WEBSITES[:1], sessions=3)
    with FakeUmami(umami_db, api_keys={SELF_HOSTED_KEY}) as fake:
        set_umami_api(monkeypatch, fake.url, extra={"api_key": SELF_HOSTED_KEY})
        settings = SyncSettings(**FAST, page_size=2)

        (job,) = plan_analytics_jobs(settings, DAY)  # discovery and the row count of sub_windows: auto
        result = sync_analytics_job(settings, job, interval=DAY, now=RUN_AT)

        calls = fake.requests
    assert (job.website_id, result.error, result.modified, result.logins) == (WEBSITES[0], None, 3, 0)
    assert written(connections) == truth(umami_db, WEBSITES[0], DAY)
    assert all(record.status == 200 for record in calls)
    assert {record.path.split("/")[2] for record in calls} == {"websites"}  # never /api/auth, /api/users...


def test_a_two_factor_account_fails_the_task_for_good_and_its_partial_token_reaches_no_result(
    connections: Database, umami_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    day_of_traffic(umami_db, connections, WEBSITES[:1], sessions=1)
    with FakeUmami(umami_db, two_factor=True) as fake:
        set_umami_api(monkeypatch, fake.url, login=fake.username, password=fake.password)
        settings = SyncSettings(**FAST)
        job = AnalyticsJob(website_id=WEBSITES[0], window_start=DAY.start, window_end=DAY.end)

        with pytest.raises(UmamiCredentialsError, match="two-factor"):
            plan_analytics_jobs(settings, DAY)  # plan_analytics fails at once on this error
        result = sync_analytics_job(settings, job, interval=DAY, now=RUN_AT)

        logins = [record.status for record in fake.requests if record.path == "/api/auth/login"]
        partials = fake.partial_tokens
    assert result.error is not None and "user 'admin' has two-factor authentication" in result.error
    assert "API key" in result.error
    assert (result.retryable, result.worth_retrying, result.modified) == (False, False, 0)
    assert logins == [200, 200]  # one per hook, never retried
    assert len(partials) == 2
    stored = result.model_dump_json()  # what the task stores in XCom
    assert not any(partial in stored for partial in partials)


def test_the_seconds_a_task_waited_before_retries_reach_its_result_and_its_log_line(
    connections: Database, umami_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    day_of_traffic(umami_db, connections, WEBSITES[:1], sessions=1)
    with FakeUmami(umami_db) as fake:
        set_umami_api(monkeypatch, fake.url, login=fake.username, password=fake.password)
        fake.faults.throttle_next, fake.faults.retry_after_seconds = 2, 0.25  # two 429s asking for a quarter second
        job = AnalyticsJob(website_id=WEBSITES[0], window_start=DAY.start, window_end=DAY.end)

        result = sync_analytics_job(SyncSettings(**FAST), job, interval=DAY, now=RUN_AT)

    assert (result.error, result.retries) == (None, 2)
    assert 0.5 <= result.waited_seconds < 5  # each wait at least what Retry-After asked
    assert f"retries=2 waited={result.waited_seconds:.1f}s rate_limited=0.0s" in result.summary()
    assert AnalyticsResult.model_validate_json(result.model_dump_json()).waited_seconds == result.waited_seconds


def test_auto_looks_umami_databases_connection_up_once_for_the_mode_and_the_hook(
        connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a secrets backend (Key Vault) every look-up is a request: the one that decides the mode serves the hook."""
    from airflow.sdk import BaseHook

    looked_up: list[str] = []
    look_up = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def counted(cls: type[BaseHook], conn_id: str) -> object:
        looked_up.append(conn_id)
        return look_up(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counted))
    wiring = Wiring(SyncSettings())

    database = wiring.identities()
    database.hook.get_conn().close()  # type: ignore[union-attr]

    assert wiring.mode == "database"
    assert looked_up.count("umami_db") == 1
