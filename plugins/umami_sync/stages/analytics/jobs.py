"""The mapped tasks of stage 2: which websites, and which sub-windows of the run's interval, each task reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from umami_sync.results import PlannedJob
from umami_sync.settings import SETTINGS_VARIABLE
from umami_sync.stages.analytics.sizing import auto_windows, check_map_length
from umami_sync.umami.errors import UmamiAuthError, UmamiCredentialsError, UmamiError
from umami_sync.umami.websites import all_websites
from umami_sync.windows import ApiWindow, DataInterval

if TYPE_CHECKING:
    from collections.abc import Iterable

    from umami_sync.settings import SyncSettings
    from umami_sync.umami.api import UmamiHook


class AnalyticsJob(PlannedJob):
    """One mapped task of stage 2: a website and one sub-window of the run's interval, and the run's websites."""

    run_websites: tuple[str, ...] = ()
    """Every website of the run: a user active on several is written by the task of the latest session."""

    @property
    def websites(self) -> tuple[str, ...]:
        """The websites of the run (this job's alone when it was planned without them)."""
        return self.run_websites or (self.website_id,)

    @property
    def contested(self) -> bool:
        """Whether another task of the run may hold a user's later session (another website or sub-window)."""
        return len(self.websites) > 1 or self.parts > 1


class UnknownWebsiteError(UmamiError):
    """A configured website id that no website the connection's user can see has."""


class NoWebsiteError(UmamiError):
    """Discovery found no website to sync: the connection's user sees none."""


def configured_websites(api: UmamiHook, website_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(id, name) of each configured website, checked against the API: an id no website has, or one the
    connection's user may not view, raises :class:`UnknownWebsiteError` naming it."""
    websites = []
    for website_id in website_ids:
        try:
            website = api.get_website(website_id)
        except UmamiAuthError as exc:
            if isinstance(exc, UmamiCredentialsError):
                raise
            raise UnknownWebsiteError(f"website {website_id}: the connection's user may not view it "
                                      f"({exc.message})") from None
        if website is None:
            raise UnknownWebsiteError(f"website {website_id}: Umami has no such website (or it was deleted)")
        websites.append((website.id, website.name))
    return websites


def _nothing_discovered(api: UmamiHook, *, include_teams: bool) -> str:
    who = api.credentials.who
    teams = (" A team member who does not own the team sees none of its websites (Umami lists the teams the user "
             "owns)." if include_teams else " Team websites are left out unless include_team_websites is on.")
    return (f"connection {api.umami_conn_id!r}: Umami lists no website for {who}, so there is nothing to sync."
            f"{teams} Set website_ids (in the Variable {SETTINGS_VARIABLE!r} or on the trigger form), or connect "
            "as a user who owns the websites (an admin sees every website).")


def plan_jobs(settings: SyncSettings, interval: DataInterval, api: UmamiHook) -> list[AnalyticsJob]:
    """The jobs of one run: every website (configured and checked, or discovered) x sub-window; more jobs than
    Airflow maps, or a website whose day cannot be split small enough, raise
    :class:`~umami_sync.stages.analytics.sizing.AnalyticsPlanError`."""
    if settings.website_ids:
        websites = configured_websites(api, settings.website_ids)
    else:
        websites = [(site.id, site.name) for site in all_websites(api, include_teams=settings.include_team_websites)]
        if not websites:
            raise NoWebsiteError(_nothing_discovered(api, include_teams=settings.include_team_websites))
    ids = tuple(website_id for website_id, _ in websites)
    jobs: list[AnalyticsJob] = []
    for website_id, name in websites:
        parts = _windows(settings, settings.analytics_interval(interval), api, website_id, name)
        jobs += [AnalyticsJob(website_id=website_id, website_name=name, window_start=part.start, window_end=part.end,
                              part=number, parts=len(parts), run_websites=ids)
                 for number, part in enumerate(parts, start=1)]
    check_map_length(len(jobs), len(websites))
    return jobs


def _windows(settings: SyncSettings, interval: DataInterval, api: UmamiHook, website_id: str,
             name: str) -> list[DataInterval]:
    """The sub-windows of one website: ``sub_windows`` equal parts, or (auto) as many as its rows need."""
    if settings.sub_windows != "auto":
        return interval.split(settings.sub_windows)
    return auto_windows(interval, lambda window: api.session_page(website_id, ApiWindow.of(window), 1, 1).count,
                        max_rows=settings.max_task_rows, what=f"website {name} ({website_id})")
