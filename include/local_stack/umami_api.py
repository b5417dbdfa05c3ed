"""A local test double of Umami's REST API (2.20.2, 3.1.0 or 3.3) that answers from Umami's own PostgreSQL
database.

:class:`FakeUmami` serves, over real HTTP(S) on 127.0.0.1, the routes the sync uses, computing every body
with the SQL the chosen Umami version runs on PostgreSQL (``src/queries/sql/sessions/*.ts``,
``pagedRawQuery``), so the demo, the tests and the benchmark see exactly the rows in the database. The
versions differ where the sync can tell (``version``, named as the schema levels of :mod:`local_stack.postgres`):

- ``3.1.0`` (the default): what this page describes.
- ``2.20.2``: one list row per session, without ``hostname`` and ``events``; ``pageSize`` defaults to 10; an
  ``orderBy`` parameter gives a 500 (it appends a second ``order by``); activity rows are whole stored events
  (``id`` where 3.x has ``eventId``, no ``hasData``) and the activity range ignores ``reset_at``; websites have
  ``shareId`` and no replay columns.
- ``3.3``: the list and the activity leave performance beacons (``event_type`` 5) out; websites have
  ``recorderEnabled`` where 3.1 has ``replayEnabled``.
- ``3.4`` (on the 3.3 schema level; Umami's repository after 3.3, the commits named): as 3.3, plus
  - the activity route of identity stitching (``.../activity/route.ts`` at 188b628c): unless the request names a
    ``distinctId`` (a string of at most 50 characters), the session's ``session_link`` ids are looked up; when there
    is exactly one, the events of every session linked to that id are answered, and when that adds a session the
    range widens to whole months (UTC), the start of the first link's month to the end of the last one's. A named
    ``distinctId`` takes the place of the lookup: one linked to no session leaves the route on the one session;
  - the session list ordered ``max(created_at) desc, session_id`` (a tie-breaker), and the newer ``pagedRawQuery``'s
    cap (``prisma.test.ts`` at 17f0c4a4): a request's ``maxResults`` (a positive integer, as the UI sends 10,000) caps
    ``count`` at that many rows and the answer says ``isCapped: true`` once ``count`` reaches the cap (``false``
    otherwise, always sent). ``max_results`` makes the fake cap requests that ask for none, as a server or proxy
    that caps on its own would.

Self-hosted mode (``api_key=None``), routes under ``/api``, ``Authorization: Bearer <token>``:

- ``POST /api/auth/login`` {username, password} -> {token, user}; 401 ``incorrect-username-password``. With
  ``two_factor=True`` (an account with two-factor authentication, Umami 3.4's
  ``src/app/api/auth/login/contract.ts`` at ec0ff503) the right password gets 200 ``{requiresTwoFactor: true,
  partialToken}``; a partial token is never accepted as a bearer token (the fake has no ``/api/2fa/verify``).
- ``POST /api/auth/verify`` -> the user (with ``teams``).
- ``GET /api/users/{userId}/websites`` -> the fake user's websites, as ``/api/websites`` (401 for another id).
- ``GET /api/websites?page&pageSize&search&includeTeams`` -> websites the user owns (not soft-deleted), each
  with its ``user``; with ``includeTeams`` (any value: Umami tests the string) also the websites of the teams in
  which the user's role is ``team-owner`` (``team_user``, a team not soft-deleted), without ``user``
  (``getAllUserWebsitesIncludingTeamOwner``): a plain member gets none of a team's websites. Ordered by name.
- ``GET /api/websites/{id}`` -> the website (soft-deleted ones too); ``null`` when an admin asks for an
  unknown id.
- ``GET /api/websites/{id}/sessions?startAt&endAt&page&pageSize&search`` -> {data, count, page, pageSize}.
  As in Umami 3.x, one row per (session, hostname), ``count`` counts rows (a session's performance beacons,
  which have no hostname, are a row of their own with views 0 and events 0), and the order is
  ``max(created_at) desc`` with no tie-breaker: PostgreSQL's top-N sort then places rows whose last event
  times tie differently for each ``page * pageSize``, so under offset paging some rows repeat and as many
  are never listed, the same way on every repeat (the contract tests hold this to the real captures).
  Filters on the session's columns (``distinctId``, ``browser``, ``os``, ``device``, ``country``, ``region``,
  ``city``, ``language``) as ``<operator>.<value>`` work as 3.1.0's do on PostgreSQL: ``eq``/``neq`` (the default,
  a comma-separated list), ``c``/``dnc`` (``ilike``), ``re``/``nre`` (``~*``); every other operator (``s`` "is set",
  ``ns``...) gives no clause, so the filter is silently ignored. 2.20.2 takes no filter.
- ``GET /api/websites/{id}/sessions/stats?startAt&endAt`` -> the range's figures, ``visitors`` (sessions) among them.
- ``GET /api/websites/{id}/sessions/{sessionId}`` -> one session (``{}`` when unknown or without an event).
- ``GET /api/websites/{id}/sessions/{sessionId}/properties`` -> its ``session_data`` rows, of any time.
- ``GET /api/websites/{id}/session-data/properties?startAt&endAt`` -> each ``session_data`` key and how many
  sessions with an event in the range have it (2.20.2: ``propertyName`` picks one key).
- ``GET /api/websites/{id}/sessions/{sessionId}/activity?startAt&endAt`` -> its events in the range,
  newest first, at most 500.

As in Umami, query validation runs before authentication (a bad range gives 400 even without a token),
then ``canViewWebsite``: an admin may read any website id (unknown -> empty results), another role only
websites it owns or those of a team it belongs to, in any role (else 401). A website id that is not a uuid makes
PostgreSQL fail -> 500.

Self-hosted API keys (``api_keys``, Umami 3.4, ``src/lib/api-key.ts`` at 65bf19e0 and ``checkAuth`` in
``src/lib/auth.ts``): a bearer value that starts with ``umami_`` is taken as an API key, never as a token. A key of
``api_keys`` authorizes the fake user on every route except those under ``/api/me/password``,
``/api/me/api-keys``, ``/api/2fa``, ``/api/auth``, ``/api/users``, ``/api/admin`` and ``/api/oauth`` (401 there);
any other ``umami_`` value gets 401. With ``cloud_mode=True`` (a server with ``CLOUD_MODE`` set) keys are off: a
``umami_`` bearer is read as a token, which it is not, so every key gets 401 while logins work.

Umami Cloud mode (``api_key`` set): the same routes under ``/v1`` without ``/api`` (no login, no verify),
authenticated by ``x-umami-api-key``, limited to ``rate_limit`` calls per ``rate_window_seconds`` per key
(429 with an integer ``Retry-After``). ``/api/...`` answers 404 in this mode. Cloud runs with ``CLOUD_MODE``: a
self-hosted key sent as a bearer gets 401 there.

Validation errors reproduce Umami's ``badRequest(z.treeifyError(...))`` body; the exact zod wording of
3.1.0 may differ, so clients should rely on the status only. Not modelled: filters on event columns,
``match=any``, filters on routes other than the session list, ``startDate``/``endDate`` instead of
``startAt``/``endAt``, ``orderBy`` on 3.x, share tokens, the Cloud six-month window for accounts without a
subscription.

Faults are injected through :attr:`FakeUmami.faults` (a :class:`Faults`), which tests change at run time.
"""

