"""A deterministic day of Umami traffic in PostgreSQL, and the users collection it belongs to.

:func:`generate_traffic` writes ``website``, ``session``, ``session_data`` and ``website_event`` rows the
way Umami 3.1 writes them (as seen on a real 3.1.0 server; samples in ``tests/fixtures/umami``):

- a session identified by ``umami.identify(id, data)`` has a deterministic id of (website, id),
  ``session.distinct_id`` holds the id with its case as sent (some padded with spaces), and the identify
  data lands in ``session_data`` (``email``, ``plan``, ``seats``) with ``distinct_id`` set;
- a session identified by ``umami.identify({email})`` keeps ``distinct_id`` NULL and gets a
  ``session_data`` row of key ``email`` some time after its first page view;
- every other session is anonymous.

Every session has page views (``event_type`` 1), some have custom events (``event_type`` 2); a session's
``created_at`` is its first event time. Rows go in through COPY, streamed, so memory stays small.

With ``ties`` (a :class:`TieDay`), the chosen websites get hits the way a tracker that sends Umami's
``timestamp`` field makes them: whole seconds, and sessions whose last event falls on the same second in
groups; some of their sessions have hits on two hostnames of the website (``www.`` + apex), so Umami's
list has two rows for them. Without it, the output is what it always was.

:func:`seed_users` fills a users collection shaped like a typical application's. Both sides draw the
e-mails from :func:`identity_email`, a pure function of (seed, index), so they line up.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from bson import ObjectId
from pymongo import MongoClient

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from psycopg import Copy

FAKE_UMAMI_USER_ID = "41e2b680-648e-4b09-bcd7-3e2b10c06264"
DEFAULT_SEED = 20261127
DAY_SECONDS = 86_400

_FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yusuf")
_LAST_NAMES = ("smith", "jones", "garcia", "muller", "rossi", "dubois", "novak", "silva", "kim", "tanaka",
               "ivanova", "larsen", "okafor", "haddad", "nguyen", "kowalski")
_DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.io", "example.de")
_WEBSITES = (("Shop", "shop.example.com"), ("Docs", "docs.example.com"), ("Blog", "blog.example.com"),
             ("App", "app.example.com"), ("Status", "status.example.com"))
_CLIENTS = (("chrome", "Windows 10", "laptop", "1920x1080"), ("chrome", "Mac OS", "laptop", "1440x900"),
            ("safari", "Mac OS", "laptop", "1440x900"), ("firefox", "Linux", "desktop", "2560x1440"),
            ("edge-chromium", "Windows 10", "desktop", "1920x1080"), ("ios", "iOS", "mobile", "390x844"),
            ("chrome", "Android OS", "mobile", "412x915"), ("safari", "iOS", "tablet", "820x1180"))
_PLACES = (("en-US", "US", "US-CA", "San Francisco"), ("en-US", "US", "US-NY", "New York"),
           ("de-DE", "DE", "DE-BE", "Berlin"), ("fr-FR", "FR", "FR-IDF", "Paris"),
           ("en-GB", "GB", "GB-ENG", "London"), ("pt-BR", "BR", "BR-SP", "Sao Paulo"),
           ("ja-JP", "JP", "JP-13", "Tokyo"), ("es-ES", "ES", "ES-MD", "Madrid"), ("en-IN", "IN", "IN-KA", None))
_PAGES = (("/", "Home"), ("/pricing", "Pricing"), ("/features", "Features"), ("/docs/start", "Getting started"),
          ("/blog/release-3-1", "Release 3.1"), ("/dashboard", "Dashboard"), ("/settings", "Settings"),
          ("/signup", "Sign up"), ("/login", "Log in"), ("/checkout", "Checkout"))
_CUSTOM_EVENTS = ("signup-click", "add-to-cart", "play-video", "download", "newsletter")
_REFERRERS = ("www.google.com", "news.ycombinator.com", "t.co", "www.bing.com", "github.com")
_PLANS = ("free", "pro", "team")
_SESSION_COLUMNS = ("session_id", "website_id", "browser", "os", "device", "screen", "language", "country",
                    "region", "city", "created_at", "distinct_id")
_SESSION_DATA_COLUMNS = ("session_data_id", "website_id", "session_id", "data_key", "string_value",
                         "number_value", "date_value", "data_type", "created_at", "distinct_id")
_EVENT_COLUMNS = ("event_id", "website_id", "session_id", "visit_id", "created_at", "url_path", "url_query",
                  "page_title", "referrer_domain", "utm_source", "event_type", "event_name", "hostname")
_NULL = r"\N"
_TIE_MARGIN = 4 * 3600
"""Seconds after midnight a tie group's last second is drawn from: longer than any session's span."""
_FLUSH_CHARS = 1 << 20
_USER_BATCH = 5_000


def identity_email(seed: int, index: int) -> str:
    """The canonical (lower-case) e-mail of identified person ``index``; at most 50 characters."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest()
    first = _FIRST_NAMES[digest[0] % len(_FIRST_NAMES)]
    last = _LAST_NAMES[digest[1] % len(_LAST_NAMES)]
    return f"{first}.{last}.{index}@{_DOMAINS[digest[2] % len(_DOMAINS)]}"


