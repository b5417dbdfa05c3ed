"""The whole DAG: its integrity in a DagBag, and real runs through ``dag.test()`` against real services."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import bson
import pytest

from local_stack.postgres import run_sql_file
from local_stack.smtp import LocalSmtp
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.database import Database

    from local_stack.umami_api import FakeUmami

DAGS = Path(__file__).resolve().parents[2] / "dags"
LOGICAL_DATE = datetime(2026, 11, 28, tzinfo=UTC)  # a manual run syncs the day before: 2026-11-27
RUN_AFTER = LOGICAL_DATE


@pytest.fixture(scope="module")
def dagbag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.fixture(scope="module")
def dag(dagbag: Any) -> Any:
    return dagbag.dags["umami_mongo_sync"]


def test_dagbag_imports_cleanly(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert list(dagbag.dag_ids) == ["umami_mongo_sync"]


def test_dag_shape(dag: Any) -> None:
    assert {task.task_id for task in dag.tasks} == {
        "plan_run", "session_sync", "plan_analytics", "analytics_sync", "record_status", "check_run"}
    assert dag.max_active_runs == 1 and not dag.catchup
    assert {"umami", "mongodb"} <= set(dag.tags)
    assert "umami_mongo_sync" in dag.doc_md and "systemconfigs" in dag.doc_md
    assert set(dag.params) == {"website_ids", "dry_run", "date_from", "date_to"}
    # The trigger form marks a field required unless its type allows null: none of these is required.
    assert all("null" in dag.params.get_param(name).schema["type"] for name in dag.params)
    assert "Settings > Websites" in dag.params.get_param("website_ids").description
    status = dag.get_task("record_status")
    assert status.trigger_rule == "all_done"
    assert status.outlets[0].name == "umami_enriched_users_events"  # an alias: it may emit the asset
    # umami_enriched_users, or nothing
    check = dag.get_task("check_run")
    assert check.upstream_task_ids == {"record_status"} and not check.downstream_task_ids  # the run's last word
    assert check.trigger_rule == "all_success" and check.retries == 0
    assert dag.get_task("session_sync").retries >= 1
    assert dag.get_task("session_sync").retry_exponential_backoff
    assert dag.get_task("analytics_sync").upstream_task_ids == {"plan_run", "plan_analytics"}
    assert dag.get_task("plan_analytics").upstream_task_ids == {"plan_run", "session_sync"}
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"  # daily [start, end) intervals


def test_tasks_declare_what_they_read_and_write_for_lineage(dag: Any) -> None:
    """Inlets and outlets in the forms the OpenLineage provider turns into datasets (postgres:// host/db/schema/
    table, mongodb:// host/db/collection), named by connection ids: the DAG reads no connection when parsed."""
    def uris(assets: list[Any]) -> list[str]:
        return [asset.uri for asset in assets if hasattr(asset, "uri")]

    table = "postgres://umami_db:5432/umami_db/public/{}".format
    users, status = "mongodb://users_mongo:27017/users_mongo/users", "mongodb://users_mongo:27017/users_mongo/systemconfigs"
    assert {task.task_id: (uris(task.inlets), uris(task.outlets)) for task in dag.tasks} == {
        "plan_run": ([], []),
        "session_sync": ([table("session"), table("session_data"), table("session_link"),
                          "https://umami_api/api/websites"], [users]),
        "plan_analytics": (["https://umami_api/api/websites"], []),
        "analytics_sync": (["https://umami_api/api/websites", table("session"), table("session_data"),
                            table("session_link"), table("website_event")], [users]),
        "record_status": ([], [status]),
        "check_run": ([], []),
    }
    assert all(asset.normalized_uri == asset.uri for task in dag.tasks for asset in [*task.inlets, *task.outlets]
               if getattr(asset, "uri", "").startswith(("postgres", "mongodb")))  # the providers' forms


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def real_world(umami_server: FakeUmami, connections: Database, umami_db: str, umami_fixtures: Path) -> Database:
    """Umami holding the rows a real 3.1.0 server wrote; users as the application keeps them."""
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    add_user(connections["users"], "alice@example.com")
    add_user(connections["users"], "Bob@Example.com")
    add_user(connections["users"], "carol@example.com", isDeleted=True)
    return connections


RUN_IDS = itertools.count()


@pytest.fixture(autouse=True)
def run_after() -> datetime:
    """A run_after of this test's own: the run id derives from it, so tests never share a run, and two
    calls within one test (same run id) clear and re-run the same run, as "Clear" in the UI does."""
    globals()["RUN_AFTER"] = LOGICAL_DATE + timedelta(minutes=next(RUN_IDS))
    return RUN_AFTER


def run_dag(dag: Any, logical_date: datetime = LOGICAL_DATE, **params: Any) -> Any:
    conf = {"website_ids": [], "dry_run": False, "date_from": None, "date_to": None, **params}  # dag.test keeps
    return dag.test(logical_date=logical_date, run_after=RUN_AFTER + (logical_date - LOGICAL_DATE),  # the last conf
                    run_conf=conf)


def states(run: Any) -> dict[str, str]:
    return {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_run_enriches_users_and_records_status(dag: Any, real_world: Database) -> None:
    run = run_dag(dag)

    assert str(run.state) == "success", states(run)
    alice = real_world["users"].find_one({"email": "alice@example.com"})
    assert alice["session_id"] == "8b046da9-3d41-5054-8060-170787f99fe0"
    assert alice["umamiAnalytics"]["city"] == "San Francisco"
    assert alice["umamiAnalytics"]["views"] == 1
    assert isinstance(alice["umamiAnalytics"]["lastAt"], datetime)
    bob = real_world["users"].find_one({"email": "Bob@Example.com"})
    assert bob["umamiAnalytics"]["id"] == "23fbc8b7-769e-5606-8fca-3643d50f5683"
    assert "umamiAnalytics" not in real_world["users"].find_one({"email": "carol@example.com"})
    status = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert status["lastRun"]["status"] == "success"
    assert status["lastSuccessfulSync"] == datetime(2026, 11, 28)
    site = status["websiteSyncStatus"]["266abb41-957e-4dd3-8229-6a601f80a9db"]
    assert (site["sessionsProcessed"], site["errorCount"], site["lastDaySynced"]) == (3, 0, "2026-11-27")


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_running_the_same_interval_twice_changes_nothing(dag: Any, real_world: Database) -> None:
    assert str(run_dag(dag).state) == "success"
    users_after_first = [bson.encode(user) for user in real_world["users"].find().sort("_id")]
    status_after_first = bson.encode(real_world["systemconfigs"].find_one({"_id": "global"}))

    second = run_dag(dag)

    assert str(second.state) == "success"
    figures = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id, key="result", map_indexes=ti.map_index)
               for ti in second.get_task_instances() if ti.task_id in {"session_sync", "analytics_sync"}}
    assert figures["session_sync"]["modified"] == 0 and figures["analytics_sync"]["modified"] == 0
    assert [bson.encode(user) for user in real_world["users"].find().sort("_id")] == users_after_first
    assert bson.encode(real_world["systemconfigs"].find_one({"_id": "global"})) == status_after_first


