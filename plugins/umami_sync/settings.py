"""Every setting of the sync in one typed home, with its default and its validation.

Settings are layered, later layers win:

1. the defaults below;
2. the original tool's environment variables (``UMAMI_WEBSITE_IDS``, ``SESSION_SYNC_WINDOW_HOURS``,
   ``ANALYTICS_SYNC_DAYS_BACK``);
3. the Airflow Variable ``umami_sync_settings`` (a JSON object; it can live in Key Vault like any Variable);
4. the run's params from the trigger form (only the ones a person set).

Every value a layer holds counts, an explicit ``null`` in the Variable too (``"drop_threshold": null`` turns drops
off); the environment and the trigger form leave out what is not set. A bad value raises :class:`SettingsError`,
whose message names the setting.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from umami_sync.api_tasks import API_TASKS
from umami_sync.windows import analytics_interval, session_window

if TYPE_CHECKING:
    from collections.abc import Mapping

    from umami_sync.windows import DataInterval

SETTINGS_VARIABLE = "umami_sync_settings"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class SettingsError(ValueError):
    """A setting has a bad value; the message names it."""


class EmailNotifier(BaseModel):
    """E-mail through the SMTP provider (``SmtpNotifier``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["email"]
    to: Annotated[tuple[str, ...], BeforeValidator(lambda value: (value,) if isinstance(value, str) else value)] = (
        Field(min_length=1, description="Addresses: a list, or one address."))
    conn_id: str = Field("smtp_default", description="SMTP connection; its extra may hold 'from_email'.")
    from_email: str | None = Field(None, description="Sender; default: the connection's 'from_email'.")


class SlackNotifier(BaseModel):
    """A Slack message through an incoming webhook (the Slack provider's ``SlackWebhookNotifier``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["slack"]
    conn_id: str = Field("slack_default", description="Connection of type 'slackwebhook' (the webhook URL).")


class CustomNotifier(BaseModel):
    """Any ``BaseNotifier`` by import path; the message is in its context as ``umami_sync_alert``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["notifier"]
    path: str = Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$",
                      description="Import path of the notifier class, e.g. 'my_company.alerts.PagerNotifier'.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Arguments of the notifier's constructor.")


NotifierSetting = Annotated[EmailNotifier | SlackNotifier | CustomNotifier, Field(discriminator="type")]