def identity_emails(seed: int, count: int) -> Iterator[str]:
    """The canonical e-mails of persons ``0 .. count - 1``."""
    return (identity_email(seed, index) for index in range(count))


@dataclass(frozen=True)
class TrafficSummary:
    """What :func:`generate_traffic` wrote: enough to predict what a correct sync finds."""

    day: date
    seed: int
    website_ids: tuple[str, ...]
    sessions: int
    identified_by_distinct_id: int
    identified_by_email: int
    persons: int
    session_data_rows: int
    identity_rows: int
    page_views: int
    custom_events: int

    @property
    def identified(self) -> int:
        """Identified sessions (either kind)."""
        return self.identified_by_distinct_id + self.identified_by_email

    @property
    def anonymous(self) -> int:
        """Sessions that carry no identity."""
        return self.sessions - self.identified

    @property
    def events(self) -> int:
        """All ``website_event`` rows."""
        return self.page_views + self.custom_events

    @property
    def start(self) -> datetime:
        """Midnight UTC at the start of the day."""
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Midnight UTC at the end of the day (exclusive)."""
        return self.start + timedelta(days=1)

    def identity_emails(self) -> Iterator[str]:
        """Canonical e-mails of every identified person, once each."""
        return identity_emails(self.seed, self.persons)


@dataclass(frozen=True)
class TieDay:
    """Hits as a tracker that sends Umami's ``timestamp`` field makes them, on some websites of the day.

    :param websites: positions (0 = the first) of the websites concerned.
    :param group: the largest number of sessions whose last event falls on one second; each group has
        1 .. ``group`` sessions (drawn), every event of a session is on a whole second.
    :param two_hostnames: the share of sessions (of two events or more) with hits on both the apex and
        the ``www.`` hostname of their website; one visit may span both.
    """

    websites: tuple[int, ...] = (0,)
    group: int = 12
    two_hostnames: float = 0.1

    def __post_init__(self) -> None:
        if self.group < 1 or not 0.0 <= self.two_hostnames <= 1.0:
            raise ValueError("group must be >= 1 and two_hostnames between 0 and 1")


@dataclass(frozen=True)
class UsersSummary:
    """What :func:`seed_users` inserted, seen from the identities."""

    total: int
    deleted: int
    identities_matched: int
    identities_deleted: int
    identities_unmatched: int
    recased: int


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stamp(moment: float) -> str:
    """A timestamptz literal of epoch seconds, to the millisecond, as Umami stores them."""
    return datetime.fromtimestamp(round(moment, 3), tz=UTC).isoformat(sep=" ", timespec="milliseconds")


def _line(values: Iterable[object]) -> str:
    return "\t".join(_NULL if value is None else str(value) for value in values) + "\n"


def _as_sent(email: str, rng: random.Random) -> str:
    """An identity the way a tracker may send it: mostly as is, sometimes re-cased or padded."""
    roll = rng.random()
    if roll < 0.15:
        return email.title()
    if roll < 0.20:
        return email.upper()
    if roll < 0.23 and len(email) <= 47:
        return f" {email} "
    return email


class _Writer:
    """Buffered text COPY of one table on its own connection."""

    def __init__(self, copy: Copy) -> None:
        self._copy = copy
        self._chunks: list[str] = []
        self._size = 0

    def row(self, values: Iterable[object]) -> None:
        line = _line(values)
        self._chunks.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        if self._chunks:
            self._copy.write("".join(self._chunks))
            self._chunks, self._size = [], 0


def _copy_statement(table: str, columns: tuple[str, ...]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


@dataclass
class _Counts:
    by_distinct_id: int = 0
    by_email: int = 0
    session_data_rows: int = 0
    identity_rows: int = 0
    page_views: int = 0
    custom_events: int = 0


class _DayWriter:
    """Writes one session after another; owns the random stream so the output is a function of the seed."""

    def __init__(self, rng: random.Random, day_start: float, websites: list[tuple[str, str]],
                 sessions: _Writer, session_data: _Writer, events: _Writer, ties: TieDay | None = None) -> None:
        self.rng = rng
        self.day_start = day_start
        self.websites = websites
        self.sessions = sessions
        self.session_data = session_data
        self.events = events
        self.counts = _Counts()
        self.ties = ties
        self._groups: dict[int, tuple[int, int]] = {}  # website -> (sessions left in its group, the second)

    def session(self, website: int, identity: str | None, by_email: bool) -> None:
        """One session with its events, and its identify rows when ``identity`` is set."""
        rng = self.rng
        website_id, hostname = self.websites[website]
        times = self._event_times()
        ties = self.ties if self.ties is not None and website in self.ties.websites else None
        hostnames: tuple[str, ...] = (hostname,)
        if ties is not None:
            times = self._tied(website, times, ties)
            if len(times) > 1 and rng.random() < ties.two_hostnames:
                hostnames = (hostname, f"www.{hostname}") if rng.random() < 0.5 else (f"www.{hostname}", hostname)
        first = times[0][0]
        sent = _as_sent(identity, rng) if identity else None
        if sent is not None and not by_email:
            session_id = str(uuid.uuid5(uuid.UUID(website_id), sent))
            distinct_id: str | None = sent
        else:
            session_id = str(uuid.uuid5(uuid.UUID(website_id), f"anonymous:{rng.getrandbits(64)}"))
            distinct_id = None
        client = rng.choice(_CLIENTS)
        place = rng.choice(_PLACES)
        self.sessions.row((session_id, website_id, *client, *place, _stamp(first), distinct_id))
        self._events(website_id, hostnames, session_id, times, whole_seconds=ties is not None)
        if sent is None:
            return
        if by_email:
            self.counts.by_email += 1
            identified_at = rng.uniform(first, times[-1][0] + 1.0)
            self._data(website_id, session_id, "email", sent, identified_at, None)
        else:
            self.counts.by_distinct_id += 1
            self.counts.identity_rows += 1  # the session row itself
            identified_at = first + rng.uniform(0.0, 0.2)
            self._data(website_id, session_id, "email", sent.strip(), identified_at, sent)
            self._data(website_id, session_id, "plan", rng.choice(_PLANS), identified_at, sent)
            self._data(website_id, session_id, "seats", rng.randint(1, 50), identified_at, sent)

    def _event_times(self) -> list[tuple[float, int]]:
        """(time, visit number) of each event: one or two visits of 1..N page views, inside the day."""
        rng = self.rng
        visits = 2 if rng.random() < 0.1 else 1
        count = sum(min(1 + int(rng.expovariate(0.45)), 25) for _ in range(visits))
        span = count * 60.0 + (3 * 3600.0 if visits == 2 else 0.0)
        moment = self.day_start + rng.uniform(0.0, DAY_SECONDS - span - 1.0)
        times: list[tuple[float, int]] = []
        for visit in range(visits):
            if visit:
                moment += rng.uniform(1800.0, 3 * 3600.0)
            for _ in range(count // visits + (count % visits if visit == 0 else 0)):
                times.append((moment, visit))
                moment += rng.uniform(2.0, 55.0)
        return times

    def _tied(self, website: int, times: list[tuple[float, int]], ties: TieDay) -> list[tuple[float, int]]:
        """``times`` on whole seconds, moved so that the last one is the second of the website's current
        tie group (a new group of 1 .. ``group`` sessions when the last one is full)."""
        left, second = self._groups.get(website, (0, 0))
        if left == 0:
            left = self.rng.randint(1, ties.group)
            second = self.rng.randrange(int(self.day_start) + _TIE_MARGIN, int(self.day_start) + DAY_SECONDS)
        self._groups[website] = (left - 1, second)
        last = times[-1][0]
        return [(float(second - math.ceil(last - moment)), visit) for moment, visit in times]

    def _events(self, website_id: str, hostnames: tuple[str, ...], session_id: str, times: list[tuple[float, int]],
                *, whole_seconds: bool = False) -> None:
        """The events at ``times``; with two ``hostnames``, the first events are on one and the rest on the
        other (the switch drawn), so a visit may span both."""
        rng = self.rng
        visit_ids = [str(uuid.uuid5(uuid.UUID(session_id), f"visit:{visit}")) for visit in range(times[-1][1] + 1)]
        referrer = rng.choice(_REFERRERS) if rng.random() < 0.4 else None
        source = "newsletter" if referrer is None and rng.random() < 0.1 else None
        switch = rng.randint(1, len(times) - 1) if len(hostnames) > 1 else len(times)
        after = 0.0 if whole_seconds else 0.4  # a custom event follows its page view
        for position, (moment, visit) in enumerate(times):
            hostname = hostnames[position >= switch]
            path, title = rng.choice(_PAGES)
            landing = position == 0
            self.events.row((_uuid4(rng), website_id, session_id, visit_ids[visit], _stamp(moment), path, "", title,
                             referrer if landing else None, source if landing else None, 1, None, hostname))
            self.counts.page_views += 1
            if rng.random() < 0.12:
                self.events.row((_uuid4(rng), website_id, session_id, visit_ids[visit], _stamp(moment + after),
                                 path, "", None, None, None, 2, rng.choice(_CUSTOM_EVENTS), hostname))
                self.counts.custom_events += 1

    def _data(self, website_id: str, session_id: str, key: str, value: str | int, at: float,
              distinct_id: str | None) -> None:
        if isinstance(value, int):
            string_value, number_value, data_type = f"{value}.0000", f"{value}.0000", 2
        else:
            string_value, number_value, data_type = value, None, 1
        self.session_data.row((_uuid4(self.rng), website_id, session_id, key, string_value, number_value, None,
                               data_type, _stamp(at), distinct_id))
        self.counts.session_data_rows += 1
        if key == "email":
            self.counts.identity_rows += 1


def _repeats(identified: int, websites: int) -> int:
    """Identified sessions of a person already identified on another website (one in ten)."""
    return identified // 10 if websites > 1 else 0


def _plan(rng: random.Random, sessions: int, identified: int, websites: int) -> Iterator[tuple[int, int, bool]]:
    """(website, person or -1, identified by e-mail only) for each session, in a shuffled order.

    Two thirds of identified sessions carry a distinct id, one third an e-mail in session_data. A person
    has a home website; a repeat is that person once more, on another website.
    """
    weights = [1.0 / (position + 1) for position in range(websites)]
    persons = identified - _repeats(identified, websites)
    homes = rng.choices(range(websites), weights, k=persons)
    order = list(range(sessions))
    rng.shuffle(order)
    for slot in order:
        if slot >= identified:
            yield rng.choices(range(websites), weights)[0], -1, False
        elif slot < persons:
            yield homes[slot], slot, slot % 3 == 2
        else:
            person = slot - persons
            yield (homes[person] + rng.randrange(1, websites)) % websites, person, slot % 3 == 2


def generate_traffic(dsn: str, *, day: date, websites: int = 3, sessions: int = 200_000,
                     identified: int = 60_000, seed: int = DEFAULT_SEED,
                     user_id: str = FAKE_UMAMI_USER_ID, ties: TieDay | None = None) -> TrafficSummary:
    """Write one day of Umami traffic into the (empty, schema-loaded) database at ``dsn``; ``ties`` gives
    some websites whole-second hits in tie groups and sessions on two hostnames (see :class:`TieDay`)."""
    if not 1 <= websites <= len(_WEBSITES):
        raise ValueError(f"websites must be between 1 and {len(_WEBSITES)}")
    if not 0 <= identified <= sessions:
        raise ValueError("identified must be between 0 and sessions")
    rng = random.Random(seed)
    namespace = uuid.uuid5(uuid.NAMESPACE_DNS, f"bench.umami-mongo-sync.{seed}")
    site_rows = [(str(uuid.uuid5(namespace, domain)), name, domain) for name, domain in _WEBSITES[:websites]]
    day_start = datetime.combine(day, time(), tzinfo=UTC)
    created = _stamp(day_start.timestamp() - 30 * DAY_SECONDS)
    with psycopg.connect(dsn) as sites, sites.cursor() as cursor, cursor.copy(_copy_statement(
            "website", ("website_id", "name", "domain", "user_id", "created_by", "created_at",
                        "updated_at"))) as copy:
        for website_id, name, domain in site_rows:
            copy.write(_line((website_id, name, domain, user_id, user_id, created, created)))
    counts = _copy_day(dsn, rng, day_start.timestamp(), [(row[0], row[2]) for row in site_rows],
                       sessions, identified, seed, ties)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("website", "session", "session_data", "website_event"):
            conn.execute(f"ANALYZE {table}")
    return TrafficSummary(day=day, seed=seed, website_ids=tuple(row[0] for row in site_rows), sessions=sessions,
                          identified_by_distinct_id=counts.by_distinct_id, identified_by_email=counts.by_email,
                          persons=identified - _repeats(identified, websites),
                          session_data_rows=counts.session_data_rows, identity_rows=counts.identity_rows,
                          page_views=counts.page_views, custom_events=counts.custom_events)


def _copy_day(dsn: str, rng: random.Random, day_start: float, websites: list[tuple[str, str]],
              sessions: int, identified: int, seed: int, ties: TieDay | None = None) -> _Counts:
    """Stream the three tables through three concurrent COPYs (one connection each)."""
    with psycopg.connect(dsn) as c_sessions, psycopg.connect(dsn) as c_data, psycopg.connect(dsn) as c_events, \
            c_sessions.cursor().copy(_copy_statement("session", _SESSION_COLUMNS)) as sessions_copy, \
            c_data.cursor().copy(_copy_statement("session_data", _SESSION_DATA_COLUMNS)) as data_copy, \
            c_events.cursor().copy(_copy_statement("website_event", _EVENT_COLUMNS)) as events_copy:
        writers = (_Writer(sessions_copy), _Writer(data_copy), _Writer(events_copy))
        day_writer = _DayWriter(rng, day_start, websites, *writers, ties=ties)
        for website, person, by_email in _plan(rng, sessions, identified, len(websites)):
            day_writer.session(website, identity_email(seed, person) if person >= 0 else None, by_email)
        for writer in writers:
            writer.flush()
    return day_writer.counts


def _recase(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local.title()}@{domain.capitalize()}"


def _user_document(rng: random.Random, email: str, *, deleted: bool, created: datetime,
                   run_day: datetime) -> dict[str, Any]:
    local = email.partition("@")[0]
    name = " ".join(part.capitalize() for part in local.split(".")[:2])
    updated = created + timedelta(seconds=rng.uniform(0.0, (run_day - created).total_seconds()))
    return {
        "_id": ObjectId(int(created.timestamp()).to_bytes(4, "big") + rng.randbytes(8)),
        "email": email,
        "name": name,
        "isDeleted": deleted,
        "createdAt": created,
        "updatedAt": updated,
        "role": "admin" if rng.random() < 0.01 else "member",
        "plan": rng.choice(_PLANS),
        "emailVerified": rng.random() < 0.9,
        "settings": {"theme": rng.choice(("light", "dark")), "locale": rng.choice(_PLACES)[0]},
        "loginCount": rng.randint(0, 400),
        "lastLoginAt": updated,
    }


def seed_users(mongo_uri: str, database: str, collection: str, *, identities: Iterable[str],
               total: int = 100_000, deleted_fraction: float = 0.02, seed: int = DEFAULT_SEED,
               day: date | None = None) -> UsersSummary:
    """Insert ``total`` users into an empty collection (no index but ``_id``).

    About 95% of ``identities`` get a user (a tenth of those stored with other letter case than the
    canonical e-mail, some of them deleted); the rest stay unmatched. Other users fill up to ``total``.
    Documents go in shuffled, so a match without an index scans half the collection on average.
    """
    rng = random.Random(seed ^ 0x5EED)
    run_day = datetime.combine(day or date(2026, 11, 27), time(), tzinfo=UTC)
    identity_users: list[tuple[str, bool]] = []
    unmatched = recased = 0
    for email in identities:
        if rng.random() < 0.05:
            unmatched += 1
            continue
        stored = email
        if rng.random() < 0.1:
            stored, recased = _recase(email), recased + 1
        identity_users.append((stored, rng.random() < deleted_fraction * 1.5))
        if len(identity_users) == total:
            break
    fillers = total - len(identity_users)
    deleted_fillers = max(0, round(total * deleted_fraction) - sum(deleted for _, deleted in identity_users))
    order = list(range(total))
    rng.shuffle(order)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        users = client[database][collection]
        batch: list[dict[str, Any]] = []
        for slot in order:
            if slot < len(identity_users):
                email, deleted = identity_users[slot]
            else:
                filler = slot - len(identity_users)
                email = f"member.{filler}@app-{seed % 1000}.example.com"
                deleted = filler < deleted_fillers
            created = run_day - timedelta(days=rng.uniform(1.0, 3 * 365.0))
            batch.append(_user_document(rng, email, deleted=deleted, created=created, run_day=run_day))
            if len(batch) == _USER_BATCH:
                users.insert_many(batch, ordered=False)
                batch = []
        if batch:
            users.insert_many(batch, ordered=False)
    finally:
        client.close()
    identities_deleted = sum(deleted for _, deleted in identity_users)
    return UsersSummary(total=total, deleted=identities_deleted + min(deleted_fillers, fillers),
                        identities_matched=len(identity_users) - identities_deleted,
                        identities_deleted=identities_deleted, identities_unmatched=unmatched, recased=recased)
