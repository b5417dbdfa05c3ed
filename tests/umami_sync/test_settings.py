"""Settings: one typed home, layered sources, errors that name the setting."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from umami_sync.runs import plan_run, run_interval, salvaged_settings
from umami_sync.settings import EMAIL_PATTERN, SettingsError, SyncSettings, build_settings, parse_variable

SITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
OTHER = "5b3a2b8e-2d0e-4c39-9f7e-0f2a9d3c6e11"
START, END = datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC)


def test_defaults() -> None:
    settings = SyncSettings()
    assert (settings.umami_db_conn_id, settings.umami_api_conn_id, settings.mongo_conn_id) == (
        "umami_db", "umami_api", "users_mongo")
    assert (settings.users_collection, settings.status_collection) == ("users", "systemconfigs")
    assert settings.identity_pattern == EMAIL_PATTERN
    assert settings.website_ids == () and not settings.dry_run


def test_legacy_environment_variable_layer_params_override_in_order() -> None:
    resolved = plan_run(
        {"website_ids": [OTHER.upper()], "dry_run": True},
        '{"page_size": 200, "website_ids": "' + SITE + '"}',
        {"UMAMI_WEBSITE_IDS": f"{SITE}, {OTHER}", "SESSION_SYNC_WINDOW_HOURS": "48", "ANALYTICS_SYNC_DAYS_BACK": "2"},
        START, END,
    )
    settings = resolved.settings
    assert settings.website_ids == (OTHER,)  # params win, ids normalised
    assert (settings.page_size, settings.session_window_hours, settings.analytics_days_back) == (200, 48, 2)
    assert settings.dry_run


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="page_size"):
        build_settings({"page_size": 0})
    with pytest.raises(SettingsError, match=r"website_ids.*not a website id"):
        build_settings({"website_ids": "not-a-uuid"})
    with pytest.raises(SettingsError, match="batch_sise"):
        build_settings({"batch_sise": 10})
    with pytest.raises(SettingsError, match="user_match_field"):
        build_settings({"user_match_field": "$where"})
    with pytest.raises(SettingsError, match="identity_pattern"):
        build_settings({"identity_pattern": "("})
    with pytest.raises(SettingsError, match="not valid JSON"):
        parse_variable("{page_size: 1}")
    with pytest.raises(SettingsError, match="JSON object"):
        parse_variable("[1]")


def test_sub_windows_are_auto_by_default_and_a_number_still_goes() -> None:
    assert (SyncSettings().sub_windows, SyncSettings().max_task_rows) == ("auto", 500_000)
    assert build_settings({"sub_windows": 4, "max_task_rows": 2_000_000}).sub_windows == 4
    for bad in (0, 97, "often"):
        with pytest.raises(SettingsError, match="sub_windows"):
            build_settings({"sub_windows": bad})
    with pytest.raises(SettingsError, match="max_task_rows"):
        build_settings({"max_task_rows": 0})


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_dry_run_in_the_variable_is_refused_naming_the_trigger_form(value: str) -> None:
    """A rehearsal is a per-run choice: in the Variable it would silently rehearse every scheduled run."""
    with pytest.raises(SettingsError) as refused:
        plan_run({}, '{"page_size": 200, "dry_run": ' + value + "}", {}, START, END)

    message = str(refused.value)
    assert "'umami_sync_settings' sets 'dry_run'" in message and "every scheduled run" in message
    assert "remove it from the Variable" in message and "'Dry run' ticked" in message
    assert plan_run({"dry_run": True}, '{"page_size": 200}', {}, START, END).settings.dry_run  # the form asks


def test_identity_pattern_defaults_to_none_for_other_match_fields() -> None:
    assert SyncSettings(user_match_field="userId").identity_pattern is None
    assert SyncSettings(user_match_field="userId", identity_pattern="^u-").identity_pattern == "^u-"


def test_run_interval_from_the_trigger_form_or_the_data_interval() -> None:
    assert run_interval({}, START, END).start == START
    days = run_interval({"date_from": "2026-11-01", "date_to": "2026-11-03"}, START, END)
    assert (days.start, days.end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))
    one = run_interval({"date_from": "2026-11-05"}, None, None)
    assert (one.start, one.end) == (datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 6, tzinfo=UTC))
    with pytest.raises(SettingsError, match="before"):
        run_interval({"date_from": "2026-11-05", "date_to": "2026-11-01"}, None, None)
    with pytest.raises(SettingsError, match="not a date"):
        run_interval({"date_from": "yesterday"}, None, None)
    with pytest.raises(SettingsError, match="no data interval"):
        run_interval({}, START, START)


def test_an_explicit_null_in_the_variable_is_a_value_so_drop_threshold_null_turns_drops_off() -> None:
    assert plan_run({}, "{}", {}, START, END).settings.drop_threshold == 0.5
    assert plan_run({}, '{"drop_threshold": null}', {}, START, END).settings.drop_threshold is None
    assert plan_run({}, '{"session_window_hours": null}', {"SESSION_SYNC_WINDOW_HOURS": "48"}, START,
                    END).settings.session_window_hours is None  # the Variable's null wins over the legacy env
    with pytest.raises(SettingsError, match="page_size"):
        plan_run({}, '{"page_size": null}', {}, START, END)  # a null where a number belongs is named, not ignored


def test_a_window_may_hold_at_most_five_percent_invalid_rows_by_default() -> None:
    assert SyncSettings().max_invalid_share == 0.05


def test_a_run_that_could_not_be_planned_is_recorded_with_what_still_parses() -> None:
    """The Variable's valid values stay (its status collection among them), a bad one is left out; a Variable that
    is not JSON adds nothing; a per-run setting in it is not taken; the trigger form's dry run still counts."""
    salvaged = salvaged_settings({"website_ids": [], "dry_run": None}, json.dumps(
        {"status_collection": "syncstatus", "page_size": 0, "mongo_conn_id": "app_mongo", "dry_run": True}), {})
    assert (salvaged.status_collection, salvaged.mongo_conn_id, salvaged.page_size, salvaged.dry_run) == (
        "syncstatus", "app_mongo", 5000, False)
    assert salvaged_settings({}, "{not json", {"ANALYTICS_SYNC_DAYS_BACK": "x"}) == SyncSettings()
    assert salvaged_settings({"dry_run": True}, "[1]", {}).dry_run
