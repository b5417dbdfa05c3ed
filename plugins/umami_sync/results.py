"""The small typed figures that each stage hands on (through XCom) to the status stage.

Names say what is counted: ``rows`` are rows of a source (a database row, a line of Umami's list),
``identities`` are distinct people as Umami knows them, ``sessions`` are Umami sessions, ``users`` are user
documents, ``changes`` are writes the sync sends (in a dry run: would send).

A result is built once, when its stage ends, from the figures its parts kept (the reads, the pure cores, the
writes); its ``stage`` tells the status stage what it holds. ``RECORDED`` names the figures the status
document keeps: those that depend on the data only, not on how often a try was repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_REPORTED_ERRORS = 10
REFUSED_SAMPLE = 10


def mask_identity(identity: str) -> str:
    """An identity as a sample shows it: enough to look for, not the whole of it (``a***@example.com``)."""
    local, at, domain = identity.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{identity[:1]}***"


def stop_reason(exc: BaseException) -> str:
    """What a result records of the error that stopped its stage: the type and message, capped."""
    return f"{type(exc).__name__}: {exc}"[:500]


class RefusedUser(BaseModel):
    """A user whose change the server refused, and the server's reason (its code and message, no values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str
    code: int
    reason: str


class WriteTotals(BaseModel):
    """What a stream of guarded writes did to the users collection (kept by the writer while it writes)."""

    model_config = ConfigDict(extra="forbid")

    operations: int = Field(0, description="Changes sent (in a dry run: decided, not sent).")
    modified: int = 0
    failed: int = Field(0, description="Changes in batches (or parts of batches) that failed.")
    conflicts: int = Field(0, description="Changes merged again because another writer changed the user first.")
    bulk_writes: int = 0
    errors: list[str] = Field(default_factory=list, description=f"At most {MAX_REPORTED_ERRORS} batch errors.")
    refused: int = Field(0, description="Changes the server refused for a reason a retry cannot change.")
    refused_by_reason: dict[str, int] = Field(default_factory=dict)
    refused_users: list[RefusedUser] = Field(default_factory=list,
                                             description=f"The first {REFUSED_SAMPLE} refused users.")

    def add_error(self, message: str) -> None:
        """Keep the first errors; the count of failed changes carries the rest."""
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    def refuse(self, user_id: Any, code: int, name: str, reason: str) -> None:
        """Count a change the server refused for good, keeping the first users it refused and why."""
        self.refused += 1
        key = f"{code} {name}"
        self.refused_by_reason[key] = self.refused_by_reason.get(key, 0) + 1
        if len(self.refused_users) < REFUSED_SAMPLE:
            self.refused_users.append(RefusedUser(user_id=str(user_id), code=code, reason=reason))

    def result_fields(self) -> dict[str, Any]:
        """The figures of a stage result that come from the writes."""
        return {"changes": self.operations, "modified": self.modified, "failed": self.failed,
                "conflicts": self.conflicts, "bulk_writes": self.bulk_writes, "errors": list(self.errors),
                "refused": self.refused, "refused_by_reason": dict(self.refused_by_reason),
                "refused_users": list(self.refused_users)}


UmamiReads = Literal["database", "api"]
"""How a run reads Umami (setting ``identities_from``, ``auto`` resolved): ``database``, its PostgreSQL where a stage
reads it; ``api``, its API only (Umami Cloud)."""


