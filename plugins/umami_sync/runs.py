"""What one DAG run works on: its settings and its data interval, resolved once and handed on by XCom."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from umami_sync.settings import (
    PER_RUN_SETTINGS,
    SettingsError,
    SyncSettings,
    build_settings,
    legacy_environment,
    parse_variable,
    salvage_settings,
    variable_layer,
)
from umami_sync.windows import DataInterval, to_utc

if TYPE_CHECKING:
    from collections.abc import Mapping

RUN_PARAMS = ("website_ids", "dry_run", "date_from", "date_to")
"""Trigger-form params; every other setting comes from the Variable or the defaults."""


class RunPlan(BaseModel):
    """Settings and interval of one run, as they travel through XCom."""

    model_config = ConfigDict(frozen=True)

    settings: SyncSettings
    interval_start: datetime
    interval_end: datetime

    @property
    def interval(self) -> DataInterval:
        """The half-open interval this run syncs."""
        return DataInterval(self.interval_start, self.interval_end)


def params_layer(params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a person set on the trigger form (empty values mean "not set")."""
    layer: dict[str, Any] = {}
    if params.get("website_ids"):
        layer["website_ids"] = params["website_ids"]
    if params.get("dry_run"):
        layer["dry_run"] = True
    return layer


def _day(params: Mapping[str, Any], name: str) -> date | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise SettingsError(f"param {name!r}: {value!r} is not a date (YYYY-MM-DD)") from exc


def run_interval(params: Mapping[str, Any], start: datetime | None, end: datetime | None) -> DataInterval:
    """The run's data interval, or whole days ``date_from``..``date_to`` (inclusive) from the trigger form."""
    first, last = _day(params, "date_from"), _day(params, "date_to")
    if first or last:
        first, last = first or last, last or first
        assert first is not None and last is not None
        if last < first:
            raise SettingsError(f"param 'date_to' ({last}) is before 'date_from' ({first})")
        begin = to_utc(datetime.combine(first, datetime.min.time()))
        return DataInterval(begin, to_utc(datetime.combine(last, datetime.min.time())) + timedelta(days=1))
    if start is None or end is None or start >= end:
        raise SettingsError(
            "this run has no data interval to sync; trigger it with a logical date or set 'date_from'/'date_to'"
        )
    return DataInterval(start, end)


def plan_run(params: Mapping[str, Any], variable: str | None, environ: Mapping[str, str],
             start: datetime | None, end: datetime | None) -> RunPlan:
    """Resolve settings (defaults < legacy env < Variable < params) and the interval, validating both."""
    settings = build_settings(legacy_environment(environ), variable_layer(variable), params_layer(params))
    interval = run_interval(params, start, end)
    return RunPlan(settings=settings, interval_start=interval.start, interval_end=interval.end)


def salvaged_settings(params: Mapping[str, Any], variable: str | None, environ: Mapping[str, str]) -> SyncSettings:
    """The settings that record a run whose own could not be resolved (``plan_run`` failed): the defaults and every
    value of the same layers that is still valid; a Variable that is not a JSON object adds nothing, nor does a
    per-run setting in it."""
    try:
        layer = parse_variable(variable)
    except SettingsError:
        layer = {}
    kept = {name: value for name, value in layer.items() if name not in PER_RUN_SETTINGS}
    return salvage_settings(legacy_environment(environ), kept, params_layer(params))
