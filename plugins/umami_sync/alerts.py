"""Alerts: who hears that a run failed, finished late, or synced far less than usual, and what they read.

The notifiers are named in the Variable (setting ``alerts``) and resolved when an alert fires, never when the
DAG is parsed; when the Variable cannot be read, is invalid or names none, those of Airflow's configuration option
``[umami_sync] alerts`` are told instead, and the alert says why (:func:`notifiers`). :func:`notify_run` is the DAG's
callback for a finished run (a red run; a green run only when ``record_status`` found a drop or invalid rows),
:func:`notify_late` the callback of the Deadline Alert that :func:`late_run_deadline` builds from Airflow's
configuration (``[umami_sync] deadline``). The messages are composed purely (:func:`failure_alert`,
:func:`warning_alert`, :func:`late_alert`) from what ``record_status`` handed on, errors scrubbed of anything that
looks like a credential.

E-mail goes through the SMTP provider, Slack through the Slack provider's incoming webhook, and any other
``BaseNotifier`` by import path; that one finds the message in its context as ``umami_sync_alert``
(``subject``, ``text``, ``html``, ``link``), so a template field can say ``{{ umami_sync_alert.text }}``.
"""

from __future__ import annotations

import html
import importlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

from airflow.sdk import BaseNotifier, Variable, conf
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from umami_sync.results import StatusResult
from umami_sync.settings import (
    ALERTS_OPTION,
    DEADLINE_OPTION,
    SETTINGS_VARIABLE,
    CustomNotifier,
    EmailNotifier,
    SettingsError,
    SlackNotifier,
    alert_option,
    alert_settings,
    deadline_after_queued,
)
from umami_sync.umami.redact import scrub as scrub_credentials
from umami_sync.windows import DataInterval, to_utc

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from umami_sync.settings import NotifierSetting

log = logging.getLogger(__name__)

ALERT_KEY = "umami_sync_alert"
"""Where a notifier given by import path finds the alert in its context."""
_MAX_ERROR = 500


class AlertError(Exception):
    """A notifier of the ``alerts`` setting could not be built or could not send."""


def scrub(text: str) -> str:
    """``text`` as an alert may show it: scrubbed by the package's one rule (:func:`umami_sync.umami.redact.scrub`:
    no credentials, website and session ids kept), at most 500 characters."""
    text = scrub_credentials(text)
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 1] + "…"


@dataclass(frozen=True)
class Alert:
    """One message, for every notifier."""

    kind: Literal["failed", "late", "warning"]
    subject: str
    lines: tuple[str, ...]
    link: str

    @property
    def text(self) -> str:
        """The message as plain text (Slack, logs)."""
        return "\n".join([self.subject, "", *self.lines, "", f"Run: {self.link}"])

    @property
    def html(self) -> str:
        """The message as HTML (e-mail)."""
        body = "".join(f"<p>{html.escape(line)}</p>" if line else "" for line in self.lines)
        link = html.escape(self.link, quote=True)
        return f"<h3>{html.escape(self.subject)}</h3>{body}<p>Run: <a href=\"{link}\">{link}</a></p>"

    def noting(self, line: str) -> Alert:
        """The same alert with ``line`` added at its end."""
        return replace(self, lines=(*self.lines, line))

    def as_context(self) -> dict[str, str]:
        """What a notifier given by import path finds under :data:`ALERT_KEY`."""
        return {"kind": self.kind, "subject": self.subject, "text": self.text, "html": self.html, "link": self.link}


