"""Stage 1's pure core: identity groups and their owners in, one change per user and the counts out."""

from __future__ import annotations

from datetime import UTC, datetime

from umami_sync.owners import IdentityGroup
from umami_sync.stages.sessions import plan_session_changes
from umami_sync.users.updates import KnownSession

NOW = datetime(2026, 11, 28, 1, tzinfo=UTC)


def session(session_id: str, hour: int) -> KnownSession:
    return KnownSession(session_id, "w", datetime(2026, 11, 27, hour, tzinfo=UTC))


def test_one_change_per_user_and_identities_counted() -> None:
    ann = {"_id": 1, "email": "ann@x.io"}
    known = {"_id": 2, "email": "bo@x.io", "session_id": "b1",
             "umamiSessions": [session("b1", 8).as_document()]}
    groups = [IdentityGroup("ann@x.io", [session("a2", 9)]), IdentityGroup("nobody@x.io", [session("n1", 9)]),
              IdentityGroup("ann@x.io", [session("a1", 7)]),  # the same identity, sorted apart by the database
              IdentityGroup("bo@x.io", [session("b1", 8)])]  # nothing new for Bo

    plan = plan_session_changes(groups, {"ann@x.io": [ann], "bo@x.io": [known]}, keep=5, now=NOW)

    assert (plan.identities, plan.unmatched) == (4, ["nobody@x.io"])
    assert [(change.user_id, change.fields["session_id"]) for change in plan.changes] == [(1, "a2")]
    assert [entry["id"] for entry in plan.changes[0].fields["umamiSessions"]] == ["a2", "a1"]