from __future__ import annotations

import base64
import json
import math
import queue
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg.rows import dict_row

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator
    from types import TracebackType

DEFAULT_USER_ID = "41e2b680-648e-4b09-bcd7-3e2b10c06264"
VERSIONS = ("2.20.2", "3.1.0", "3.3", "3.4")
"""The Umami versions the fake speaks (named as the schema levels of :mod:`local_stack.postgres`, and 3.4)."""
V2 = "2.20.2"
V34 = "3.4"
"""Umami after 3.3 (its database at the 3.3 schema level)."""
NO_BEACONS = ("3.3", V34)
"""The versions whose list and activity leave performance beacons out."""
DEFAULT_PAGE_SIZE = {V2: 10}
"""``pageSize`` when a request gives none, where it is not 20."""
EVENT_TYPE_PAGE_VIEW = 1
EVENT_TYPE_CUSTOM_EVENT = 2
EVENT_TYPE_PERFORMANCE = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
API_KEY_PREFIX = "umami_"
"""How a self-hosted API key starts (Umami 3.4's ``API_KEY_PREFIX``)."""
API_KEY_REFUSED_PATHS = ("/api/me/password", "/api/me/api-keys", "/api/2fa", "/api/auth", "/api/users", "/api/admin",
                         "/api/oauth")
"""Where Umami refuses API keys (``API_KEY_BLOCKED_PATHS`` of ``src/lib/api-key.ts`` at 65bf19e0), by path prefix."""

def _session_list_sql(version: str) -> str:
    """getWebsiteSessions.ts (relationalQuery) as ``version`` runs it; {search} is its optional search clause.

    2.x groups by session only (no hostname, no events); 3.x by session and hostname; 3.3 leaves beacons out.
    """
    v3 = version != V2
    hostname = "website_event.hostname," if v3 else ""
    events = (f'sum(case when website_event.event_type = {EVENT_TYPE_CUSTOM_EVENT} then 1 else 0 end) as "events",'
              if v3 else "")
    same_website = "and session.website_id = website_event.website_id" if v3 else ""
    beacons = f"and website_event.event_type != {EVENT_TYPE_PERFORMANCE}" if version in NO_BEACONS else ""
    tie_breaker = ", session.session_id" if version == V34 else ""
    return f"""
    select
      session.session_id as "id",
      session.website_id as "websiteId",
      {hostname}
      session.browser,
      session.os,
      session.device,
      session.screen,
      session.language,
      session.country,
      session.region,
      session.city,
      min(website_event.created_at) as "firstAt",
      max(website_event.created_at) as "lastAt",
      count(distinct website_event.visit_id) as "visits",
      sum(case when website_event.event_type = {EVENT_TYPE_PAGE_VIEW} then 1 else 0 end) as "views",
      {events}
      max(website_event.created_at) as "createdAt"
    from website_event
    join session on session.session_id = website_event.session_id
      {same_website}
    where website_event.website_id = %(websiteId)s::uuid
      {beacons}
      and website_event.created_at between %(startDate)s and %(endDate)s
    {{search}}
    group by session.session_id,
      session.website_id,
      {hostname}
      session.browser,
      session.os,
      session.device,
      session.screen,
      session.language,
      session.country,
      session.region,
      session.city
    order by max(website_event.created_at) desc{tie_breaker}
"""


_SESSION_SEARCH_SQL = """and (distinct_id ilike %(search)s
           or city ilike %(search)s
           or browser ilike %(search)s
           or os ilike %(search)s
           or device ilike %(search)s)"""

FILTER_OPERATORS = ("eq", "neq", "s", "ns", "c", "dnc", "re", "nre", "t", "f", "gt", "lt", "gte", "lte", "bf", "af")
"""``OPERATORS`` of ``src/lib/constants.ts`` (3.1.0), in its order: ``parseFilterValue`` tries them in turn."""
_FILTER_VALUE = re.compile(rf"({'|'.join(FILTER_OPERATORS)})\.(.*)")
SESSION_FILTER_COLUMNS = {"os": "os", "browser": "browser", "device": "device", "country": "country",
                          "region": "region", "city": "city", "language": "language", "distinctId": "distinct_id"}
"""The filters of 3.x's ``filterParams`` on the ``session`` table (``SESSION_COLUMNS`` in ``FILTER_COLUMNS``)."""