class _StageResult(BaseModel):
    """What both stages report about their writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_start: datetime
    window_end: datetime
    dry_run: bool = False
    mode: UmamiReads = Field("database", description="How the stage read Umami: 'database' (its PostgreSQL where the "
                                                     "stage reads it) or 'api' (its API only, e.g. Umami Cloud: see "
                                                     "the README, 'Umami Cloud', for what that mode cannot see).")
    changes: int = Field(0, description="User changes sent; in a dry run, the changes a real run would send.")
    modified: int = Field(0, description="Users modified (a dry run modifies none).")
    failed: int = Field(0, description="Changes that could not be written.")
    conflicts: int = 0
    bulk_writes: int = 0
    errors: list[str] = Field(default_factory=list)
    refused: int = Field(0, description="Changes the server refused for a reason a retry cannot change.")
    refused_by_reason: dict[str, int] = Field(default_factory=dict, description="Refused changes by server code.")
    refused_users: list[RefusedUser] = Field(default_factory=list, description="The first refused users and why.")
    error: str | None = Field(None, description="Why the stage (or task) stopped early or failed, if it did.")

    RECORDED: ClassVar[tuple[str, ...]] = ("failed", "refused")

    def recorded_figures(self) -> dict[str, int]:
        """The figures the status document keeps, by name."""
        return {name: getattr(self, name) for name in self.RECORDED}

    @property
    def wrote_everything(self) -> bool:
        """True when every change was written and confirmed (none failed, none refused, no batch error)."""
        return self.failed == 0 and self.refused == 0 and not self.errors

    @property
    def worth_retrying(self) -> bool:
        """Whether a retry of the task can change the outcome: anything failed that is not a refusal for good."""
        return self.error is not None or self.failed > 0 or bool(self.errors)

    def failure(self) -> str | None:
        """Why the stage did not write everything, for the task's error; None when it did."""
        parts = [self.error] if self.error else [*self.errors]
        if not parts and self.failed:
            parts.append(f"{self.failed} changes failed")
        if self.refused:
            reasons = ", ".join(f"{count} x {reason}" for reason, count in sorted(self.refused_by_reason.items()))
            first = self.refused_users[0] if self.refused_users else None
            example = f"; first: user {first.user_id} ({first.code}: {first.reason})" if first else ""
            parts.append(f"the server refused {self.refused} changes, which a retry cannot change "
                         f"({reasons}){example}")
        return "; ".join(parts) or None


class SessionSyncResult(_StageResult):
    """Figures of stage 1: identities from Umami's PostgreSQL onto users."""

    stage: Literal["sessions"] = "sessions"
    rows_read: int = Field(0, description="Identity rows read (session distinct ids and session_data values).")
    invalid_rows: int = Field(0, description="Rows whose identity is empty or malformed.")
    identities: int = Field(0, description="Distinct valid identities (people) among the rows.")
    matched_identities: int = Field(0, description="Identities that matched at least one user (not deleted).")
    unmatched_identities: int = 0
    unmatched_sample: list[str] = Field(
        default_factory=list, description=f"The first {REFUSED_SAMPLE} identities that matched no user, masked "
                                          "when the result is built (``a***@example.com``).")
    anonymous_sessions: int = Field(0, description="Sessions of the window with no identity at all.")

    RECORDED = ("rows_read", "invalid_rows", "identities", "matched_identities", "unmatched_identities",
                "anonymous_sessions", "failed", "refused")

    @field_validator("unmatched_sample")
    @classmethod
    def _masked(cls, identities: list[str]) -> list[str]:
        return [mask_identity(identity) for identity in identities[:REFUSED_SAMPLE]]  # masking is idempotent

    @property
    def succeeded(self) -> bool:
        """True when the window was read and every write went through."""
        return self.error is None and self.wrote_everything

    def summary(self) -> str:
        """One log line, the key figures first."""
        return (f"modified={self.modified} failed={self.failed} changes={self.changes}{' (dry run)' * self.dry_run}"
                f" | identities={self.identities} matched={self.matched_identities}"
                f" unmatched={self.unmatched_identities} | rows_read={self.rows_read}"
                f" invalid_rows={self.invalid_rows} anonymous_sessions={self.anonymous_sessions}")


