"""The window arithmetic: half-open intervals, millisecond API ranges inclusive at both ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from umami_sync.windows import ApiWindow, DataInterval, analytics_interval, session_window, to_epoch_ms, to_utc

DAY = DataInterval(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


def test_api_window_ends_one_millisecond_before_the_next_starts() -> None:
    today, tomorrow = ApiWindow.of(DAY), ApiWindow.of(DataInterval(DAY.end, DAY.end + timedelta(days=1)))
    assert today.start_ms == 1795737600000
    assert today.end_ms == tomorrow.start_ms - 1
    assert today.end_ms - today.start_ms + 1 == 86_400_000  # every millisecond of the day, once


def test_sub_windows_tile_the_interval_without_gaps_or_overlaps() -> None:
    parts = DAY.split(7)
    windows = [ApiWindow.of(part) for part in parts]
    assert parts[0].start == DAY.start and parts[-1].end == DAY.end
    assert all(a.end_ms + 1 == b.start_ms for a, b in pairwise(windows))
    assert sum(w.end_ms - w.start_ms + 1 for w in windows) == 86_400_000


def test_naive_times_are_utc_and_empty_intervals_are_refused() -> None:
    assert DataInterval(datetime(2026, 11, 27), datetime(2026, 11, 28)) == DAY
    assert to_epoch_ms(datetime(1970, 1, 1, 0, 0, 1)) == 1000
    with pytest.raises(ValueError, match="empty interval"):
        DataInterval(DAY.end, DAY.start)
    with pytest.raises(ValueError, match="at least 1"):
        DAY.split(0)


def test_one_utc_rule_for_datetimes_and_the_iso_text_airflow_hands_callbacks() -> None:
    """The package's one UTC helper: stored naive dates (pymongo), aware ones in another zone, and the ISO text of a
    Deadline Alert's context all come out as the same aware UTC moment."""
    moment = datetime(2026, 11, 27, tzinfo=UTC)
    east = moment.astimezone(timezone(timedelta(hours=2)))
    assert [to_utc(value) for value in (datetime(2026, 11, 27), east, "2026-11-27T00:00:00Z",
                                        "2026-11-27T02:00:00+02:00", "2026-11-27T00:00:00")] == [moment] * 5
    assert all(to_utc(value).tzinfo is UTC for value in (east, "2026-11-27T02:00:00+02:00"))


def test_session_window_widens_by_the_overlap_and_the_look_back() -> None:
    assert session_window(DAY, overlap=timedelta(hours=1)).start == DAY.start - timedelta(hours=1)
    assert session_window(DAY, overlap=timedelta(0), at_least=timedelta(hours=48)).start == DAY.end - timedelta(
        hours=48)
    assert session_window(DAY, overlap=timedelta(hours=2), at_least=timedelta(hours=6)).start == DAY.start - \
        timedelta(hours=2)


def test_analytics_interval_reaches_back_whole_days() -> None:
    assert analytics_interval(DAY, days_back=1) == DAY
    assert analytics_interval(DAY, days_back=3).start == DAY.end - timedelta(days=3)