def no_retries(dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for task in dag.tasks:  # dag.test() would wait out the real retry delays
        monkeypatch.setattr(task, "retries", 0)


def a_website_whose_list_loses_a_row(umami_db: str, umami_server: FakeUmami) -> None:
    """Another website, "Other Site", whose session list never serves one of its rows: its task fails."""
    rows = UmamiRows(umami_db)
    rows.website(OTHER_WEBSITE, "Other Site")
    lost = rows.session(at(9), website_id=OTHER_WEBSITE)
    rows.event(lost, at(9), website_id=OTHER_WEBSITE)
    rows.close()
    umami_server.faults.hidden_ids = {lost}


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_failing_website_fails_the_run_after_the_others_are_written(dag: Any, real_world: Database,
                                                                     umami_server: FakeUmami, umami_db: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    no_retries(dag, monkeypatch)
    a_website_whose_list_loses_a_row(umami_db, umami_server)

    run = run_dag(dag)

    assert str(run.state) == "failed", states(run)
    assert states(run)["record_status[-1]"] == "success"  # recorded the run and emitted its event
    assert states(run)["check_run[-1]"] == "failed"  # then failed the run
    assert [event["runStatus"] for event in enriched_users_events(run.run_id)] == ["partial"]  # once
    alice = real_world["users"].find_one({"email": "alice@example.com"})
    assert alice["umamiAnalytics"]["city"] == "San Francisco"
    status = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert status["lastRun"]["status"] == "partial"
    assert status["websiteSyncStatus"][OTHER_WEBSITE]["errorCount"] == 1
    assert "1 of 1 rows of Umami's session list could not be read" in status["lastRun"]["errors"][OTHER_WEBSITE]
    assert "lastSuccessfulSync" not in status


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_configured_websites_that_umami_does_not_show_fail_the_plan(dag: Any, real_world: Database,
                                                                   umami_server: FakeUmami,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    no_retries(dag, monkeypatch)
    ghost = "0e9c4a51-1111-4222-8333-944455556666"

    run = run_dag(dag, website_ids=["266abb41-957e-4dd3-8229-6a601f80a9db", ghost])

    assert str(run.state) == "failed", states(run)
    assert states(run)["plan_analytics[-1]"] == "failed"
    status = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert status["lastRun"]["problems"] == [
        f"analytics could not be planned: website {ghost}: Umami has no such website (or it was deleted)"]


def figures(run: Any) -> dict[str, Any]:
    """The XCom ``result`` of each stage task (the mapped ones by label)."""
    return {ti.rendered_map_index or ti.task_id: ti.xcom_pull(task_ids=ti.task_id, key="result",
                                                              map_indexes=ti.map_index)
            for ti in run.get_task_instances() if ti.task_id in {"session_sync", "analytics_sync"}}


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_dry_run_writes_nothing_and_reports_what_the_real_run_then_does(dag: Any, real_world: Database) -> None:
    before = list(real_world["users"].find())

    dry = figures(run_dag(dag, dry_run=True))

    assert list(real_world["users"].find()) == before
    assert real_world["systemconfigs"].count_documents({}) == 0
    assert [i["name"] for i in real_world["users"].list_indexes()] == ["_id_"]
    real = figures(run_dag(dag))
    assert set(dry) == set(real) == {"session_sync", "Probe Site · 2026-11-27"}
    for task in real:
        assert dry[task]["dry_run"] and not real[task]["dry_run"]
        assert (dry[task]["changes"], dry[task]["modified"]) == (real[task]["modified"], 0), task
    assert real["Probe Site · 2026-11-27"]["modified"] == 2  # stage 1's session ids were counted in
    dry_again = figures(run_dag(dag, dry_run=True))
    assert all(dry_again[task]["changes"] == 0 for task in dry_again)  # synced data: nothing to change


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_each_stage_task_stores_its_figures_once(dag: Any, real_world: Database) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    run = run_dag(dag)

    with create_session() as session:
        stored = session.query(XComModel.task_id, XComModel.map_index, XComModel.key).filter(
            XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id).all()
    keys = sorted((task, key) for task, _, key in stored if task in {"session_sync", "analytics_sync"})
    assert keys == [("analytics_sync", "result"), ("session_sync", "result")]


def enriched_users_events(run_id: str | None = None) -> list[dict[str, Any]]:
    """The extras of the ``umami_enriched_users`` events in the metadata database (of one run, when given)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(
            AssetModel.name == "umami_enriched_users")
        if run_id is not None:
            query = query.filter(AssetEvent.source_run_id == run_id)
        return [event.extra for event in query.order_by(AssetEvent.id)]


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_the_asset_is_emitted_only_when_a_real_run_changed_users(dag: Any, real_world: Database) -> None:
    events = enriched_users_events
    existing = len(events())
    run_dag(dag, dry_run=True)
    assert len(events()) == existing  # a dry run is a rehearsal: no downstream DAG may start
    run_dag(dag)
    assert events()[existing:] == [{"dataIntervalStart": "2026-11-27T00:00:00+00:00",
                                    "dataIntervalEnd": "2026-11-28T00:00:00+00:00",
                                    "modifiedUsers": {"sessions": 2, "analytics": 2}, "runStatus": "success"}]
    run_dag(dag)
    assert len(events()) == existing + 1  # a run that modified nothing emits nothing


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_refused_login_fails_at_once_without_retries(dag: Any, real_world: Database, umami_server: FakeUmami,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
        {"conn_type": "http", "host": umami_server.url, "login": "admin", "password": "not-the-password"}))

    run = run_dag(dag)  # the DAG's own retries (3, from 2 minutes) stay on: a retry would show here

    assert states(run)["plan_analytics[-1]"] == "failed", states(run)
    assert [record.path for record in umami_server.requests] == ["/api/auth/login"]


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_conf_key_that_is_not_a_param_fails_the_plan_naming_it(dag: Any, real_world: Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    no_retries(dag, monkeypatch)
    before = list(real_world["users"].find())

    run = run_dag(dag, website_id=["266abb41-957e-4dd3-8229-6a601f80a9db"], page_size=0, date_from="2026-11-01")

    assert str(run.state) == "failed"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan_run")
    assert str(plan.state) == "failed"
    assert list(real_world["users"].find()) == before
    last_run = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]["lastRun"]
    assert last_run["status"] == "failed" and "trigger conf keys ['page_size', 'website_id']" in last_run["problems"][0]
    assert last_run["dataIntervalStart"] == datetime(2026, 11, 27)  # the run's own: date_from was not checked


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_bad_setting_stops_the_run_at_once(dag: Any, real_world: Database,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", '{"page_size": 0}')
    before = list(real_world["users"].find())

    run = run_dag(dag)

    assert str(run.state) == "failed"
    task_states = states(run)
    assert task_states["plan_run[-1]"] == "failed"
    assert task_states["session_sync[-1]"] == task_states["plan_analytics[-1]"] == "upstream_failed"
    assert (task_states["record_status[-1]"], task_states["check_run[-1]"]) == ("success", "failed")
    assert list(real_world["users"].find()) == before
    last_run = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]["lastRun"]  # still recorded
    assert (last_run["runId"], last_run["status"], last_run["dataIntervalStart"], last_run["dataIntervalEnd"]) == (
        run.run_id, "failed", datetime(2026, 11, 27), datetime(2026, 11, 28))  # the run's data interval
    assert last_run["problems"] == ["the run could not be planned: invalid umami_sync setting: page_size: Input "
                                    "should be greater than or equal to 1"]


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_backfill_in_any_order_ends_where_a_forward_run_does(dag: Any, umami_server: FakeUmami,
                                                              connections: Database, umami_db: str) -> None:
    """Three days synced newest first (as a back-fill may run) leave what the days in order leave."""
    rows = UmamiRows(umami_db)
    rows.website()
    add_user(connections["users"], "lou@example.com")
    sessions = []
    for day in (24, 25, 26):
        session = rows.session(at(10, day=day), distinct_id="lou@example.com")
        rows.event(session, at(10, day=day))
        rows.event(session, at(11, day=day))
        sessions.append(session)
    rows.close()

    for day in (26, 25, 24):
        assert str(run_dag(dag, datetime(2026, 11, day + 1, tzinfo=UTC)).state) == "success"
    lou = connections["users"].find_one({"email": "lou@example.com"})
    status = connections["systemconfigs"].find_one({"_id": "global"})["umamiSync"]

    assert lou["session_id"] == sessions[-1]
    assert [s["id"] for s in lou["umamiSessions"]] == sessions[::-1]
    assert lou["umamiAnalytics"]["id"] == sessions[-1] and lou["umamiAnalytics"]["views"] == 2
    assert status["lastSuccessfulSync"] == datetime(2026, 11, 27)
    assert status["websiteSyncStatus"]["266abb41-957e-4dd3-8229-6a601f80a9db"]["lastDaySynced"] == "2026-11-26"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSmtp]:
    """A local SMTP server as connection ``smtp_default``, and the Variable's alerts e-mailed to it."""
    with LocalSmtp() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.connection())
        monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", json.dumps(
            {"alerts": {"on_failure": [{"type": "email", "to": ["oncall@example.com"]}]}}))
        yield server


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_red_run_e_mails_what_failed_its_days_the_first_error_and_a_link(
        dag: Any, real_world: Database, umami_server: FakeUmami, umami_db: str, smtp: LocalSmtp,
        monkeypatch: pytest.MonkeyPatch) -> None:
    no_retries(dag, monkeypatch)
    a_website_whose_list_loses_a_row(umami_db, umami_server)

    run = run_dag(dag)

    assert str(run.state) == "failed"
    [mail] = smtp.wait_for(1)
    assert (mail["To"], mail["From"]) == ("oncall@example.com", "airflow@example.com")
    assert mail["Subject"] == "[umami_mongo_sync] run of 2026-11-27 failed: website Other Site"
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Partial run of 2026-11-27: website Other Site failed." in body
    assert (f"First error: 1 of 1 rows of Umami&#x27;s session list could not be read for website Other Site "
            f"({OTHER_WEBSITE})") in body
    assert f"http://localhost:8080/dags/umami_mongo_sync/runs/{quote(run.run_id)}" in body
    assert "Identities that matched no user: 1 x no user has this identity; e.g. c***@example.com." in body  # carol
    assert "Users modified anyway" in body


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_green_run_far_below_the_usual_stays_green_and_says_so(dag: Any, real_world: Database,
                                                                 smtp: LocalSmtp) -> None:
    usual = {f"2026-11-{day}": {"sessions": 40, "matchedSessions": 30} for day in range(20, 27)}
    real_world["systemconfigs"].insert_one({"_id": "global", "umamiSync": {"websiteSyncStatus": {
        WEBSITE: {"days": usual}}}})

    run = run_dag(dag)

    assert str(run.state) == "success", states(run)
    status = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert status["lastRun"]["status"] == "success"
    assert [(d["figure"], d["value"], d["usual"]) for d in status["lastRun"]["drops"]] == [
        ("sessions", 3, 40), ("matchedSessions", 2, 30)]
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "[umami_mongo_sync] run of 2026-11-27: far fewer sessions than usual for Probe Site"
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Probe Site on 2026-11-27: sessions 3, usually 40 (median of 7 days)" in body


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_green_run_with_invalid_rows_stays_green_and_warns_naming_the_website_the_count_and_the_field(
        dag: Any, real_world: Database, umami_server: FakeUmami, smtp: LocalSmtp,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An Umami whose list the sync reads only in part: within max_invalid_share the run stays green, and says so
    like a drop."""
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", json.dumps(
        {"max_invalid_share": 0.5, "alerts": {"on_failure": [{"type": "email", "to": ["oncall@example.com"]}]}}))
    umami_server.faults.malformed_ids = {"23fbc8b7-769e-5606-8fca-3643d50f5683"}  # Bob's: visits "many"

    run = run_dag(dag)

    assert str(run.state) == "success", states(run)
    status = real_world["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert status["lastRun"]["status"] == "success"
    assert status["lastRun"]["invalidRows"] == [{"website_id": WEBSITE, "website_name": "Probe Site", "rows": 1,
                                                 "field": "visits"}]
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "[umami_mongo_sync] run of 2026-11-27: invalid session rows skipped for Probe Site"
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Probe Site: 1 invalid list rows, most of them failed on field &#x27;visits&#x27;" in body


@pytest.mark.integration
@pytest.mark.usefixtures("airflow_db")
def test_a_green_run_sends_nothing(dag: Any, real_world: Database, smtp: LocalSmtp) -> None:
    assert str(run_dag(dag).state) == "success"
    assert smtp.wait_for(1, timeout=1) == []


def parse_with_deadline(monkeypatch: pytest.MonkeyPatch, value: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__DEADLINE", value)
    return DagBag(dag_folder=str(DAGS))


def test_the_dag_carries_a_deadline_alert_when_the_deadline_is_set(dag: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Set: a Deadline Alert, 7 hours after the run is queued (00:00 UTC for a scheduled run), that calls
    notify_late on a worker. Not set: none. (Airflow 3.3.2's dag.test() crashes when a run of a DAG with a deadline
    succeeds, its in-memory copy keeping the alerts as dicts: the DAG the other tests run carries none.)"""
    from airflow.serialization.serialized_objects import DagSerialization

    alert = parse_with_deadline(monkeypatch, "07:00").dags["umami_mongo_sync"].deadline[0]

    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.interval == timedelta(hours=7) and alert.name == "umami_sync_deadline"
    assert (type(alert.callback).__name__, alert.callback.path) == ("SyncCallback", "umami_sync.alerts.notify_late")
    serialized = DagSerialization.to_dict(parse_with_deadline(monkeypatch, "07:00").dags["umami_mongo_sync"])
    assert "umami_sync.alerts.notify_late" in json.dumps(serialized["dag"]["deadline"])
    assert dag.deadline is None


def test_a_deadline_that_is_not_a_time_fails_the_dag_import_naming_the_option(
        monkeypatch: pytest.MonkeyPatch) -> None:
    errors = parse_with_deadline(monkeypatch, "7am").import_errors

    assert "[umami_sync] deadline = '7am' is not a time HH:MM" in next(iter(errors.values()))


@pytest.mark.integration
def test_a_missed_deadline_e_mails_the_run_as_a_worker_runs_the_callback(smtp: LocalSmtp) -> None:
    """What the scheduler hands the callback when the deadline passes, run the way an executor worker runs it."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    context = {"dag_run": {"dag_id": "umami_mongo_sync", "dag_run_id": "scheduled__2026-11-27T00:00:00+00:00",
                           "data_interval_start": "2026-11-27T00:00:00Z", "data_interval_end": "2026-11-28T00:00:00Z",
                           "state": "running"},
               "deadline": {"id": "0192", "deadline_time": "2026-11-28T07:00:00+00:00"}}

    done = execute_callback("umami_sync.alerts.notify_late", {"context": context}, dag_rel_path=Path("x.py"),
                            bundle_path=None, log=structlog.get_logger())

    assert done == (True, None)
    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "[umami_mongo_sync] run scheduled__2026-11-27T00:00:00+00:00 missed its deadline"
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert ("Run scheduled__2026-11-27T00:00:00+00:00 (syncing 2026-11-27) had not finished by "
            "2026-11-28T07:00:00+00:00; it is running.") in body
