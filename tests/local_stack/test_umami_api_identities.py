"""FakeUmami's routes that identities are read from when there is no database (Umami Cloud): a session's detail
and properties, the session list's filters, a website's session-data keys and session stats; in Cloud mode with
the API key, the per-key rate limit and its 429s.

Bodies follow Umami 3.1.0's source (``src/queries/sql/sessions/getWebsiteSession.ts``, ``getSessionData.ts``,
``getSessionDataProperties.ts``, ``getWebsiteSessionStats.ts``; filters: ``src/lib/params.ts``
``parseFilterValue`` and ``src/lib/prisma.ts`` ``mapFilter``/``getQueryParams``), and the recorded bodies where a
real server's answer was captured.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import requests

from local_stack.umami_api import FakeUmami
from tests.factories import UmamiRows, at

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

WEBSITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
ALICE = "8b046da9-3d41-5054-8060-170787f99fe0"  # identify(id, data), then a page view
BOB = "23fbc8b7-769e-5606-8fca-3643d50f5683"  # a page view, identify({email}) without an id, a custom event
FIRST = "178c4898-da39-5b0e-a3ca-e86167683dfe"  # anonymous
CAROL = "ab7b69b0-fe82-54aa-ac02-87b088fb522a"  # identified, no event at all
KEY = {"x-umami-api-key": "key-1"}
HOUR = {"startAt": 1795791600000, "endAt": 1795795199999}  # 2026-11-27 15:00-16:00 UTC, the captured traffic


def recorded(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())


@pytest.fixture
def cloud(umami_rows_db: str) -> Iterator[FakeUmami]:
    """The local API in Cloud mode over the rows a real 3.1.0 wrote, 6 calls per minute per key."""
    with FakeUmami(umami_rows_db, api_key="key-1", rate_limit=6, rate_window_seconds=60) as fake:
        yield fake


def get(fake: FakeUmami, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{fake.url}/v1/websites/{WEBSITE}/{path}", params=params, headers=KEY, timeout=10)


def test_cloud_serves_a_sessions_detail_and_properties_with_the_api_key(cloud: FakeUmami,
                                                                       umami_fixtures: Path) -> None:
    assert get(cloud, f"sessions/{ALICE}").json() == recorded(umami_fixtures, "api_session_detail.json")
    assert get(cloud, f"sessions/{ALICE}/properties").json() == recorded(umami_fixtures,
                                                                         "api_session_properties.json")
    assert get(cloud, f"sessions/{CAROL}").json() == {}  # no event: the detail joins website_event
    assert [row["dataKey"] for row in get(cloud, f"sessions/{CAROL}/properties").json()] == []
    refused = requests.get(f"{cloud.url}/v1/websites/{WEBSITE}/sessions/{ALICE}/properties",
                           headers={"x-umami-api-key": "key-2"}, timeout=10)
    assert refused.status_code == 401
    assert requests.get(f"{cloud.url}/api/websites/{WEBSITE}/sessions/{ALICE}", headers=KEY,
                        timeout=10).status_code == 404


def test_cloud_limits_detail_and_properties_reads_per_key_and_answers_429(cloud: FakeUmami) -> None:
    codes = [get(cloud, f"sessions/{ALICE}" + ("/properties" if n % 2 else "")).status_code for n in range(7)]

    assert codes == [200] * 6 + [429]
    throttled = get(cloud, f"sessions/{ALICE}/properties")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "too-many-requests"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    cloud.reset()
    cloud.faults.throttle_next = 1
    assert [get(cloud, f"sessions/{ALICE}").status_code for _ in range(2)] == [429, 200]


@pytest.mark.parametrize(("value", "expected"), [
    ("re..", {ALICE}),  # a regex every non-empty distinct id matches: sessions with one
    ("eq.Alice@Example.com", {ALICE}),
    ("Alice@Example.com,carol@example.com", {ALICE}),  # equals is the default operator; a comma lists values
    ("c.alice", {ALICE}),  # contains: ilike %value%
    ("dnc.alice", set()),  # NULL distinct ids match neither
    ("nre..", set()),
    ("s.", {ALICE, BOB, FIRST}),  # "is set" gives no clause on 3.1.0's PostgreSQL: every session
    ("ns.", {ALICE, BOB, FIRST}),
])
def test_the_session_list_filters_on_distinct_id_as_umami_3_1_does(cloud: FakeUmami, value: str,
                                                                   expected: set[str]) -> None:
    page = get(cloud, "sessions", **HOUR, distinctId=value).json()

    assert {row["id"] for row in page["data"]} == expected
    assert page["count"] == len(expected)


def test_session_data_keys_count_the_sessions_with_events_in_the_range(cloud: FakeUmami) -> None:
    keys = get(cloud, "session-data/properties", **HOUR).json()

    assert sorted(keys, key=lambda key: key["propertyName"]) == [
        {"propertyName": "email", "total": 2}, {"propertyName": "plan", "total": 1},
        {"propertyName": "seats", "total": 1}]  # Carol's e-mail is not counted: her session has no event
    assert get(cloud, "session-data/properties", startAt=HOUR["startAt"]).status_code == 400


def test_session_stats_count_the_sessions_with_events_in_the_range(cloud: FakeUmami) -> None:
    stats = get(cloud, "sessions/stats", **HOUR).json()

    assert stats == {"pageviews": {"value": 4}, "visitors": {"value": 3}, "visits": {"value": 3},
                     "countries": {"value": 2}, "events": {"value": 1}}


@pytest.mark.umami_levels("2.20.2")
def test_umami_2_ignores_list_filters_and_filters_keys_by_name(umami_db: str) -> None:
    rows = UmamiRows(umami_db, "2.20.2")
    rows.website()
    known = rows.session(at(9), distinct_id="dora@example.com")
    rows.event(known, at(9))
    rows.session_data(known, at(9), value="dora@example.com")
    anonymous = rows.session(at(10))
    rows.event(anonymous, at(10))
    rows.close()
    day = {"startAt": int(at(0).timestamp() * 1000), "endAt": int(at(0, day=28).timestamp() * 1000) - 1}
    with FakeUmami(umami_db, version="2.20.2", api_key="key-1") as fake:
        listed = get(fake, "sessions", **day, distinctId="re..").json()
        keys = get(fake, "session-data/properties", **day, propertyName="plan").json()

    assert {row["id"] for row in listed["data"]} == {known, anonymous}  # 2.20.2's schema strips the filter
    assert keys == []
