"""Alerts: the messages (pure), and sending them through real notifiers to local servers: the SMTP provider to a
local SMTP server, the Slack provider to a local webhook, and a notifier of our own by import path."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from airflow.sdk import BaseNotifier

from local_stack.smtp import LocalSmtp
from umami_sync.alerts import (
    ALERT_KEY,
    Alert,
    AlertError,
    failure_alert,
    late_alert,
    notifiers,
    notify_run,
    scrub,
    send,
    warning_alert,
)
from umami_sync.results import Drop, FailedPart, InvalidRows, StatusResult
from umami_sync.settings import (
    CustomNotifier,
    EmailNotifier,
    SettingsError,
    SlackNotifier,
    alert_settings,
    deadline_after_queued,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

SITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
LINK = "http://localhost:8080/dags/umami_mongo_sync/runs/scheduled__2026-11-27"


class RecordingNotifier(BaseNotifier):
    """A notifier by import path (``tests.umami_sync.test_alerts.RecordingNotifier``); keeps what it was told."""

    template_fields = ("message",)
    received: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, message: str = "{{ umami_sync_alert.text }}", channel: str = "#ops") -> None:
        super().__init__()
        self.message, self.channel = message, channel

    def notify(self, context: Any) -> None:
        """Keep the rendered message."""
        self.received.append((self.channel, self.message))


def partial_run(error: str = "UmamiApiError: GET /api/websites -> HTTP 500: boom") -> StatusResult:
    return StatusResult(
        run_id="scheduled__2026-11-27", status="partial", days="2026-11-27", websites=2,
        failed=[FailedPart(what="website Shop", website_id=SITE, days="2026-11-27", error=error)],
        failure=f"run partial: website {SITE}: {error}", modified={"sessions": 2, "analytics": 0},
        rejected={"refusedUsers": {"byReason": {"121 DocumentValidationFailure": 1},
                                   "users": [{"user_id": "64f0", "code": 121, "reason": "failed validation"}]},
                  "unmatchedIdentities": {"byReason": {"no user has this identity": 4},
                                          "identities": ["z***@example.com"]}})


def test_scrub_keeps_ids_and_drops_what_looks_like_a_credential() -> None:
    text = scrub(f"website {SITE}: mongodb://sync:s3cr3t@db.internal:27017/app said Authorization: Bearer abc.def "
                 "password=hunter2 api_key: 'k-123' Authorization: Basic c3luYzpz the token " + "x" * 40)

    assert text == (f"website {SITE}: mongodb://***@db.internal:27017/app said Authorization: Bearer *** "
                    "password=*** api_key: '***' Authorization: *** the token ***")
    assert scrub("Umami refused the token (incorrect-username-password); basic auth off") == (
        "Umami refused the token (incorrect-username-password); basic auth off")  # words stay
    assert len(scrub("a long error " * 100)) == 500


def test_a_failure_alert_says_what_failed_its_days_the_first_error_what_was_rejected_and_links_the_run() -> None:
    alert = failure_alert("umami_mongo_sync", "scheduled__2026-11-27", partial_run("boom Bearer abc"), link=LINK)

    assert alert.subject == "[umami_mongo_sync] run of 2026-11-27 failed: website Shop"
    assert alert.lines == (
        "Partial run of 2026-11-27: website Shop failed.",
        "- website Shop (2026-11-27): boom Bearer ***",
        "First error: boom Bearer ***",
        "Users the server refused: 1 x 121 DocumentValidationFailure; e.g. users 64f0.",
        "Identities that matched no user: 4 x no user has this identity; e.g. z***@example.com.",
        "Users modified anyway: {'sessions': 2, 'analytics': 0} (the asset umami_enriched_users was updated).")
    assert alert.text.endswith(f"\nRun: {LINK}")
    assert f'<a href="{LINK}">' in alert.html and "<p>- website Shop (2026-11-27): boom Bearer ***</p>" in alert.html
    rehearsal = partial_run().model_copy(update={"dry_run": True})
    assert failure_alert("umami_mongo_sync", "r", rehearsal, link=LINK).lines[0] == (
        "Partial dry run (a rehearsal that wrote nothing) of 2026-11-27: website Shop failed.")


def test_a_run_that_failed_before_its_status_names_the_failed_tasks() -> None:
    alert = failure_alert("umami_mongo_sync", "manual__1", None, link=LINK, failed_tasks=["plan_run", "record_status"])

    assert alert.subject == "[umami_mongo_sync] run manual__1 failed before its status was recorded"
    assert alert.lines == ("Failed: plan_run, record_status (see the task's log; a bad setting fails plan_run).",)


def test_a_warning_only_when_something_dropped_or_rows_were_invalid() -> None:
    green = StatusResult(run_id="r", status="success", days="2026-11-27")
    dropped = green.model_copy(update={"drops": [Drop(website_id=SITE, website_name="Shop", day="2026-11-27",
                                                       figure="sessions", value=3, usual=40, days=7)]})
    invalid = green.model_copy(update={"invalid_rows": [InvalidRows(website_id=SITE, website_name="Shop", rows=4,
                                                                    field="visits")]})

    assert warning_alert("umami_mongo_sync", green, link=LINK) is None
    alert = warning_alert("umami_mongo_sync", dropped, link=LINK)
    assert alert is not None and alert.kind == "warning"
    assert alert.lines[-1] == "- Shop on 2026-11-27: sessions 3, usually 40 (median of 7 days)"
    alert = warning_alert("umami_mongo_sync", invalid, link=LINK)
    assert alert is not None and alert.subject == (
        "[umami_mongo_sync] run of 2026-11-27: invalid session rows skipped for Shop")
    assert alert.lines[-1] == "- Shop: 4 invalid list rows, most of them failed on field 'visits'"
    both = warning_alert("umami_mongo_sync", dropped.model_copy(update={"invalid_rows": invalid.invalid_rows}),
                         link=LINK)
    assert both is not None and both.subject.endswith(
        "far fewer sessions than usual for Shop; invalid session rows skipped for Shop")


def test_a_run_never_planned_is_told_by_its_run_id_when_it_has_no_interval() -> None:
    never = StatusResult(run_id="manual__1", status="failed", days="",
                         problems=["the run could not be planned: trigger conf keys ['x'] are not params"])

    alert = failure_alert("umami_mongo_sync", "manual__1", never, link=LINK)

    assert alert.subject == "[umami_mongo_sync] run manual__1 failed: the run could not be planned"
    assert alert.lines[0] == "Failed run manual__1: the run could not be planned failed."


def test_alert_settings_are_read_alone_so_a_bad_other_setting_still_alerts() -> None:
    settings = alert_settings(json.dumps({"page_size": 0, "alerts": {
        "on_failure": [{"type": "email", "to": "a@example.com"}, {"type": "email", "to": ["b@example.com"]}],
        "on_late": [{"type": "slack", "conn_id": "slack_ops"}]}}))

    assert settings.on_failure == (EmailNotifier(type="email", to=("a@example.com",)),
                                   EmailNotifier(type="email", to=("b@example.com",)))
    assert settings.late == (SlackNotifier(type="slack", conn_id="slack_ops"),)
    assert alert_settings(json.dumps({"alerts": {"on_failure": [{"type": "slack"}]}})).late[0].conn_id == \
        "slack_default"  # on_late defaults to on_failure's
    assert alert_settings(None).on_failure == ()
    with pytest.raises(SettingsError, match=r"'alerts'.*on_failure\.0"):
        alert_settings(json.dumps({"alerts": {"on_failure": [{"type": "pager"}]}}))
    with pytest.raises(SettingsError, match="path"):
        alert_settings(json.dumps({"alerts": {"on_failure": [{"type": "notifier", "path": "not a path"}]}}))


def test_the_deadline_is_a_time_after_the_run_is_queued() -> None:
    assert deadline_after_queued("07:00") == deadline_after_queued(" 7:00 ") == timedelta(hours=7)
    assert deadline_after_queued("30:15") == timedelta(hours=30, minutes=15)
    for bad in ("7", "7am", "00:00", "48:00", "07:60", "-1:00"):
        with pytest.raises(SettingsError, match="is not a time HH:MM"):
            deadline_after_queued(bad)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSmtp]:
    with LocalSmtp() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.connection())
        yield server


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local Slack incoming webhook as connection ``slack_default``; the payloads it received."""
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(
        {"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{server.server_address[1]}/services/T/B/X"}))
    _Webhook.received = []
    yield _Webhook.received
    server.shutdown()
    server.server_close()