class AnalyticsResult(_StageResult):
    """Figures of one stage 2 task: one website and one window of the Umami API."""

    stage: Literal["analytics"] = "analytics"
    website_id: str
    website_name: str | None = None
    list_rows: int = Field(0, description="Rows Umami's session list says it holds (one per session and hostname).")
    rows_read: int = Field(0, description="Distinct rows read from the list.")
    missing_rows: int = Field(0, description="Rows of the list that could not be read: the task fails.")
    repeated_rows: int = Field(0, description="Rows the list served more than once (ties under offset paging).")
    invalid_rows: int = Field(0, description="Malformed rows, skipped.")
    invalid_field: str | None = Field(None, description="The field the most invalid rows failed on.")
    sessions: int = Field(0, description="Distinct sessions read.")
    merged_sessions: int = Field(0, description="Sessions on several hostnames, read per session (activity).")
    unread_sessions: int = Field(0, description="Listed sessions whose events could not be read: the task fails.")
    matched_sessions: int = Field(0, description="Sessions that belong to at least one user (not deleted).")
    left_to_other_tasks: int = Field(
        0, description="Users whose latest session of the run is another website's (or a later sub-window's): "
                       "that task writes them.")
    disproved_analytics: int = Field(
        0, description="Users whose stored umamiAnalytics their session's events do not bear out (a firstAt or "
                       "lastAt at which it had no event, more views or visits than it had): replaced.")
    sessions_without_span: int = Field(
        0, description="Contested sessions Umami's PostgreSQL gave no first and last event for: the list's lastAt "
                       "stood in for theirs (logged).")
    sessions_not_widened: int = Field(
        0, description="Sessions begun in an earlier sub-window whose figures over the run's interval could not be "
                       "read: this window's were written (logged).")
    events_left_out: int = Field(
        0, description="Events a session's activity answered outside the window asked for or of another session: "
                       "left out of its figures (reads of the activity route only).")
    list_pages: int = Field(0, description="Requests for pages of the session list (repair pages included).")
    repair_pages: int = 0
    restarts: int = 0
    session_reads: int = Field(0, description="Requests for one session's activity.")
    requests: int = Field(0, description="All requests of the task (logins and retries included).")
    retries: int = 0
    waited_seconds: float = Field(0.0, description="Seconds slept before retries (backoff and Retry-After).")
    rate_limited_seconds: float = Field(
        0.0, description="Seconds requests waited for the task's share of the rate limit (threads summed).")
    logins: int = 0
    retryable: bool = Field(True, description="False when retrying cannot help (refused credentials).")

    RECORDED = ("list_rows", "rows_read", "missing_rows", "repeated_rows", "invalid_rows", "sessions",
                "merged_sessions", "matched_sessions", "left_to_other_tasks", "failed", "refused")

    @property
    def job_key(self) -> tuple[str, datetime, datetime]:
        """The website and window of the job it is the result of (:attr:`PlannedJob.key`)."""
        return self.website_id, self.window_start, self.window_end

    @property
    def succeeded(self) -> bool:
        """True when the website's window was read and written completely."""
        return (self.error is None and self.wrote_everything and self.missing_rows == 0
                and self.unread_sessions == 0)

    @property
    def worth_retrying(self) -> bool:
        """Whether a retry of the task can change the outcome (not with refused credentials)."""
        return self.retryable and super().worth_retrying

    def summary(self) -> str:
        """One log line, the key figures first."""
        return (f"modified={self.modified} failed={self.failed} missing_rows={self.missing_rows}"
                f" changes={self.changes}{' (dry run)' * self.dry_run} | sessions={self.sessions}"
                f" matched={self.matched_sessions} merged={self.merged_sessions} | requests={self.requests}:"
                f" list_pages={self.list_pages} (repair {self.repair_pages}) session_reads={self.session_reads}"
                f" retries={self.retries} waited={self.waited_seconds:.1f}s"
                f" rate_limited={self.rate_limited_seconds:.1f}s | rows: listed={self.list_rows} read={self.rows_read}"
                f" repeated={self.repeated_rows} invalid={self.invalid_rows}")