def _session_filters(query: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The clauses and values 3.x adds to a session query for its session-column filters (``src/lib/params.ts``
    ``parseFilterValue``, ``src/lib/prisma.ts`` ``mapFilter`` and ``getQueryParams`` at v3.1.0).

    A value is ``<operator>.<value>`` or a bare value (equals). Equals and not-equals take a comma-separated list;
    contains and does-not-contain are ``ilike '%value%'``; regex is ``~*``. Every other operator (``s`` "is set",
    ``ns``, ...) gives no clause on PostgreSQL: the filter is silently ignored. Several filters are joined with
    ``and`` (``match=any`` is not modelled).
    """
    clauses: list[str] = []
    values: dict[str, Any] = {}
    for name, column in SESSION_FILTER_COLUMNS.items():
        if name not in query:
            continue
        found = _FILTER_VALUE.fullmatch(query[name])
        operator, value = (found.group(1), found.group(2)) if found else ("eq", query[name])
        param = f"filter_{name}"
        if operator in {"eq", "neq"}:
            values[param] = value.split(",")
            clause = f"session.{column} {'= ANY' if operator == 'eq' else '!= ALL'}(%({param})s)"
        elif operator in {"c", "dnc"}:
            values[param] = f"%{value}%"
            clause = f"session.{column} {'ilike' if operator == 'c' else 'not ilike'} %({param})s"
        elif operator in {"re", "nre"}:
            values[param] = value
            clause = f"session.{column} {'~*' if operator == 're' else '!~*'} %({param})s"
        else:
            continue
        clauses.append(f"and {clause}")
    return "\n    ".join(clauses), values


def _session_data_keys_sql(version: str, *, by_name: bool) -> str:
    """getSessionDataProperties.ts (relationalQuery): how many sessions with an event in the range have each
    session_data key (any time); 2.x joins on the session only and takes ``propertyName`` (``by_name``) as a
    filter."""
    same_website = "and session_data.website_id = website_event.website_id" if version != V2 else ""
    by_name_sql = "and data_key = %(propertyName)s" if version == V2 and by_name else ""
    return f"""
    select
        data_key as "propertyName",
        count(distinct session_data.session_id) as "total"
    from website_event
    join session_data
        on session_data.session_id = website_event.session_id
          {same_website}
    where website_event.website_id = %(websiteId)s::uuid
      and website_event.created_at between %(startDate)s and %(endDate)s
      {{by_name}}
    group by 1
    order by 2 desc
    limit 500
""".replace("{by_name}", by_name_sql)


def _session_stats_sql(version: str) -> str:
    """getWebsiteSessionStats.ts (relationalQuery): the range's events, sessions (``visitors``), visits,
    countries and custom events."""
    same_website = "and website_event.website_id = session.website_id" if version != V2 else ""
    return f"""
    select
      count(*) as "pageviews",
      count(distinct website_event.session_id) as "visitors",
      count(distinct website_event.visit_id) as "visits",
      count(distinct session.country) as "countries",
      sum(case when website_event.event_type = {EVENT_TYPE_CUSTOM_EVENT} then 1 else 0 end) as "events"
    from website_event
    join session on website_event.session_id = session.session_id
      {same_website}
    where website_event.website_id = %(websiteId)s::uuid
      and website_event.created_at between %(startDate)s and %(endDate)s
"""

# getWebsiteSession.ts (relationalQuery): sums of bigints are numerics, which Prisma sends as strings.
_SESSION_DETAIL_SQL = f"""
    select id,
      distinct_id as "distinctId",
      website_id as "websiteId",
      browser,
      os,
      device,
      screen,
      language,
      country,
      region,
      city,
      min(min_time) as "firstAt",
      max(max_time) as "lastAt",
      count(distinct visit_id) as visits,
      sum(views) as views,
      sum(events) as events,
      sum(floor(extract(epoch from (max_time - min_time)))) as "totaltime"
    from (select
          session.session_id as id,
          session.distinct_id,
          website_event.visit_id,
          session.website_id,
          session.browser,
          session.os,
          session.device,
          session.screen,
          session.language,
          session.country,
          session.region,
          session.city,
          min(website_event.created_at) as min_time,
          max(website_event.created_at) as max_time,
          sum(case when website_event.event_type = {EVENT_TYPE_PAGE_VIEW} then 1 else 0 end) as views,
          sum(case when website_event.event_type = {EVENT_TYPE_CUSTOM_EVENT} then 1 else 0 end) as events
    from session
    join website_event on website_event.session_id = session.session_id
    where session.website_id = %(websiteId)s::uuid
      and session.session_id = %(sessionId)s::uuid
    group by session.session_id, session.distinct_id, visit_id, session.website_id, session.browser,
      session.os, session.device, session.screen, session.language, session.country, session.region,
      session.city) t
    group by id, distinct_id, website_id, browser, os, device, screen, language, country, region, city
"""

# getSessionData.ts (relationalQuery).
_SESSION_PROPERTIES_SQL = """
    select
        website_id as "websiteId",
        session_id as "sessionId",
        data_key as "dataKey",
        data_type as "dataType",
        replace(string_value, '.0000', '') as "stringValue",
        number_value as "numberValue",
        date_value as "dateValue",
        created_at as "createdAt"
    from session_data
    where website_id = %(websiteId)s::uuid
      and session_id = %(sessionId)s::uuid
    order by data_key asc
"""

# getSessionActivity.ts (relationalQuery): every event of the session in the range, newest first, at most 500.
ACTIVITY_LIMIT = 500
_ACTIVITY_COLUMNS_V2 = """event_id as "id", website_id as "websiteId", session_id as "sessionId",
      visit_id as "visitId", created_at as "createdAt", url_path as "urlPath", url_query as "urlQuery",
      utm_source as "utmSource", utm_medium as "utmMedium", utm_campaign as "utmCampaign",
      utm_content as "utmContent", utm_term as "utmTerm", referrer_path as "referrerPath",
      referrer_query as "referrerQuery", referrer_domain as "referrerDomain", page_title as "pageTitle", gclid,
      fbclid, msclkid, ttclid, li_fat_id as "lifatid", twclid, event_type as "eventType",
      event_name as "eventName", tag, hostname"""
"""2.x answers Prisma's whole WebsiteEvent (``websiteEvent.findMany``), in the model's field order."""
_ACTIVITY_COLUMNS = """created_at as "createdAt",
      url_path as "urlPath",
      url_query as "urlQuery",
      referrer_domain as "referrerDomain",
      event_id as "eventId",
      event_type as "eventType",
      event_name as "eventName",
      visit_id as "visitId",
      hostname,
      event_id IN (select website_event_id
                   from event_data
                   where website_id = %(websiteId)s::uuid
                      and created_at between %(startDate)s and %(endDate)s) AS "hasData"
"""


def _activity_sql(version: str) -> str:
    """getSessionActivity.ts as ``version`` runs it (3.3 leaves beacons out; 3.4 reads a list of sessions)."""
    beacons = f"and event_type != {EVENT_TYPE_PERFORMANCE}" if version in NO_BEACONS else ""
    sessions = "session_id = any(%(sessionIds)s::uuid[])" if version == V34 else "session_id = %(sessionId)s::uuid"
    return f"""
    select
      {_ACTIVITY_COLUMNS_V2 if version == V2 else _ACTIVITY_COLUMNS}
    from website_event
    where website_id = %(websiteId)s::uuid
      and {sessions}
      {beacons}
      and created_at between %(startDate)s and %(endDate)s
    order by created_at desc
    limit {ACTIVITY_LIMIT}
"""


# getLinkedDistinctIds.ts and getLinkedSessionIds.ts (relationalQuery), 3.4's activity route.
_LINKED_DISTINCT_IDS_SQL = """
    select distinct distinct_id as "distinctId"
    from session_link
    where website_id = %(websiteId)s::uuid
      and session_id = %(sessionId)s::uuid
"""
_LINKED_SESSION_IDS_SQL = """
    select session_id as "sessionId", min(created_at) as "createdAt"
    from session_link
    where website_id = %(websiteId)s::uuid
      and distinct_id = %(distinctId)s
    group by session_id
"""
DISTINCT_ID_LENGTH = 50
"""FIELD_LENGTH.distinctId: the longest ``distinctId`` 3.4's activity route accepts."""


def _start_of_month(moment: datetime) -> datetime:
    """date-fns ``startOfMonth`` on a server running in UTC."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _end_of_month(moment: datetime) -> datetime:
    """date-fns ``endOfMonth`` on a server running in UTC: the month's last millisecond."""
    start = _start_of_month(moment)
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return following - timedelta(milliseconds=1)


# Prisma's Website model of each version, in its field order.
_WEBSITE_FIELDS = {
    V2: 'website_id as "id", name, domain, share_id as "shareId", reset_at as "resetAt", user_id as "userId", '
        'team_id as "teamId", created_by as "createdBy", created_at as "createdAt", updated_at as "updatedAt", '
        'deleted_at as "deletedAt"',
    "3.1.0": 'website_id as "id", name, domain, reset_at as "resetAt", user_id as "userId", team_id as "teamId", '
             'created_by as "createdBy", created_at as "createdAt", updated_at as "updatedAt", '
             'deleted_at as "deletedAt", replay_enabled as "replayEnabled", replay_config as "replayConfig"',
    "3.3": 'website_id as "id", name, domain, reset_at as "resetAt", user_id as "userId", team_id as "teamId", '
           'created_by as "createdBy", created_at as "createdAt", updated_at as "updatedAt", '
           'deleted_at as "deletedAt", recorder_enabled as "recorderEnabled", replay_config as "replayConfig"',
}
_WEBSITE_FIELDS[V34] = _WEBSITE_FIELDS["3.3"]

# getUserWebsites (getWebsites): live websites of the user; {fields} are the version's.
_WEBSITE_LIST_SQL = """
    select {fields} from website
    where deleted_at is null
      and {owner}
      {search}
    order by name, website_id
"""

# getAllUserWebsitesIncludingTeamOwner (3.1.0 src/queries/prisma/website.ts): the website's team is not deleted
# and has the user among its members with the role team-owner.
_TEAM_OWNER = """exists (select 1 from team t join team_user m on m.team_id = t.team_id
    where t.team_id = website.team_id and t.deleted_at is null and m.user_id = %(userId)s::uuid
      and m.role = 'team-owner')"""

# getWebsite: findUnique by id, soft-deleted ones included.
_WEBSITE_SQL = """
    select {fields} from website
    where website_id = %(websiteId)s::uuid
"""


@dataclass
class Faults:
    """Failures the fake injects; tests change the fields while it runs.

    - ``throttle_next``: the next N requests (any route) get 429 with ``Retry-After: retry_after_seconds``
      (sent as given; real servers send whole seconds, and a client may ignore a fraction).
    - ``fail_next``: the next N session-list requests get 500 with Umami's ``serverError`` body.
    - ``delay_next`` / ``delay_seconds``: the next N requests sleep first (to exceed a client timeout).
    - ``malformed_ids``: session-list rows with these ids are served with ``visits: "many"`` and
      ``lastAt: "not-a-date"``.
    - ``drop_id_ids``: session-list rows with these ids are served without their ``id`` key.
    - ``hidden_ids``: session-list rows with these ids are never served, though ``count`` still counts them
      (a list that loses rows whatever the paging).
    - ``slow_websites``: session-list requests of these website ids sleep this many seconds first (a task that
      runs long enough to be killed or marked failed while it runs).
    - ``on_session_page``: called with the page number after a session page is computed, before it is
      sent (e.g. to insert rows between pages).
    """

    throttle_next: int = 0
    retry_after_seconds: float = 1.0
    fail_next: int = 0
    delay_next: int = 0
    delay_seconds: float = 0.0
    malformed_ids: set[str] = field(default_factory=set)
    drop_id_ids: set[str] = field(default_factory=set)
    hidden_ids: set[str] = field(default_factory=set)
    slow_websites: dict[str, float] = field(default_factory=dict)
    on_session_page: Callable[[int], None] | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _QueryError(Exception):
    """A query parameter failed Umami's zod schema: carries the treeified issues."""

    def __init__(self, errors: list[str], properties: dict[str, list[str]]) -> None:
        super().__init__("bad request")
        self.errors = errors
        self.properties = properties


def _error(status: int, message: str, code: str, **extra: Any) -> _Reply:
    """Umami's ``src/lib/response.ts`` error body."""
    return _Reply(status, {"error": {"message": message, "code": code, "status": status, **extra}})


def _bad_request(issue: _QueryError) -> _Reply:
    tree: dict[str, Any] = {"errors": issue.errors}
    if issue.properties:
        tree["properties"] = {name: {"errors": errors} for name, errors in issue.properties.items()}
    return _error(400, "Bad request", "bad-request", **tree)


def _unauthorized(code: str = "unauthorized") -> _Reply:
    return _error(401, "Unauthorized", code)


def _server_error() -> _Reply:
    return _error(500, "Server error", "server-error")


def _iso(moment: datetime) -> str:
    """A JavaScript ``Date`` in JSON: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _decimal_text(value: Decimal) -> str:
    """A Prisma ``Decimal`` in JSON: a string without trailing zeros."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json_value(value: Any) -> Any:
    """A PostgreSQL value as Prisma serializes it (bigint -> number, numeric -> string)."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    return value


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: _json_value(value) for key, value in row.items()}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _js_number(text: str) -> float:
    """``Number(text)`` as JavaScript computes it (NaN for what it cannot read)."""
    stripped = text.strip()
    if not stripped:
        return 0.0
    if stripped in {"Infinity", "+Infinity", "-Infinity"}:
        return -math.inf if stripped.startswith("-") else math.inf
    if "_" in stripped or stripped.lower().lstrip("+-") in {"inf", "infinity", "nan"}:
        return math.nan
    try:
        if stripped.lower().startswith(("0x", "0o", "0b")):
            return float(int(stripped, 0))
        return float(stripped)
    except ValueError:
        return math.nan


def _js_date(epoch_ms: float) -> datetime:
    """``new Date(epoch_ms)``: whole milliseconds, UTC (OverflowError past Python's year 9999)."""
    return _EPOCH + timedelta(milliseconds=int(epoch_ms))


class _QueryParams:
    """Reads query parameters the way Umami's zod schemas coerce them, collecting every issue."""

    def __init__(self, query: dict[str, str]) -> None:
        self._query = query
        self.properties: dict[str, list[str]] = {}

    def number(self, name: str, *, integer: bool = False, positive: bool = False,
               required: bool = False) -> float | None:
        """``z.coerce.number()[.int()][.positive()]``, ``.optional()`` unless ``required``."""
        if name not in self._query:
            if required:  # z.coerce.number() of undefined is NaN
                self.properties.setdefault(name, []).append("Invalid input: expected number, received NaN")
            return None
        value = _js_number(self._query[name])
        if not math.isfinite(value):
            self.properties.setdefault(name, []).append(
                f"Invalid input: expected number, received {'NaN' if math.isnan(value) else 'Infinity'}")
            return None
        if integer and not value.is_integer():
            self.properties.setdefault(name, []).append("Invalid input: expected int, received number")
            return None
        if positive and value <= 0:
            self.properties.setdefault(name, []).append("Too small: expected number to be >0")
            return None
        return value

    def text(self, name: str, *, max_length: int) -> str | None:
        """``z.string().max(max_length).optional()``."""
        value = self._query.get(name)
        if value is not None and len(value) > max_length:
            self.properties.setdefault(name, []).append(
                f"Too big: expected string to have <={max_length} characters")
            return None
        return value

    def check(self) -> None:
        """Raise :class:`_QueryError` when any parameter failed."""
        if self.properties:
            raise _QueryError([], self.properties)

    def refusal(self) -> _Reply | None:
        """Umami's 400 answer when any parameter failed, else None."""
        try:
            self.check()
        except _QueryError as issue:
            return _bad_request(issue)
        return None


def _zod_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


class _ConnectionPool:
    """A few autocommit connections, reused across request threads."""

    def __init__(self, dsn: str, max_idle: int = 8) -> None:
        self._dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection[dict[str, Any]]] = queue.LifoQueue(max_idle)
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """Lend a connection; one that raised is closed instead of returned."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        if self._closed or conn.closed:
            conn.close()
            return
        try:
            self._idle.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        """Close every idle connection; connections lent out close when returned."""
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeUmami, ssl_context: ssl.SSLContext | None, port: int) -> None:
        self.fake = fake
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is not None:
            # The handshake runs in the request thread, so a slow client cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return  # a client that went away (e.g. after its own timeout)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def setup(self) -> None:
        connection = cast("socket.socket", self.request)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(connection, ssl.SSLSocket):
            connection.settimeout(self.timeout)
            connection.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the fake keeps its own request log."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = cast("_Server", self.server).fake._respond(self.command, self.path, headers, raw_body)
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - names http.server dispatches on


class FakeUmami:
    """Umami's REST API (``version``: one of :data:`VERSIONS`) on 127.0.0.1 over the PostgreSQL database at
    ``dsn`` (see the module doc)."""

    def __init__(self, dsn: str, *, version: str = "3.1.0", username: str = "admin", password: str = "umami",
                 user_id: str = DEFAULT_USER_ID, api_key: str | None = None, role: str = "admin",
                 api_keys: Collection[str] = (), two_factor: bool = False, cloud_mode: bool = False,
                 user_created_at: datetime = datetime(2026, 11, 27, 15, 38, 58, 314000, tzinfo=UTC),
                 rate_limit: int = 50, rate_window_seconds: float = 15.0, max_results: int | None = None,
                 ssl_context: ssl.SSLContext | None = None, port: int = 0) -> None:
        if version not in VERSIONS:
            raise ValueError(f"FakeUmami speaks Umami {', '.join(VERSIONS)}, not {version!r}")
        if max_results is not None and version != V34:
            raise ValueError(f"Umami {version} caps no list (maxResults came after 3.3)")
        self.version = version
        self.max_results = max_results
        self.default_page_size = DEFAULT_PAGE_SIZE.get(version, 20)
        self.port = port
        self.username = username
        self.password = password
        self.user_id = user_id
        self.api_key = api_key
        self.api_keys = frozenset(api_keys)
        self.two_factor = two_factor
        self.cloud_mode = cloud_mode
        self.role = role
        self.user_created_at = user_created_at
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.faults = Faults()
        self._ssl_context = ssl_context
        self._pool = _ConnectionPool(dsn)
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._partial_tokens: set[str] = set()
        self._calls: dict[str, deque[float]] = {}
        self._log: list[RequestRecord] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (``https`` with an ``ssl_context``)."""
        if self._server is None:
            raise RuntimeError("FakeUmami is not running: call start() first")
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def is_admin(self) -> bool:
        """Whether the fake user has Umami's ``admin`` role."""
        return self.role == "admin"

    def start(self) -> FakeUmami:
        """Bind a free port and serve in a background thread."""
        self._server = _Server(self, self._ssl_context, self.port)
        # A short poll interval lets stop() return within ~50 ms.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-umami", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the database connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.close()

    def __enter__(self) -> FakeUmami:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- test controls ---------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Clear the faults, the request log and the rate-limit windows (tokens stay valid)."""
        with self._lock:
            defaults = Faults()
            for spec in fields(Faults):
                setattr(self.faults, spec.name, getattr(defaults, spec.name))
            self._log.clear()
            self._calls.clear()

    @property
    def partial_tokens(self) -> frozenset[str]:
        """The partial tokens of two-factor logins issued so far (for tests that look for them where they must
        not be)."""
        with self._lock:
            return frozenset(self._partial_tokens)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far, as a change of Umami's APP_SECRET does."""
        with self._lock:
            self._tokens.clear()

    # --- HTTP ------------------------------------------------------------------------------------------

    def _respond(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> _Reply:
        """Answer one request (``headers`` with lower-case names) and log it."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            reply = self._route(method, parts.path, query, headers, raw_body)
        except (psycopg.Error, OverflowError):
            reply = _server_error()  # e.g. a website id PostgreSQL cannot cast to uuid, a date past 9999
        with self._lock:
            self._log.append(RequestRecord(method, parts.path, query, reply.status))
        return reply

    def _take(self, counter: str) -> bool:
        """Consume one unit of a ``Faults`` counter; False when it is exhausted."""
        with self._lock:
            remaining: int = getattr(self.faults, counter)
            if remaining <= 0:
                return False
            setattr(self.faults, counter, remaining - 1)
            return True

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               raw_body: bytes) -> _Reply:
        if self._take("delay_next"):
            time.sleep(self.faults.delay_seconds)
        if self._take("throttle_next"):
            reply = _error(429, "Too many requests", "too-many-requests")
            reply.headers["Retry-After"] = f"{self.faults.retry_after_seconds:g}"
            return reply

        prefix = "/v1/" if self.api_key is not None else "/api/"
        if not path.startswith(prefix):
            return _error(404, "Not found", "not-found")
        if self.api_key is not None:
            if headers.get("x-umami-api-key") != self.api_key:
                return _unauthorized()
            wait = self._rate_limit_wait(self.api_key)
            if wait is not None:
                reply = _error(429, "Too many requests", "too-many-requests")
                reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return reply
            authorized = True
        else:
            authorized = self._bearer_authorized(path, headers.get("authorization", ""))

        segments = path[len(prefix):].rstrip("/").split("/")
        return self._dispatch(method, segments, query, authorized, raw_body)

    def _dispatch(self, method: str, segments: list[str], query: dict[str, str], authorized: bool,
                  raw_body: bytes) -> _Reply:
        expected, handler = self._find_route(segments, query, authorized, raw_body)
        if handler is None:
            return _error(404, "Not found", "not-found")
        if method != expected:
            return _error(405, "Method not allowed", "method-not-allowed")
        return handler()

    def _find_route(self, segments: list[str], query: dict[str, str], authorized: bool,
                    raw_body: bytes) -> tuple[str, Callable[[], _Reply] | None]:
        cloud = self.api_key is not None
        match segments:
            case ["auth", "login"] if not cloud:
                return "POST", lambda: self._login(raw_body)
            case ["auth", "verify"] if not cloud:
                return "POST", lambda: self._verify(authorized)
            case ["websites"]:
                return "GET", lambda: self._websites(query, authorized)
            case ["users", user_id, "websites"] if not cloud:
                return "GET", lambda: self._websites(query, authorized and user_id == self.user_id)
            case ["websites", website_id]:
                return "GET", lambda: self._website(website_id, authorized)
            case ["websites", website_id, "sessions"]:
                return "GET", lambda: self._session_list(website_id, query, authorized)
            case ["websites", website_id, "sessions", "stats"]:  # a static segment wins over [sessionId]
                return "GET", lambda: self._session_stats(website_id, query, authorized)
            case ["websites", website_id, "session-data", "properties"]:
                return "GET", lambda: self._session_data_keys(website_id, query, authorized)
            case ["websites", website_id, "sessions", session_id]:
                return "GET", lambda: self._session_detail(website_id, session_id, authorized)
            case ["websites", website_id, "sessions", session_id, "properties"]:
                return "GET", lambda: self._session_properties(website_id, session_id, authorized)
            case ["websites", website_id, "sessions", session_id, "activity"]:
                return "GET", lambda: self._session_activity(website_id, session_id, query, authorized)
        return "", None

    def _bearer_authorized(self, path: str, authorization: str) -> bool:
        """Umami's ``checkAuth`` for a bearer value: an API key where keys are on, else a login token."""
        parts = authorization.split(" ")
        bearer = parts[1] if len(parts) > 1 else ""
        if not self.cloud_mode and bearer.startswith(API_KEY_PREFIX):
            return bearer in self.api_keys and not any(
                path == refused or path.startswith(f"{refused}/") for refused in API_KEY_REFUSED_PATHS)
        with self._lock:
            return bearer in self._tokens

    def _rate_limit_wait(self, key: str) -> float | None:
        """Record a call for ``key``; seconds until the next one is allowed when over the limit."""
        now = time.monotonic()
        with self._lock:
            window = self._calls.setdefault(key, deque())
            while window and now - window[0] >= self.rate_window_seconds:
                window.popleft()
            if len(window) >= self.rate_limit:
                return window[0] + self.rate_window_seconds - now
            window.append(now)
            return None

    # --- routes ----------------------------------------------------------------------------------------

    def _user(self) -> dict[str, Any]:
        return {"id": self.user_id, "username": self.username, "role": self.role,
                "createdAt": _iso(self.user_created_at), "isAdmin": self.is_admin}

    def _login(self, raw_body: bytes) -> _Reply:
        try:
            body: Any = json.loads(raw_body)
            received = _zod_type(body)
        except ValueError:  # no body, or not JSON: Umami's getJsonBody gives undefined
            body, received = None, "undefined"
        if not isinstance(body, dict):
            return _bad_request(_QueryError([f"Invalid input: expected object, received {received}"], {}))
        issues = {name: [f"Invalid input: expected string, received {_zod_type(body[name])}"
                         if name in body else "Invalid input: expected string, received undefined"]
                  for name in ("username", "password") if not isinstance(body.get(name), str)}
        if issues:
            return _bad_request(_QueryError([], issues))
        if body["username"] != self.username or body["password"] != self.password:
            return _unauthorized("incorrect-username-password")
        if self.two_factor:  # a partial token proves the password only: no route accepts it
            partial = base64.b64encode(secrets.token_bytes(200)).decode()
            with self._lock:
                self._partial_tokens.add(partial)
            return _Reply(200, {"requiresTwoFactor": True, "partialToken": partial})
        token = base64.b64encode(secrets.token_bytes(300)).decode()
        with self._lock:
            self._tokens.add(token)
        return _Reply(200, {"token": token, "user": {**self._user(), "teams": []}})

    def _verify(self, authorized: bool) -> _Reply:
        if not authorized:
            return _unauthorized()
        return _Reply(200, {**self._user(), "teams": []})

    def _can_view_website(self, website_id: str) -> bool:
        """Umami 3.1.0's ``canViewWebsite`` (``src/permissions/website.ts``) for the fake user: its own website, or
        one of a team it belongs to in any role (``getTeamUser``)."""
        if self.is_admin:
            return True
        if not _is_uuid(website_id):
            return False
        with self._pool.connection() as conn:
            row = conn.execute("select user_id, team_id, exists (select 1 from team_user m where m.team_id ="
                               " website.team_id and m.user_id = %s::uuid) as member from website"
                               " where website_id = %s::uuid", (self.user_id, website_id)).fetchone()
        if row is None:
            return False
        if row["user_id"] is not None:
            return str(row["user_id"]) == self.user_id
        return bool(row["team_id"] is not None and row["member"])

    def _websites(self, query: dict[str, str], authorized: bool) -> _Reply:
        params = _QueryParams(query)
        page = params.number("page", integer=True, positive=True)
        page_size = params.number("pageSize", integer=True, positive=True)
        if (refused := params.refusal()) is not None:
            return refused
        if not authorized:
            return _unauthorized()
        search = query.get("search") or None
        include_teams = bool(query.get("includeTeams"))  # `if (query.includeTeams)`: "false" is a string too
        size = int(page_size or self.default_page_size)
        number = int(page or 1)
        owner = f"(user_id = %(userId)s::uuid or {_TEAM_OWNER})" if include_teams else "user_id = %(userId)s::uuid"
        search_sql = "and (name ilike %(search)s or domain ilike %(search)s)" if search else ""
        sql = _WEBSITE_LIST_SQL.format(fields=_WEBSITE_FIELDS[self.version], owner=owner, search=search_sql)
        # Prisma's ``contains`` matches the search text literally: escape LIKE's wildcards.
        literal = (search or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        values = {"userId": self.user_id, "search": f"%{literal}%"}
        with self._pool.connection() as conn:
            count = conn.execute(f"select count(*) as num from ({sql}) t", values).fetchone()
            rows = conn.execute(f"{sql} limit {size} offset {size * (number - 1)}", values).fetchall()
        data = []
        for row in rows:
            website = _json_row(row)
            if not include_teams:  # getUserWebsites includes the owner; the team query includes nothing
                website["user"] = {"username": self.username, "id": self.user_id}
            website.setdefault("shareId", None)
            data.append(website)
        body: dict[str, Any] = {"data": data, "count": count["num"] if count else 0, "page": number,
                                "pageSize": size}
        if search:
            body["search"] = search
        return _Reply(200, body)

    def _session_list(self, website_id: str, query: dict[str, str], authorized: bool) -> _Reply:
        params = _QueryParams(query)
        start_at = params.number("startAt")
        end_at = params.number("endAt")
        page = params.number("page", integer=True, positive=True)
        page_size = params.number("pageSize", integer=True, positive=True)
        cap = params.number("maxResults", integer=True, positive=True) if self.version == V34 else None
        try:
            params.check()
            if start_at is None or end_at is None:  # Umami's withDateRange refinement
                raise _QueryError(["Either startAt+endAt or startDate+endDate must be provided"], {})
        except _QueryError as issue:
            return _bad_request(issue)
        if not authorized or not self._can_view_website(website_id):
            return _unauthorized()
        if self._take("fail_next"):
            return _server_error()
        time.sleep(self.faults.slow_websites.get(website_id, 0))
        if self.version == V2 and "orderBy" in query:  # a second "order by" after the query's own
            return _server_error()
        number = int(page or 1)
        size = int(page_size or self.default_page_size)
        search = query.get("search") or None
        filters, filter_values = _session_filters(query) if self.version != V2 else ("", {})  # 2.x: no filters
        sql = _session_list_sql(self.version).format(search=(_SESSION_SEARCH_SQL if search else "") + filters)
        with self._pool.connection() as conn:
            values = {"websiteId": website_id, "search": f"%{search}%", **filter_values,
                      "startDate": self._start_date(conn, website_id, start_at),
                      "endDate": _js_date(end_at)}
            limit = int(cap or self.max_results or 0)
            counted = f"{sql} limit {limit}" if limit else sql  # the newer pagedRawQuery counts up to the cap
            count = conn.execute(f"select count(*) as num from ({counted}) t", values).fetchone()
            rows = conn.execute(f"{sql}limit {size} offset {size * (number - 1)}", values).fetchall()
        data = [self._served_session(_json_row(row)) for row in rows
                if str(row["id"]) not in self.faults.hidden_ids]
        callback = self.faults.on_session_page
        if callback is not None:
            callback(number)
        total = count["num"] if count else 0
        body: dict[str, Any] = {"data": data, "count": total, "page": number, "pageSize": size}
        if self.version == V34:
            body["isCapped"] = bool(limit) and total >= limit
        return _Reply(200, body)

    @staticmethod
    def _start_date(conn: psycopg.Connection[dict[str, Any]], website_id: str, start_at: float) -> datetime:
        """``new Date(startAt)``, moved up to the website's ``reset_at`` (Umami's ``setWebsiteDate``)."""
        start = _js_date(start_at)
        if not _is_uuid(website_id):
            return start
        row = conn.execute("select reset_at from website where website_id = %s::uuid",
                           (website_id,)).fetchone()
        reset_at = row["reset_at"] if row else None
        return max(start, reset_at) if reset_at is not None else start

    def _served_session(self, row: dict[str, Any]) -> dict[str, Any]:
        """A session-list row after the ``malformed_ids`` / ``drop_id_ids`` faults."""
        session_id = row["id"]
        if session_id in self.faults.malformed_ids:
            row = {**row, "visits": "many", "lastAt": "not-a-date"}
        if session_id in self.faults.drop_id_ids:
            row = {key: value for key, value in row.items() if key != "id"}
        return row

    def _session_detail(self, website_id: str, session_id: str, authorized: bool) -> _Reply:
        if not authorized or not self._can_view_website(website_id):
            return _unauthorized()
        with self._pool.connection() as conn:
            row = conn.execute(_SESSION_DETAIL_SQL, {"websiteId": website_id, "sessionId": session_id}
                               ).fetchone()
        return _Reply(200, _json_row(row) if row else {})

    def _website(self, website_id: str, authorized: bool) -> _Reply:
        """``GET /api/websites/{id}``: the website (soft-deleted too), ``null`` when an admin asks for an
        unknown id; 401 when the user may not view it."""
        if not authorized or not self._can_view_website(website_id):
            return _unauthorized()
        with self._pool.connection() as conn:
            row = conn.execute(_WEBSITE_SQL.format(fields=_WEBSITE_FIELDS[self.version]),
                               {"websiteId": website_id}).fetchone()
        return _Reply(200, {"shareId": None, **_json_row(row)} if row else None)

    def _session_activity(self, website_id: str, session_id: str, query: dict[str, str],
                          authorized: bool) -> _Reply:
        """``GET .../sessions/{sessionId}/activity?startAt&endAt``: at most 500 events, newest first (2.x ignores
        ``reset_at`` here; 3.4 answers the sessions linked to the same person, see :meth:`_linked`)."""
        rows = self._ranged(website_id, query, authorized, _activity_sql(self.version), {"sessionId": session_id},
                            reset=self.version != V2, activity_of=session_id)
        return rows if isinstance(rows, _Reply) else _Reply(200, [_json_row(row) for row in rows])

    def _ranged(self, website_id: str, query: dict[str, str], authorized: bool, sql: str,
                values: dict[str, Any], *, reset: bool = True,
                activity_of: str | None = None) -> list[dict[str, Any]] | _Reply:
        """The rows of ``sql`` for a route with a required ``startAt``/``endAt`` (whole numbers; with ``reset``, the
        start moved to the website's ``reset_at``), or the route's refusal. ``activity_of``: the session of the
        activity route, whose sessions and range 3.4 widens (``sessionIds``)."""
        params = _QueryParams(query)
        start_at = params.number("startAt", integer=True, required=True)
        end_at = params.number("endAt", integer=True, required=True)
        linked = activity_of is not None and self.version == V34
        distinct_id = params.text("distinctId", max_length=DISTINCT_ID_LENGTH) if linked else None
        if (refused := params.refusal()) is not None:
            return refused
        assert start_at is not None and end_at is not None
        if not authorized or not self._can_view_website(website_id):
            return _unauthorized()
        with self._pool.connection() as conn:
            if activity_of is not None:
                sessions = [activity_of]
                if linked:
                    sessions, start_at, end_at = self._linked(conn, website_id, activity_of, distinct_id, start_at,
                                                              end_at)
                values = {**values, "sessionIds": sessions}
            start = self._start_date(conn, website_id, start_at) if reset else _js_date(start_at)
            return conn.execute(sql, {**values, "websiteId": website_id, "startDate": start,
                                      "endDate": _js_date(end_at)}).fetchall()

    def _session_data_keys(self, website_id: str, query: dict[str, str], authorized: bool) -> _Reply:
        """``GET .../session-data/properties?startAt&endAt``: each key and how many sessions of the range have it."""
        by_name = query.get("propertyName") is not None
        rows = self._ranged(website_id, query, authorized, _session_data_keys_sql(self.version, by_name=by_name),
                            {"propertyName": query.get("propertyName")})
        return rows if isinstance(rows, _Reply) else _Reply(200, [_json_row(row) for row in rows])

    def _session_stats(self, website_id: str, query: dict[str, str], authorized: bool) -> _Reply:
        """``GET .../sessions/stats?startAt&endAt``: each figure as ``{value}`` (``Number(x) || 0``)."""
        rows = self._ranged(website_id, query, authorized, _session_stats_sql(self.version), {})
        if isinstance(rows, _Reply):
            return rows
        return _Reply(200, {name: {"value": int(value or 0)} for name, value in rows[0].items()})

    @staticmethod
    def _linked(conn: psycopg.Connection[dict[str, Any]], website_id: str, session_id: str, distinct_id: str | None,
                start_at: float, end_at: float) -> tuple[list[str], float, float]:
        """3.4's activity route: the sessions whose events it answers, and its range (see the module doc)."""
        values = {"websiteId": website_id, "sessionId": session_id, "distinctId": distinct_id}
        distinct_ids = [distinct_id] if distinct_id else [
            row["distinctId"] for row in conn.execute(_LINKED_DISTINCT_IDS_SQL, values).fetchall()]
        if len(distinct_ids) != 1:
            return [session_id], start_at, end_at
        links = conn.execute(_LINKED_SESSION_IDS_SQL, {**values, "distinctId": distinct_ids[0]}).fetchall()
        sessions = list(dict.fromkeys([session_id, *(str(link["sessionId"]) for link in links)]))
        dates = [link["createdAt"] for link in links if link["createdAt"] is not None]
        if len(sessions) > 1 and dates:
            start_at = min(start_at, _start_of_month(min(dates)).timestamp() * 1000)
            end_at = max(end_at, _end_of_month(max(dates)).timestamp() * 1000)
        return sessions, start_at, end_at

    def _session_properties(self, website_id: str, session_id: str, authorized: bool) -> _Reply:
        if not authorized or not self._can_view_website(website_id):
            return _unauthorized()
        with self._pool.connection() as conn:
            rows = conn.execute(_SESSION_PROPERTIES_SQL, {"websiteId": website_id, "sessionId": session_id}
                                ).fetchall()
        return _Reply(200, [_json_row(row) for row in rows])