class AlertSettings(BaseModel):
    """Who hears about a run: notifiers by kind of news (none by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_failure: tuple[NotifierSetting, ...] = Field(
        (), description="Told when a run fails, and when a green run's figures dropped far below the usual.")
    on_late: tuple[NotifierSetting, ...] | None = Field(
        None, description="Told when a run missed the deadline (Airflow config [umami_sync] deadline); "
                          "default: those of on_failure.")

    @property
    def late(self) -> tuple[NotifierSetting, ...]:
        """The notifiers told of a late run."""
        return self.on_failure if self.on_late is None else self.on_late


class SyncSettings(BaseModel):
    """The knobs of ``umami_mongo_sync``. Defaults suit a daily run against self-hosted Umami."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Connections and collections
    umami_db_conn_id: str = Field("umami_db", description="PostgreSQL connection to Umami's database.")
    umami_api_conn_id: str = Field("umami_api", description="HTTP connection to Umami's REST API.")
    mongo_conn_id: str = Field("users_mongo", description="MongoDB connection; its schema names the database.")
    users_collection: str = Field("users", min_length=1)
    status_collection: str = Field("systemconfigs", min_length=1)

    # What is synced
    website_ids: tuple[str, ...] = Field((), description="Umami website ids; empty = discover through the API.")
    include_team_websites: bool = Field(False, description="Discovery also lists the user's team websites.")
    identity_data_key: str = Field("email", min_length=1, max_length=500,
                                   description="session_data key that carries an identity.")
    user_match_field: str = Field("email", description="User document field an identity is matched against.")
    identity_pattern: str | None = Field(
        None, description="Regex a trimmed identity must match; default: an e-mail shape when matching 'email'.")
    known_session_ids: int = Field(20, ge=1, le=500,
                                   description="How many of a user's most recent session ids are kept.")
    identities_from: Literal["auto", "database", "api"] = Field(
        "auto", description="Where Umami is read: 'database' (its PostgreSQL, connection umami_db_conn_id, and its "
                            "API for the session lists), 'api' (its API only: Umami Cloud), or 'auto' (the API only "
                            "when no connection umami_db_conn_id is configured).")

    # Windows
    session_overlap_minutes: int = Field(60, ge=0, le=7 * 24 * 60,
                                         description="Session sync reads this much before the interval.")
    session_window_hours: int | None = Field(
        None, ge=1, le=24 * 366, description="Session sync reads at least this many hours before the interval end.")
    analytics_days_back: int = Field(1, ge=1, le=366,
                                     description="Analytics sync reads this many days before the interval end.")
    sub_windows: Annotated[int, Field(ge=1, le=96)] | Literal["auto"] = Field(
        "auto", description="Mapped analytics tasks per website and interval; auto: as many as keep each task's list "
                            "within max_task_rows (planning asks each website's list for its row count).")
    max_task_rows: int = Field(500_000, ge=1, le=50_000_000,
                               description="With sub_windows auto: the most list rows one analytics task reads.")

    # Speed and politeness
    page_size: int = Field(5000, ge=1, le=100_000, description="Sessions per Umami API page.")
    max_invalid_share: float = Field(
        0.05, ge=0, le=1, description="An analytics task fails when more than this share of its list rows is invalid "
                                      "(below it, a green run with invalid rows is told like a drop).")
    batch_size: int = Field(1000, ge=1, le=100_000, description="Update operations per bulk_write.")
    http_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    http_max_retries: int = Field(5, ge=0, le=20)
    rate_limit_calls: int | None = Field(
        None, ge=API_TASKS, description="Client-side limit: calls per period for the whole DAG, shared by the tasks "
                                        "that call the API (Cloud: 50).")
    rate_limit_period_seconds: float = Field(15.0, gt=0, le=3600)
    max_retry_wait_seconds: float = Field(
        300.0, gt=0, le=3600, description="Longest single wait before a retry; a longer Retry-After fails the try.")
    ensure_indexes: bool = Field(True, description="Create the indexes the sync needs when they are missing.")
    mongo_collation: Literal["auto", "on", "off"] = Field(
        "auto", description="Match identities through a case-insensitive collation (MongoDB, Atlas: on) or "
                            "portably (Cosmos DB, DocumentDB: off); auto probes the server.")

    # Alerts and health
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="Notifiers of red, late and "
                                  "dropping runs; read again when an alert fires, so a fix applies at once.")
    drop_threshold: float | None = Field(
        0.5, gt=0, lt=1, description="A website's day whose listed or matched sessions fall below this share of "
                                     "its usual (median of its last 7 days) is a drop; null: off.")

    # Per run (the trigger form only: see PER_RUN_SETTINGS)
    dry_run: bool = Field(False, description="Read everything and count, but write nothing.")

    @field_validator("website_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("website_ids")
    @classmethod
    def _valid_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        normalised = []
        for website_id in value:
            try:
                normalised.append(str(UUID(website_id)))
            except ValueError as exc:
                raise ValueError(f"{website_id!r} is not a website id (a UUID)") from exc
        return tuple(dict.fromkeys(normalised))

    @field_validator("user_match_field")
    @classmethod
    def _valid_field(cls, value: str) -> str:
        if not _FIELD_NAME.match(value) or value.startswith("_") or value in {"isDeleted"}:
            raise ValueError(f"{value!r} is not a usable user field name")
        return value

    @field_validator("identity_pattern")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _default_pattern(self) -> SyncSettings:
        if self.identity_pattern is None and self.user_match_field == "email":
            object.__setattr__(self, "identity_pattern", EMAIL_PATTERN)
        return self

    def session_window(self, interval: DataInterval) -> DataInterval:
        """The window stage 1 reads for a run's ``interval`` (widened by the overlap and the look-back)."""
        return session_window(
            interval,
            overlap=timedelta(minutes=self.session_overlap_minutes),
            at_least=timedelta(hours=self.session_window_hours) if self.session_window_hours else None,
        )

    def analytics_interval(self, interval: DataInterval) -> DataInterval:
        """The interval stage 2 reads for a run's ``interval`` (at least ``analytics_days_back`` days)."""
        return analytics_interval(interval, days_back=self.analytics_days_back)


PER_RUN_SETTINGS = {
    "dry_run": "a dry run is asked for per run: trigger the DAG with 'Dry run' ticked (conf {\"dry_run\": true})",
}
"""Settings only the trigger form may set, and where to set them: in the Variable they would apply to every
scheduled run (a ``dry_run`` there turns each one into a rehearsal that writes nothing)."""

LEGACY_ENVIRONMENT = {
    "UMAMI_WEBSITE_IDS": "website_ids",
    "SESSION_SYNC_WINDOW_HOURS": "session_window_hours",
    "ANALYTICS_SYNC_DAYS_BACK": "analytics_days_back",
}


def parse_variable(raw: str | None) -> dict[str, Any]:
    """The ``umami_sync_settings`` Variable as a dict; empty when unset."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"Variable {SETTINGS_VARIABLE!r} is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise SettingsError(f"Variable {SETTINGS_VARIABLE!r} must be a JSON object")
    return value


DEADLINE_OPTION = ("umami_sync", "deadline")
"""The Airflow configuration option (env ``AIRFLOW__UMAMI_SYNC__DEADLINE``) of the lateness deadline: it shapes the
DAG, so it is read when the DAG is parsed, where reading the Variable would be I/O."""


def deadline_after_queued(value: str) -> timedelta:
    """The deadline option, ``HH:MM``, as the time after a run is queued by which it must have finished: scheduled
    runs are queued at 00:00 UTC, so ``07:00`` means "finished by 07:00 UTC"."""
    hours, _, minutes = value.strip().partition(":")
    if hours.isdigit() and minutes.isdigit() and int(minutes) < 60:
        after = timedelta(hours=int(hours), minutes=int(minutes))
        if timedelta(0) < after < timedelta(hours=48):
            return after
    raise SettingsError(f"Airflow option [{DEADLINE_OPTION[0]}] {DEADLINE_OPTION[1]} = {value!r} is not a time "
                        "HH:MM (00:01 to 47:59) after a run is queued")


def alert_settings(raw: str | None) -> AlertSettings:
    """Only the ``alerts`` of the Variable: an alert about a run that a bad setting stopped still goes out."""
    try:
        return AlertSettings.model_validate(parse_variable(raw).get("alerts", {}))
    except ValidationError as exc:
        raise SettingsError(f"invalid umami_sync setting 'alerts': {_problems(exc)}") from None


ALERTS_OPTION = ("umami_sync", "alerts")
"""The Airflow configuration option (env ``AIRFLOW__UMAMI_SYNC__ALERTS``) whose notifiers hear about a run when the
Variable cannot be read, is invalid, or names none: the same JSON shape as the setting ``alerts``."""


def alert_option(raw: str | None) -> AlertSettings:
    """The notifiers of the :data:`ALERTS_OPTION` configuration option (none when it is unset)."""
    where = f"Airflow option [{ALERTS_OPTION[0]}] {ALERTS_OPTION[1]}"
    if raw is None or not raw.strip():
        return AlertSettings()
    try:
        return AlertSettings.model_validate_json(raw)
    except ValidationError as exc:
        raise SettingsError(f"{where}: {_problems(exc)}") from None


def variable_layer(raw: str | None) -> dict[str, Any]:
    """The settings of the ``umami_sync_settings`` Variable; a per-run setting there is refused, naming where it
    belongs."""
    layer = parse_variable(raw)
    for name, where in PER_RUN_SETTINGS.items():
        if name in layer:
            raise SettingsError(f"Variable {SETTINGS_VARIABLE!r} sets {name!r}, which would apply to every scheduled "
                                f"run; remove it from the Variable: {where}")
    return layer


def build_settings(*layers: Mapping[str, Any]) -> SyncSettings:
    """Merge layers of raw values (later wins; an explicit ``None`` is a value) and validate them once."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    try:
        return SyncSettings(**merged)
    except ValidationError as exc:
        raise SettingsError(f"invalid umami_sync setting: {_problems(exc)}") from None


def salvage_settings(*layers: Mapping[str, Any]) -> SyncSettings:
    """The settings a run whose own could not be resolved is recorded with: the defaults, and each value of the
    layers (later wins) that is valid on top of those kept before it; the rest is left out."""
    kept: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.items():
            try:
                SyncSettings(**{**kept, name: value})
            except ValidationError:
                continue
            kept[name] = value
    return SyncSettings(**kept)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                     for error in exc.errors())


def legacy_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The original tool's environment variables, under their setting names."""
    return {name: environ[variable] for variable, name in LEGACY_ENVIRONMENT.items() if environ.get(variable)}