@pytest.mark.integration
def test_an_alert_goes_by_e_mail_slack_and_a_notifier_of_ones_own(smtp: LocalSmtp,
                                                                   slack: list[dict[str, Any]]) -> None:
    RecordingNotifier.received = []
    alert = failure_alert("umami_mongo_sync", "r", partial_run("a {{ template }} in an error"), link=LINK)

    send(alert, [EmailNotifier(type="email", to=("oncall@example.com",)), SlackNotifier(type="slack"),
                 CustomNotifier(type="notifier", path="tests.umami_sync.test_alerts.RecordingNotifier",
                                kwargs={"channel": "#data"})], {"dag_id": "umami_mongo_sync"})

    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == alert.subject and mail["To"] == "oncall@example.com"
    assert "a {{ template }} in an error" in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert slack == [{"text": alert.text}]  # the error as it was: never rendered as a template
    assert RecordingNotifier.received == [("#data", alert.text)]  # its template field rendered with the alert


@pytest.mark.integration
def test_a_notifier_that_fails_does_not_keep_the_others_from_sending(smtp: LocalSmtp) -> None:
    alert = Alert("late", "[umami_mongo_sync] late", ("not finished",), LINK)
    unreachable = EmailNotifier(type="email", to=("a@example.com",), conn_id="smtp_nowhere")

    with pytest.raises(AlertError, match=r"2 of 3 notifiers failed: e-mail to a@example.com \(connection "
                                         r"'smtp_nowhere'\): .*; notifier tests\.nowhere\.Notifier: AlertError"):
        send(alert, [unreachable, CustomNotifier(type="notifier", path="tests.nowhere.Notifier"),
                     EmailNotifier(type="email", to=("oncall@example.com",))], {})

    assert [mail["To"] for mail in smtp.wait_for(1)] == ["oncall@example.com"]


