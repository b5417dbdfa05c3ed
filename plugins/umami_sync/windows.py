"""One place for the window arithmetic: data interval -> PostgreSQL window and Umami API windows.

Airflow data intervals are half-open ``[start, end)``. PostgreSQL queries keep that shape. Umami's API
takes epoch milliseconds and is inclusive at both ends, so an API window ends one millisecond before the
next one starts: consecutive runs and consecutive sub-windows never overlap and never leave a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise


def to_utc(moment: datetime | str) -> datetime:
    """Return ``moment`` (a datetime, or ISO 8601 text as Airflow and JSON carry it) as an aware UTC datetime; naive
    values are taken as UTC. The package's one UTC rule."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware or naive-UTC datetime."""
    return int(to_utc(moment).timestamp() * 1000)


def from_epoch_ms(epoch_ms: int) -> datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


@dataclass(frozen=True)
class DataInterval:
    """A half-open UTC time range ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start))
        object.__setattr__(self, "end", to_utc(self.end))
        if self.start >= self.end:
            raise ValueError(f"empty interval: start {self.start.isoformat()} is not before end {self.end.isoformat()}")

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def days(self) -> str:
        """The UTC days it covers: ``2026-11-27``, or ``2026-11-25..2026-11-27``."""
        first, last = self.start.date().isoformat(), (self.end - timedelta(microseconds=1)).date().isoformat()
        return first if first == last else f"{first}..{last}"

    def widened(self, before: timedelta) -> DataInterval:
        """The same interval starting ``before`` earlier (for rows that are committed late)."""
        return DataInterval(self.start - before, self.end)

    def split(self, parts: int) -> list[DataInterval]:
        """Cut into ``parts`` consecutive intervals whose bounds fall on whole milliseconds."""
        if parts < 1:
            raise ValueError("parts must be at least 1")
        start_ms, end_ms = to_epoch_ms(self.start), to_epoch_ms(self.end)
        bounds = [start_ms + (end_ms - start_ms) * i // parts for i in range(parts + 1)]
        return [DataInterval(from_epoch_ms(a), from_epoch_ms(b)) for a, b in pairwise(bounds) if a < b]


@dataclass(frozen=True)
class ApiWindow:
    """An Umami API range: epoch milliseconds, inclusive at both ends."""

    start_ms: int
    end_ms: int

    @classmethod
    def of(cls, interval: DataInterval) -> ApiWindow:
        """The API range covering exactly the half-open ``interval``."""
        return cls(to_epoch_ms(interval.start), to_epoch_ms(interval.end) - 1)


def session_window(interval: DataInterval, *, overlap: timedelta, at_least: timedelta | None = None) -> DataInterval:
    """The window the session sync reads: the interval widened by ``overlap`` (rows committed late),
    and reaching back at least ``at_least`` from its end (the original tool's look-back setting)."""
    start = interval.start - overlap
    if at_least is not None:
        start = min(start, interval.end - at_least)
    return DataInterval(start, interval.end)


def analytics_interval(interval: DataInterval, *, days_back: int) -> DataInterval:
    """The interval the analytics sync reads: at least ``days_back`` days up to the interval end."""
    return DataInterval(min(interval.start, interval.end - timedelta(days=days_back)), interval.end)