def run_link(dag_id: str, run_id: str) -> str:
    """The run's page in Airflow's UI (``[api] base_url``)."""
    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def failure_alert(dag_id: str, run_id: str, status: StatusResult | None, *, link: str,
                  failed_tasks: Sequence[str] = ()) -> Alert:
    """A red run: what failed (stages, websites and their days), the first error, what was rejected."""
    if status is None:
        tasks = ", ".join(failed_tasks) or "a task"
        return Alert("failed", f"[{dag_id}] run {run_id} failed before its status was recorded",
                     (f"Failed: {tasks} (see the task's log; a bad setting fails plan_run).",), link)
    what = ", ".join([part.what for part in status.failed] + [problem.split(": ")[0] for problem in status.problems])
    run = "dry run (a rehearsal that wrote nothing)" if status.dry_run else "run"
    span = f"of {status.days}" if status.days else run_id  # a run never planned may have no interval
    lines = [f"{status.status.capitalize()} {run} {span}: {what} failed."]
    if status.mode == "api":
        lines.append("Umami was read through its API only, no database (identities_from; the README's Umami Cloud "
                     "says what that mode cannot see).")
    lines += [f"- {part.what} ({part.days}): {scrub(part.error)}" for part in status.failed]
    lines += [f"- {scrub(problem)}" for problem in status.problems]
    first = status.failed[0].error if status.failed else (status.problems or [status.failure or ""])[0]
    lines.append(f"First error: {scrub(first)}")
    lines += _rejected_lines(status.rejected) + _drop_lines(status) + _invalid_lines(status)
    if status.modified and any(status.modified.values()):
        lines.append(f"Users modified anyway: {status.modified} (the asset umami_enriched_users was updated).")
    return Alert("failed", f"[{dag_id}] run {span} failed: {what}", tuple(lines), link)


def warning_alert(dag_id: str, status: StatusResult, *, link: str) -> Alert | None:
    """A green run whose figures dropped far below a website's usual, or that skipped invalid list rows; None when
    it did neither."""
    subjects, lines = [], []
    if status.drops:
        websites = ", ".join(dict.fromkeys(drop.website_name or drop.website_id for drop in status.drops))
        subjects.append(f"far fewer sessions than usual for {websites}")
        lines += ["The run succeeded, but these figures fell far below the website's usual (a loss upstream?):",
                  *_drop_lines(status)]
    if status.invalid_rows:
        websites = ", ".join(found.website_name or found.website_id for found in status.invalid_rows)
        subjects.append(f"invalid session rows skipped for {websites}")
        lines += ["The run succeeded, but Umami's session list served rows the sync could not read; they were "
                  "skipped, not written (an Umami upgrade?):", *_invalid_lines(status)]
    if not subjects:
        return None
    return Alert("warning", f"[{dag_id}] run of {status.days}: {'; '.join(subjects)}", tuple(lines), link)


def late_alert(dag_id: str, run_id: str, *, deadline: str, synced: str | None, state: str, link: str) -> Alert:
    """A run that had not finished when its deadline passed."""
    what = f" (syncing {synced})" if synced else ""
    return Alert("late", f"[{dag_id}] run {run_id} missed its deadline",
                 (f"Run {run_id}{what} had not finished by {deadline}; it is {state}.",), link)


def _rejected_lines(rejected: Mapping[str, Any]) -> list[str]:
    lines = []
    refused = rejected.get("refusedUsers")
    if refused:
        reasons = ", ".join(f"{count} x {reason}" for reason, count in sorted(refused["byReason"].items()))
        users = ", ".join(str(user["user_id"]) for user in refused["users"][:5])
        lines.append(f"Users the server refused: {reasons}; e.g. users {users}.")
    unmatched = rejected.get("unmatchedIdentities")
    if unmatched:
        reasons = ", ".join(f"{count} x {reason}" for reason, count in sorted(unmatched["byReason"].items()))
        sample = ", ".join(unmatched.get("identities", [])[:5])
        lines.append(f"Identities that matched no user: {reasons}{f'; e.g. {sample}' if sample else ''}.")
    return lines


def _invalid_lines(status: StatusResult) -> list[str]:
    return [f"- {found.website_name or found.website_id}: {found.rows} invalid list rows"
            + (f", most of them failed on field {found.field!r}" if found.field else "")
            for found in status.invalid_rows]


def _drop_lines(status: StatusResult) -> list[str]:
    return [f"- {drop.website_name or drop.website_id} on {drop.day}: {drop.figure} {drop.value}, usually "
            f"{drop.usual:g} (median of {drop.days} days)" for drop in status.drops]


