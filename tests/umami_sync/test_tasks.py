"""The task bodies: how a stage's result decides the task's fate (retried, or failed for good), with the stage
run for real against the local services and the Airflow context reduced to what the bodies use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pymongo.collection import Collection

from tests.factories import UmamiRows, add_user, at
from umami_sync import tasks
from umami_sync.runs import RunPlan
from umami_sync.settings import SyncSettings

if TYPE_CHECKING:
    from pymongo.database import Database

pytestmark = pytest.mark.integration


class TaskInstance:
    """What the bodies push to XCom, and the task states the SDK would answer."""

    dag_id, run_id = "umami_mongo_sync", "manual__1"

    def __init__(self, states: dict[str, str | None] | None = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.states = states or {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def get_task_states(self, *, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, Any]:
        """As ``RuntimeTaskInstance.get_task_states`` answers: ``<task id>_<map index>`` for a mapped instance."""
        assert (dag_id, run_ids) == (self.dag_id, [self.run_id])
        return {self.run_id: {key: state for key, state in self.states.items() if key.rsplit("_", 1)[0] in task_ids
                              or key in task_ids}}


class Task:
    def __init__(self, task_id: str, *, mapped: bool = False, upstream: tuple[Task, ...] = ()) -> None:
        self.task_id, self.is_mapped, self.upstream_list = task_id, mapped, list(upstream)


def run_plan(**settings: Any) -> dict[str, Any]:
    return RunPlan(settings=SyncSettings(**settings), interval_start=at(0), interval_end=at(0, day=28)).model_dump(
        mode="json")


def test_users_that_keep_changing_fail_the_try_so_that_its_retry_reads_again(
        connections: Database, umami_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent runs exhaust the compare-and-set rounds: the task fails with a retry, not for good."""
    rows = UmamiRows(umami_db)
    rows.session(at(9), distinct_id="busy@example.com")
    rows.close()
    user_id = add_user(connections["users"], "busy@example.com")
    real = Collection.bulk_write
    rounds: list[int] = []

    def another_run_first(self: Collection[Any], requests: Any, **options: Any) -> Any:
        rounds.append(1)
        connections["users"].update_one({"_id": user_id}, {"$set": {"session_id": f"other-{len(rounds)}"}})
        return real(self, requests, **options)

    monkeypatch.setattr(Collection, "bulk_write", another_run_first)
    ti = TaskInstance()

    with pytest.raises(AirflowException, match="kept changing while being written") as failed:
        tasks.session_sync(run_plan(mongo_collation="off"), {"ti": ti})

    assert not isinstance(failed.value, AirflowFailException)
    assert ti.pushed["result"]["failed"] == 1 and ti.pushed["result"]["stage"] == "sessions"


def test_users_the_server_refuses_fail_the_task_without_a_retry(
        connections: Database, umami_db: str) -> None:
    connections.create_collection("users", validator={"$jsonSchema": {"properties": {"plan": {"enum": ["free"]}}}})
    rows = UmamiRows(umami_db)
    rows.session(at(9), distinct_id="pro@example.com")
    rows.close()
    add_user(connections["users"], "pro@example.com")
    connections["users"].update_one({}, {"$set": {"plan": "pro"}}, bypass_document_validation=True)

    with pytest.raises(AirflowFailException, match=r"refused 1 changes, which a retry cannot change"):
        tasks.session_sync(run_plan(), {"ti": TaskInstance()})


def test_more_tasks_than_airflow_maps_fail_the_plan_without_a_retry(umami_server: Any, umami_db: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rows = UmamiRows(umami_db)
    rows.website()
    rows.close()
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    ti = TaskInstance()

    with pytest.raises(AirflowFailException, match=r"needs 3 tasks .*core\.max_map_length = 2"):
        tasks.plan_analytics(run_plan(sub_windows=3), {"ti": ti})

    assert ti.pushed["result"]["stage"] == "plan" and "max_map_length" in ti.pushed["result"]["error"]


def test_a_connection_that_breaks_the_rule_fails_the_plan_without_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
        {"conn_type": "http", "host": "https://api.umami.is/v1", "extra": {"api_key": "key\nwith-a-line-break"}}))
    ti = TaskInstance()

    with pytest.raises(AirflowFailException, match="control character") as failed:
        tasks.plan_analytics(run_plan(), {"ti": ti})

    assert "with-a-line-break" not in str(failed.value) and ti.pushed["result"]["stage"] == "plan"


def test_the_status_task_reads_the_state_of_each_map_index_of_the_mapped_task_upstream() -> None:
    status = Task("record_status", upstream=(Task("plan_analytics"), Task("analytics_sync", mapped=True)))
    ti = TaskInstance({"analytics_sync_0": "success", "analytics_sync_1": "failed", "analytics_sync_12": None,
                       "plan_analytics": "success"})

    assert tasks.mapped_states({"task": status, "ti": ti}) == {0: "success", 1: "failed", 12: None}
    assert tasks.mapped_states({"task": Task("record_status", upstream=(Task("plan_run"),)), "ti": ti}) == {}


def test_the_plan_hands_on_every_job_and_the_count_requests_of_sub_windows_auto(umami_server: Any,
                                                                                 umami_db: str) -> None:
    rows = UmamiRows(umami_db)
    rows.website()
    for hour in (3, 9, 15):  # 3 list rows: two in the first half of the day, one in the second
        rows.event(rows.session(at(hour)), at(hour))
    rows.close()
    ti = TaskInstance()

    jobs = tasks.plan_analytics(run_plan(max_task_rows=2), {"ti": ti})

    plan = ti.pushed["result"]
    assert [job["label"] for job in plan["jobs"]] == ["Probe Site · 2026-11-27 1/2", "Probe Site · 2026-11-27 2/2"]
    assert [(job["window_start"], job["window_end"]) for job in plan["jobs"]] == [
        (job["window_start"], job["window_end"]) for job in jobs]  # map index i is the plan's job i
    assert (plan["count_requests"], plan["logins"]) == (3, 1)  # the day (3 rows), then each half
    assert plan["requests"] == 1 + 1 + 3  # the login, the website list, the counts


def test_a_plan_run_that_fails_stores_why_before_it_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", '{"page_size": 0}')
    ti = TaskInstance()

    with pytest.raises(AirflowFailException, match="page_size"):
        tasks.plan({"ti": ti, "params": {}, "data_interval_start": at(0), "data_interval_end": at(0, day=28)})

    assert ti.pushed["result"] == {"stage": "plan_run", "error": "invalid umami_sync setting: page_size: Input "
                                                                 "should be greater than or equal to 1"}