@pytest.mark.integration
def test_e_mail_goes_as_production_sends_it_starttls_with_a_checked_certificate_then_auth_login(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission server on port 587's terms: STARTTLS first (its certificate checked against a CA the test
    made), then AUTH LOGIN; the provider's connection as the README gives it (SSL off, STARTTLS on)."""
    alert = Alert("failed", "[umami_mongo_sync] run of 2026-11-27 failed", ("a line",), LINK)
    oncall = [EmailNotifier(type="email", to=("oncall@example.com",))]
    with LocalSmtp(secure=True) as server:
        assert server.ca_path is not None
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.connection())
        with pytest.raises(AlertError, match="CERTIFICATE_VERIFY_FAILED"):  # a CA this machine does not trust
            send(alert, oncall, {})
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))  # what OpenSSL's default context trusts
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_WRONG", json.dumps({**json.loads(server.connection()),
                                                                  "password": "not-it"}))
        with pytest.raises(AlertError, match="SMTPAuthenticationError"):
            send(alert, [EmailNotifier(type="email", to=("oncall@example.com",), conn_id="smtp_wrong")], {})

        send(alert, oncall, {})

        [mail] = server.wait_for(1)
        assert (mail["Subject"], mail["To"], mail["From"]) == (alert.subject, "oncall@example.com",
                                                               "airflow@example.com")
        assert server.logins == [("LOGIN", "alerts", False), ("LOGIN", "alerts", True)]


def test_a_late_alert_names_the_run_its_days_and_the_deadline() -> None:
    alert = late_alert("umami_mongo_sync", "scheduled__2026-11-27", deadline="2026-11-28T07:00:00+00:00",
                       synced="2026-11-27", state="running", link=LINK)

    assert alert.as_context()["text"].splitlines()[2] == (
        "Run scheduled__2026-11-27 (syncing 2026-11-27) had not finished by 2026-11-28T07:00:00+00:00; it is running.")
    assert ALERT_KEY == "umami_sync_alert"


def test_a_run_callback_without_any_notifier_says_so_loudly(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    import umami_sync.alerts as alerts

    monkeypatch.setattr(alerts, "_run_facts", lambda *_: (partial_run().model_dump(mode="json"), []))
    monkeypatch.setattr(alerts, "send", lambda *_: pytest.fail("sent"))
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", '{"page_size": 100}')
    monkeypatch.delenv("AIRFLOW__UMAMI_SYNC__ALERTS", raising=False)

    with caplog.at_level("INFO", logger="umami_sync.alerts"):
        notify_run({"dag": type("Dag", (), {"dag_id": "umami_mongo_sync"})(), "run_id": "r",
                    "reason": "task_failure"}, status_task="record_status")

    [record] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert record.getMessage().startswith(
        "NO ALERT SENT: the Variable 'umami_sync_settings' names no notifiers (alerts.on_failure), and Airflow's "
        "option [umami_sync] alerts names no notifiers either. The alert:\n[umami_mongo_sync] run of 2026-11-27 "
        "failed: website Shop")


FALLBACK = {"on_failure": [{"type": "email", "to": ["fallback@example.com"]}], "on_late": [{"type": "slack"}]}


def test_the_configurations_notifiers_hear_when_the_variable_cannot_be_read_is_invalid_or_names_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

    monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__ALERTS", json.dumps(FALLBACK))
    variable = {"alerts": {"on_failure": [{"type": "email", "to": "oncall@example.com"}]}}
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", json.dumps(variable))
    assert notifiers() == ((EmailNotifier(type="email", to=("oncall@example.com",)),), None)  # the Variable's

    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", "{not json")
    specs, why = notifiers()
    assert specs == (EmailNotifier(type="email", to=("fallback@example.com",)),)
    assert why == "the Variable 'umami_sync_settings' is invalid (Variable 'umami_sync_settings' is not valid JSON: " \
                  "Expecting property name enclosed in double quotes)"
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", "{}")
    assert notifiers(late=True) == ((SlackNotifier(type="slack"),),
                                    "the Variable 'umami_sync_settings' names no notifiers (alerts.on_late)")

    def outage(*args: Any, **kwargs: Any) -> str:
        raise AirflowSecretsBackendAccessDenied("Azure Key Vault https://kv/ could not be read for variable "
                                                "'umami_sync_settings' (ServiceRequestError)")

    monkeypatch.setattr(Variable, "get", outage)
    assert notifiers()[1] == (
        "the Variable 'umami_sync_settings' could not be read (AirflowSecretsBackendAccessDenied: Azure Key Vault "
        "https://kv/ could not be read for variable 'umami_sync_settings' (ServiceRequestError))")
    monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__ALERTS", '{"on_failure": [{"type": "pager"}]}')
    assert notifiers()[0] == ()
    assert "Airflow option [umami_sync] alerts: on_failure.0" in (notifiers()[1] or "")
