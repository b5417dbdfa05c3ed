"""A session's activity, pure: read_activity against a session's events served as Umami serves them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from umami_sync.umami.activity import ACTIVITY_LIMIT, read_activity
from umami_sync.umami.errors import UmamiActivityError
from umami_sync.umami.models import ActivityEvent
from umami_sync.windows import ApiWindow

DAY = datetime(2026, 11, 10, tzinfo=UTC)
WINDOW = ApiWindow(int(DAY.timestamp() * 1000), int((DAY + timedelta(days=1)).timestamp() * 1000) - 1)
SESSION, OTHER_SESSION = "2e4f7ae8-4bb5-4a24-9a36-d37a0a30d0a1", "b1b1c5a3-8a5e-4dd4-a1bb-6d1ec2b2c2f0"


def event(when: datetime, visit: str, event_type: int = 1, hostname: str | None = "a.example.com") -> ActivityEvent:
    return ActivityEvent(created_at=when, event_id=str(uuid.uuid4()), event_type=event_type, visit_id=visit,
                         hostname=hostname)


@dataclass
class Activity:
    """A session's events served as Umami's activity endpoint does: in range, newest first, at most 500."""

    events: list[ActivityEvent]
    windows: list[ApiWindow] = field(default_factory=list)

    def __call__(self, window: ApiWindow) -> list[ActivityEvent]:
        self.windows.append(window)
        inside = [e for e in self.events
                  if window.start_ms <= int(e.created_at.timestamp() * 1000) <= window.end_ms]
        return sorted(inside, key=lambda e: e.created_at, reverse=True)[:ACTIVITY_LIMIT]


def test_activity_gives_exact_figures_across_hostnames() -> None:
    visit_a, visit_b = str(uuid.uuid4()), str(uuid.uuid4())
    at = DAY + timedelta(hours=10)
    served = Activity([event(at, visit_a), event(at + timedelta(minutes=15), visit_a, hostname="b.example.com"),
                       event(at + timedelta(minutes=30), visit_b, event_type=2, hostname="b.example.com")])

    read = read_activity(served, WINDOW, session_id=SESSION, what="session S")

    figures = read.figures
    assert figures is not None
    assert (figures.first_at, figures.last_at) == (at, at + timedelta(minutes=30))
    assert (figures.views, figures.visits, len(served.windows), read.left_out) == (2, 2, 1, 0)
    assert {name: (f.first_at, f.views, f.visits) for name, f in read.hostnames.items()} == {
        "a.example.com": (at, 1, 1), "b.example.com": (at + timedelta(minutes=15), 1, 2)}


def test_performance_beacons_are_not_activity() -> None:
    """Umami 3.1's activity answers a session's beacons (``event_type`` 5) with its page views."""
    visit = str(uuid.uuid4())
    at = DAY + timedelta(hours=10)
    served = Activity([event(at - timedelta(minutes=5), visit, event_type=5, hostname=None), event(at, visit),
                       event(at + timedelta(minutes=30), str(uuid.uuid4()), event_type=5, hostname=None)])

    figures = read_activity(served, WINDOW, session_id=SESSION, what="session S").figures

    assert figures is not None
    assert (figures.first_at, figures.last_at, figures.views, figures.visits) == (at, at, 1, 1)
    only_beacons = read_activity(Activity(served.events[2:]), WINDOW, session_id=SESSION, what="session S")
    assert (only_beacons.figures, only_beacons.hostnames) == (None, {})


def test_more_than_500_events_are_read_whole_even_when_they_tie_at_the_boundary() -> None:
    visits = [str(uuid.uuid4()) for _ in range(7)]
    start = DAY + timedelta(hours=1)
    # 1,234 page views, ten per second (whole seconds tie), in seven visits
    events = [event(start + timedelta(seconds=n // 10), visits[n % 7]) for n in range(1234)]
    served = Activity(events)

    figures = read_activity(served, WINDOW, session_id=SESSION, what="session S").figures

    assert figures is not None
    assert (figures.views, figures.visits) == (1234, 7)
    assert (figures.first_at, figures.last_at) == (start, start + timedelta(seconds=123))
    assert len(served.windows) == 3
    assert all(window.start_ms == WINDOW.start_ms for window in served.windows)


def test_500_events_at_one_instant_cannot_be_paged_and_say_so() -> None:
    served = Activity([event(DAY, str(uuid.uuid4())) for _ in range(ACTIVITY_LIMIT + 1)])

    with pytest.raises(UmamiActivityError, match="session S: more than 500 events at 2026-11-10T00:00:00"):
        read_activity(served, WINDOW, session_id=SESSION, what="session S")


def test_a_session_without_events_in_the_window_has_no_figures() -> None:
    assert read_activity(Activity([]), WINDOW, session_id=SESSION, what="session S").figures is None


def test_events_outside_the_window_or_of_another_session_are_left_out_and_counted() -> None:
    """Umami's newer activity route widens a linked session's window to whole months (copies here 3 days before and
    20 days after), and 2.x names each event's session: none of those counts, each is counted as left out."""
    visit = str(uuid.uuid4())
    at = DAY + timedelta(hours=10)
    own = [event(at, visit), event(at + timedelta(minutes=5), visit)]
    widened = [event(at - timedelta(days=3), visit), event(at + timedelta(days=20), visit),
               event(at + timedelta(minutes=1), visit).model_copy(update={"session_id": OTHER_SESSION})]

    def server(window: ApiWindow) -> list[ActivityEvent]:  # answers the month whatever it is asked for
        return sorted(own + widened, key=lambda e: e.created_at, reverse=True)

    read = read_activity(server, WINDOW, session_id=SESSION, what="session S")

    assert read.left_out == 3
    assert read.figures is not None
    assert (read.figures.first_at, read.figures.last_at, read.figures.views) == (at, at + timedelta(minutes=5), 2)
