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
    """What the bodies push to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


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
