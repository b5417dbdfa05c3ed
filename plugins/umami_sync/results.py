"""The small typed figures that each stage hands on (through XCom) to the status stage."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_REPORTED_ERRORS = 10


class WriteTotals(BaseModel):
    """What a stream of bulk writes did to the users collection."""

    model_config = ConfigDict(extra="forbid")

    operations: int = Field(0, description="Update operations sent (in a dry run: built, not sent).")
    modified: int = 0
    failed: int = Field(0, description="Operations in batches (or parts of batches) that failed.")
    bulk_writes: int = 0
    errors: list[str] = Field(default_factory=list, description=f"At most {MAX_REPORTED_ERRORS} batch errors.")

    def add_error(self, message: str) -> None:
        """Keep the first errors; the count of failed operations carries the rest."""
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)


class SessionSyncResult(BaseModel):
    """Figures of stage 1: identities from Umami's PostgreSQL onto users."""

    model_config = ConfigDict(extra="forbid")

    window_start: datetime
    window_end: datetime
    dry_run: bool = False
    read: int = Field(0, description="Identity rows read (session distinct ids and session_data identities).")
    identified: int = Field(0, description="Distinct valid identities.")
    anonymous: int = Field(0, description="Sessions of the window with no identity at all.")
    invalid: int = Field(0, description="Rows whose identity is empty or malformed.")
    matched: int = Field(0, description="Identities that matched at least one user (not deleted).")
    updates: int = Field(0, description="User updates sent; in a dry run, the updates that would be sent.")
    modified: int = 0
    unmatched: int = 0
    failed: int = 0
    bulk_writes: int = 0
    errors: list[str] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """True when no write failed."""
        return self.failed == 0 and not self.errors


class AnalyticsResult(BaseModel):
    """Figures of one stage 2 task: one website and one window of the Umami API."""

    model_config = ConfigDict(extra="forbid")

    website_id: str
    website_name: str | None = None
    window_start: datetime
    window_end: datetime
    dry_run: bool = False
    sessions: int = Field(0, description="Distinct sessions fetched.")
    pages: int = 0
    requests: int = 0
    retries: int = 0
    logins: int = 0
    restarts: int = 0
    duplicates: int = 0
    invalid: int = 0
    matched: int = Field(0, description="Sessions that belong to a user (not deleted).")
    updates: int = Field(0, description="User updates sent; in a dry run, the updates that would be sent.")
    modified: int = 0
    failed: int = 0
    bulk_writes: int = 0
    error: str | None = Field(None, description="Why the task failed, if it did.")
    errors: list[str] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """True when the website's window was read and written completely."""
        return self.error is None and self.failed == 0