def describe(spec: NotifierSetting) -> str:
    """Where a notifier sends: for logs and the demo."""
    if isinstance(spec, EmailNotifier):
        return f"e-mail to {', '.join(spec.to)} (connection {spec.conn_id!r})"
    if isinstance(spec, SlackNotifier):
        return f"Slack webhook (connection {spec.conn_id!r})"
    return f"notifier {spec.path}"


def build_notifier(spec: NotifierSetting, alert: Alert) -> BaseNotifier:
    """The notifier ``spec`` names, carrying ``alert``; :class:`AlertError` when it cannot be built."""
    if isinstance(spec, EmailNotifier):
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(to=list(spec.to), from_email=spec.from_email, subject=alert.subject,
                            html_content=alert.html, smtp_conn_id=spec.conn_id)
    if isinstance(spec, SlackNotifier):
        try:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
        except ImportError as exc:
            raise AlertError("alerts of type 'slack' need the Slack provider "
                             "(pip install apache-airflow-providers-slack)") from exc
        return SlackWebhookNotifier(slack_webhook_conn_id=spec.conn_id, text=alert.text)
    return _custom_notifier(spec)


def _custom_notifier(spec: CustomNotifier) -> BaseNotifier:
    module, _, name = spec.path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise AlertError(f"notifier {spec.path!r} cannot be imported: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, BaseNotifier)):
        raise AlertError(f"{spec.path!r} is not a BaseNotifier class")
    try:
        notifier: BaseNotifier = found(**spec.kwargs)
    except TypeError as exc:
        raise AlertError(f"notifier {spec.path!r} does not take the kwargs {sorted(spec.kwargs)}: {exc}") from exc
    return notifier


def send(alert: Alert, specs: Sequence[NotifierSetting], context: Mapping[str, Any]) -> None:
    """Send ``alert`` through every notifier of ``specs``; one that fails does not keep the others from
    sending, and :class:`AlertError` names them all at the end."""
    notifier_context: dict[str, Any] = {**context, ALERT_KEY: alert.as_context()}
    if not hasattr(notifier_context.get("dag"), "get_template_env"):  # dag.test() hands DAG callbacks a
        notifier_context.pop("dag", None)  # SerializedDAG, which templates cannot render with
    failures = []
    for spec in specs:
        try:
            notifier = build_notifier(spec, alert)
            if isinstance(spec, CustomNotifier):
                notifier(notifier_context)  # renders its template fields first
            else:
                notifier.notify(cast("Context", notifier_context))  # final text: never rendered as a template
        except Exception as exc:
            log.exception("alert %r: %s failed", alert.subject, describe(spec))
            failures.append(f"{describe(spec)}: {type(exc).__name__}: {scrub(str(exc))}")
        else:
            log.info("alert %r sent: %s", alert.subject, describe(spec))
    if failures:
        raise AlertError(f"{len(failures)} of {len(specs)} notifiers failed: " + "; ".join(failures))


def notifiers(*, late: bool = False) -> tuple[Sequence[NotifierSetting], str | None]:
    """The notifiers to tell now (``on_late`` or ``on_failure``): the Variable's; when it cannot be read, is invalid
    or names none, those of Airflow's option ``[umami_sync] alerts``, with why (None when they are the Variable's)."""
    which = f"alerts.{'on_late' if late else 'on_failure'}"
    try:
        settings = alert_settings(Variable.get(SETTINGS_VARIABLE, default=None))
    except SettingsError as exc:
        why = f"the Variable {SETTINGS_VARIABLE!r} is invalid ({scrub(str(exc))})"
    except Exception as exc:  # a secrets backend that cannot be read (a vault outage)
        why = f"the Variable {SETTINGS_VARIABLE!r} could not be read ({type(exc).__name__}: {scrub(str(exc))})"
    else:
        specs = settings.late if late else settings.on_failure
        if specs:
            return specs, None
        why = f"the Variable {SETTINGS_VARIABLE!r} names no notifiers ({which})"
    try:
        fallback = alert_option(conf.get(*ALERTS_OPTION, fallback="") or "")
    except SettingsError as exc:
        return (), f"{why}; {exc}"
    return (fallback.late if late else fallback.on_failure), why


def _tell(alert: Alert, context: Mapping[str, Any], *, late: bool = False) -> None:
    """Send ``alert`` to :func:`notifiers`; the alert says why when they are the configuration's, and the log says it
    loudly when nobody could be told."""
    specs, why = notifiers(late=late)
    option = f"[{ALERTS_OPTION[0]}] {ALERTS_OPTION[1]}"
    if not specs:
        log.error("NO ALERT SENT: %s, and Airflow's option %s names no notifiers either. The alert:\n%s", why,
                  option, alert.text)
        return
    if why:
        log.warning("alert %r goes to the notifiers of Airflow's option %s: %s", alert.subject, option, why)
        alert = alert.noting(f"(Sent to the notifiers of Airflow's option {option}: {why}.)")
    send(alert, specs, context)


def notify_run(context: Mapping[str, Any], *, status_task: str) -> None:
    """The DAG's callback when a run ends: a red run is told to ``alerts.on_failure``, and so is a green one in
    which ``status_task`` found a drop."""
    dag_id, run_id = context["dag"].dag_id, str(context["run_id"])
    stored, failed_tasks = _run_facts(dag_id, run_id, status_task)
    status = StatusResult.model_validate(stored) if stored else None
    link = run_link(dag_id, run_id)
    if context.get("reason") == "success":
        alert = warning_alert(dag_id, status, link=link) if status is not None else None
    else:
        alert = failure_alert(dag_id, run_id, status, link=link, failed_tasks=failed_tasks)
    if alert is not None:
        _tell(alert, context)


def _run_facts(dag_id: str, run_id: str, status_task: str) -> tuple[Any, list[str]]:
    """What ``status_task`` returned, and the run's failed tasks: through the task SDK, as the DAG processor runs
    the callback; ``airflow dags test`` runs it in a process without the SDK's channel, so there from the
    metadata database."""
    from airflow.sdk.execution_time import task_runner

    if not hasattr(task_runner, "SUPERVISOR_COMMS"):
        return _facts_from_metadata_db(dag_id, run_id, status_task)
    from airflow.sdk.execution_time.xcom import XCom

    stored = XCom.get_one(key="return_value", dag_id=dag_id, task_id=status_task, run_id=run_id)
    states = task_runner.RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
    return stored, sorted(task for task, state in states.items() if state == "failed")


def _facts_from_metadata_db(dag_id: str, run_id: str, status_task: str) -> tuple[Any, list[str]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, key="return_value", task_ids=status_task,
                                                 dag_ids=dag_id)).first()
        failed = session.scalars(select(TaskInstance.task_id).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.state == "failed")).all()
        return (XComModel.deserialize_value(row) if row is not None else None), sorted(set(failed))


def notify_late(context: Mapping[str, Any] | None = None) -> None:
    """The Deadline Alert's callback (on an executor worker): the run is told to ``alerts.on_late``."""
    dag_run: Mapping[str, Any] = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    dag_id, run_id = str(dag_run.get("dag_id")), str(dag_run.get("dag_run_id"))
    start, end = dag_run.get("data_interval_start"), dag_run.get("data_interval_end")
    synced = DataInterval(to_utc(start), to_utc(end)).days if start and end else None
    alert = late_alert(dag_id, run_id, deadline=str(deadline.get("deadline_time")), synced=synced,
                       state=str(dag_run.get("state", "running")), link=run_link(dag_id, run_id))
    _tell(alert, context or {}, late=True)


def late_run_deadline() -> DeadlineAlert | None:
    """The Deadline Alert of ``[umami_sync] deadline`` (read from Airflow's configuration, no I/O), or None."""
    value = conf.get(*DEADLINE_OPTION, fallback="") or ""
    if not value.strip():
        return None
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=deadline_after_queued(value),
                         callback=SyncCallback(notify_late), name="umami_sync_deadline")