class PlannedJob(BaseModel):
    """One mapped analytics task the plan made: a website and one sub-window of the run's interval (its map index is
    its place in the plan). Its ``label`` goes along when it is dumped; reading one back ignores it."""

    model_config = ConfigDict(frozen=True)

    website_id: str
    website_name: str | None = None
    window_start: datetime
    window_end: datetime
    part: int = 1
    parts: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """What the Airflow UI shows for this mapped task: the website and the days it syncs."""
        name = self.website_name or self.website_id
        part = f" {self.part}/{self.parts}" if self.parts > 1 else ""
        return f"{name} · {self.interval.days}{part}"

    @property
    def interval(self) -> DataInterval:
        """The half-open interval this job reads."""
        return DataInterval(self.window_start, self.window_end)

    @property
    def named(self) -> str:
        """The website as error messages name it: its name and id, or its id."""
        return f"{self.website_name} ({self.website_id})" if self.website_name else self.website_id

    @property
    def key(self) -> tuple[str, datetime, datetime]:
        """The website and window: what a result of this job has too (:meth:`AnalyticsResult.job_key`)."""
        return self.website_id, self.window_start, self.window_end


class PlanResult(BaseModel):
    """What ``plan_analytics`` decided: every job whose result the status expects (one per website and sub-window,
    in map-index order), the requests planning made, or why it could not plan."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["plan"] = "plan"
    jobs: list[PlannedJob] = Field(default_factory=list)
    requests: int = Field(0, description="All requests of planning (logins and retries included).")
    count_requests: int = Field(0, description="With sub_windows auto: requests of one list row for a window's "
                                               "row count.")
    logins: int = 0
    retries: int = 0
    error: str | None = None


class PlanRunResult(BaseModel):
    """Why ``plan_run`` could not resolve the run (it stores a result only when it fails): the status task still
    records the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["plan_run"] = "plan_run"
    error: str


StageResult = SessionSyncResult | AnalyticsResult | PlanResult | PlanRunResult


class FailedPart(BaseModel):
    """A stage or website that failed in a run, the days it synced and its first error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: str = Field(description="'session sync', or 'website <name>'.")
    website_id: str | None = None
    days: str
    error: str


class Drop(BaseModel):
    """A figure of a website's day that fell far below its usual (the median of its earlier kept days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    website_id: str
    website_name: str | None = None
    day: str
    figure: str = Field(description="'sessions' (listed) or 'matchedSessions' (sessions that belong to a user).")
    value: int
    usual: float
    days: int = Field(description="How many earlier days the usual is the median of.")


class InvalidRows(BaseModel):
    """A website whose list served rows the sync could not read (skipped, within ``max_invalid_share``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    website_id: str
    website_name: str | None = None
    rows: int
    field: str | None = Field(None, description="The field the most of them failed on.")


def failed_most(fields: Mapping[str, int]) -> str | None:
    """The field the most invalid rows failed on (of ``fields``: rows by field; the last name on a tie); None
    without any."""
    return max(fields.items(), key=lambda item: (item[1], item[0]))[0] if fields else None


class StatusResult(BaseModel):
    """What ``record_status`` hands on: how the run ended, what failed and what looks wrong, for the task that
    ends the run and for the alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["status"] = "status"
    run_id: str
    status: Literal["success", "partial", "failed"]
    days: str = Field(description="The days the run synced: '2026-11-27' or '2026-11-25..2026-11-27'.")
    dry_run: bool = False
    mode: UmamiReads | None = Field(None, description="How the run read Umami: 'database' or 'api' (Umami's API "
                                                      "only); None when no stage ran.")
    websites: int = 0
    failed: list[FailedPart] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    failure: str | None = Field(None, description="One line naming every failure; None when the run succeeded.")
    drops: list[Drop] = Field(default_factory=list)
    invalid_rows: list[InvalidRows] = Field(default_factory=list, description="Websites whose list rows were "
                                                                              "invalid and skipped.")
    rejected: dict[str, Any] = Field(default_factory=dict, description="Refused users and unmatched identities, "
                                                                       "by reason, with a sample of each.")
    modified: dict[str, int] = Field(default_factory=dict)
    changes: dict[str, int] = Field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """True when every stage and website succeeded."""
        return self.status == "success"
