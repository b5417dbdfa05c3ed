"""Fixtures of the stage-2 tests that run against the local services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from local_stack.umami_api import FakeUmami
from tests.conftest import umami_api_connection
from tests.factories import WEBSITE, UmamiRows
from tests.umami_sync.stages.analytics.support import DAY, FAST, RUN_AT, job
from umami_sync.settings import SyncSettings
from umami_sync.wiring import sync_analytics_job, sync_sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from umami_sync.results import AnalyticsResult
    from umami_sync.windows import DataInterval


@pytest.fixture
def rows(umami_server: FakeUmami, umami_db: str, umami_level: str) -> Iterator[UmamiRows]:
    umami = UmamiRows(umami_db, umami_level)
    umami.website()
    yield umami
    umami.close()


@pytest.fixture
def sync(mongo_collation: str) -> Callable[..., AnalyticsResult]:
    """One analytics job with ``overrides`` as settings, on the test's write path."""

    def run(interval: DataInterval = DAY, website_id: str = WEBSITE, **overrides: Any) -> AnalyticsResult:
        now = overrides.pop("now", RUN_AT)
        settings = SyncSettings(**{**FAST, "mongo_collation": mongo_collation, **overrides})
        return sync_analytics_job(settings, job(interval, website_id), interval=interval, now=now)

    return run


@pytest.fixture
def identify(mongo_collation: str) -> Callable[[], None]:
    """Stage 1 over the last 30 days, on the test's write path: users learn their session ids."""

    def run() -> None:
        sync_sessions(SyncSettings(session_window_hours=24 * 30, mongo_collation=mongo_collation), DAY, now=RUN_AT)

    return run


@pytest.fixture
def linked_server(rows: UmamiRows, umami_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUmami]:
    """The local Umami API speaking the newest code (version "3.4") over the test's database, as ``umami_api``:
    its activity route answers a linked session's person over whole months (188b628c)."""
    with FakeUmami(umami_db, version="3.4") as server:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", umami_api_connection(server))
        yield server
