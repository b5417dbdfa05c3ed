"""The benchmark: both stages at realistic scale against real servers, side by side with their limits and
the original tool's approach, in one table and one JSON file.

    python bench/run.py [--sessions N --identified N --websites N --users N --mongo-uri URI
                         --scales 1,4 --tie-sessions N --tie-page-size N --out bench/results.json --smoke]

See ``bench/README.md`` for what each figure means. Every measured step runs in a fresh child process
(``bench/worker.py``), whose peak RSS is read with ``wait4``; the servers (PostgreSQL, the MongoDB wire
server, the Umami API double) run outside it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _folder in (ROOT / "include", ROOT / "plugins", ROOT):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import UTC, date, datetime  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402
from urllib.parse import parse_qsl, urlsplit  # noqa: E402

import psycopg  # noqa: E402
from bson import ObjectId  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from local_stack.mongo import LocalMongo  # noqa: E402
from local_stack.postgres import LocalPostgres, load_umami_schema  # noqa: E402
from local_stack.traffic import FAKE_UMAMI_USER_ID, TieDay, generate_traffic, seed_users  # noqa: E402
from local_stack.umami_api import FakeUmami  # noqa: E402
from umami_sync.settings import SyncSettings  # noqa: E402
from umami_sync.users.store import UsersCollection  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymongo.database import Database

    from local_stack.traffic import TrafficSummary, UsersSummary

DAY = date(2026, 11, 26)
DATABASE = "umami_bench"
USERNAME, PASSWORD = "admin", "umami"
PATHS = ("on", "off")
"""The two write paths (``mongo_collation``): identities matched through a collation, or portably."""
OUR_FIELDS = ("session_id", "umamiSessions", "umamiAnalytics")
CPU_PER_ROW_US = 25.0
"""Client CPU a stage may spend per row (identity row in stage 1, session in stage 2), in microseconds."""
SMOKE = {"websites": 1, "sessions": 300, "identified": 100, "users": 500, "scales": "1", "baseline_budget": 5.0,
         "tie_sessions": 300, "tie_page_size": 20, "listing_rows": "20000,60000"}
DEFAULTS = {"websites": 3, "sessions": 200_000, "identified": 60_000, "users": 100_000, "scales": "1,4",
            "baseline_budget": 60.0, "tie_sessions": 3_000, "tie_page_size": 50,
            "listing_rows": "1000000,10000000"}
Figures = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """The generated data of one scale."""

    websites: int
    sessions: int
    identified: int
    users: int

    def times(self, scale: int) -> Sizes:
        """``scale`` times as many sessions (and identified ones); the users stay as they are."""
        return Sizes(self.websites, self.sessions * scale, self.identified * scale, self.users)


def log(message: str) -> None:
    """Progress on stderr; the table goes to stdout."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def postgres_connection(dsn: str) -> str:
    """An Airflow connection (JSON form) for the PostgreSQL database at ``dsn``."""
    parts = urlsplit(dsn)
    return json.dumps({"conn_type": "postgres", "host": parts.hostname, "port": parts.port, "login": parts.username,
                       "password": parts.password, "schema": parts.path.lstrip("/")})


def mongo_connection(uri: str, database: str) -> str:
    """An Airflow connection (JSON form) for ``database`` on the MongoDB server at ``uri``; URI options
    become extras (MongoClient keyword arguments)."""
    parts = urlsplit(uri)
    extra: dict[str, Any] = dict(parse_qsl(parts.query))
    if parts.scheme == "mongodb+srv":
        extra["srv"] = True
    return json.dumps({"conn_type": "mongo", "host": parts.hostname, "port": parts.port, "login": parts.username,
                       "password": parts.password, "schema": database, "extra": extra})


def api_connection(url: str) -> str:
    """An Airflow connection (JSON form) for the Umami API at ``url``."""
    return json.dumps({"conn_type": "http", "host": url, "login": USERNAME, "password": PASSWORD})


def shown_uri(uri: str) -> str:
    """``uri`` without credentials, for the report."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class WorkerServer:
    """The fork server of ``bench/worker.py``: it imports the product once, then forks a fresh child per
    step; the step's peak RSS is the child's ``ru_maxrss`` (from ``wait4``)."""

    def __init__(self, folder: Path, product: Path = ROOT) -> None:
        self.folder = folder
        self.product = product
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(path) for path in (ROOT, product / "plugins", ROOT / "include",
                                                                  ROOT / "dags")),
            "AIRFLOW_HOME": str(folder / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        self.log_path = folder / f"worker-server-{len(list(folder.glob('worker-server*.log')))}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "bench.worker", "--serve"], cwd=ROOT, env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def _reply(self) -> Figures:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the bench worker server stopped (exit code {self.process.returncode}):\n{tail}")
        reply: Figures = json.loads(line)
        return reply

    def fork(self, config: Path, log: Path, env: dict[str, str], *, profile: Path | None = None) -> Figures:
        """Run one step in a fresh child; what ``wait4`` said of it: exit code, peak RSS (MB) and client CPU
        (user and system seconds). With ``profile``, py-spy samples the child into that file meanwhile."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"config": str(config), "log": str(log), "env": env}) + "\n")
        self.process.stdin.flush()
        pid = self._reply()["pid"]
        sampler = None if profile is None else subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--threads", "--gil",
             "--nonblocking", "--rate", "200", "--format", "raw", "--output", str(profile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            done = self._reply()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise
        finally:
            if sampler is not None:
                sampler.wait(timeout=60)
        return {"exit_code": done["exit_code"], "rss_peak_mb": done["ru_maxrss_kb"] / 1024,
                "cpu_user_seconds": done["cpu_user_seconds"], "cpu_system_seconds": done["cpu_system_seconds"],
                "cpu_seconds": done["cpu_user_seconds"] + done["cpu_system_seconds"]}

    def close(self) -> None:
        """Let the server end (stdin closed); kill it if it does not."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class Worker:
    """Runs ``bench/worker.py`` tasks of one day, each in a fresh child of the fork server."""

    runs = 0  # steps run so far by any worker (numbers the files of each step)

    def __init__(self, server: WorkerServer, env: dict[str, str], common: Figures, *,
                 profile: Path | None = None) -> None:
        self.server = server
        self.folder = server.folder
        self.env = env
        self.common = common
        self.profile = profile

    def run(self, task: str, **config: Any) -> Figures:
        """Run ``task`` with the common config plus ``config``; return its figures with ``rss_peak_mb`` and
        ``cpu_seconds`` (the child's user + system time)."""
        Worker.runs += 1
        name = f"{Worker.runs:02d}-{task}"
        stem = self.folder / name
        out, config_path, log_path = (stem.with_suffix(suffix) for suffix in (".out.json", ".json", ".log"))
        config_path.write_text(json.dumps({**self.common, **config, "task": task, "out": str(out)}, default=str))
        usage = self.server.fork(config_path, log_path, self.env,
                                 profile=self.profile / f"{name}.txt" if self.profile else None)
        if usage["exit_code"] != 0:
            tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
            raise RuntimeError(f"bench worker {task!r} failed with exit code {usage['exit_code']}:\n{tail}")
        figures: Figures = json.loads(out.read_text())
        figures.update((key, value) for key, value in usage.items() if key != "exit_code")
        return figures


def copy_indexes(source: Database[Figures], target: Database[Figures], source_name: str, target_name: str) -> None:
    """Give ``target_name`` the secondary indexes of ``source_name`` (the ones the sync ensured)."""
    for name, info in source[source_name].index_information().items():
        if name == "_id_":
            continue
        options = {key: info[key] for key in ("unique", "sparse", "collation", "partialFilterExpression")
                   if key in info}
        target[target_name].create_index(list(info["key"]), name=name, **options)


def request_split(umami: FakeUmami, website_ids: Sequence[str]) -> Figures:
    """What the Umami double answered: per website its list pages and per-session (activity) reads, the requests
    of planning (its login, website discovery and each website's row count; all before the first job's login),
    the other requests about no one website (the jobs' logins), and the non-2xx answers."""
    per_site = {website: {"list_pages": 0, "session_reads": 0, "other": 0} for website in website_ids}
    other = failed = logins = planning = 0
    for record in umami.requests:
        failed += record.status >= 300
        logins += record.path.endswith("/auth/login")
        if logins <= 1:
            planning += 1
            continue
        site = next((website for website in website_ids if f"/websites/{website}" in record.path), None)
        if site is None:
            other += 1
            continue
        path = record.path.rstrip("/")
        kind = "list_pages" if path.endswith("/sessions") else "session_reads" if path.endswith("/activity") \
            else "other"
        per_site[site][kind] += 1
    return {"per_website": per_site, "planning": planning, "other": other, "non_2xx": failed}


def complete(figures: Figures, what: str) -> Figures:
    """``figures`` of a product run, which must have read and written everything: a stage that stopped on
    an error makes every figure after it meaningless, so the bench stops there, saying why."""
    results = figures["results"] if "results" in figures else [figures["result"]]
    errors = [f"{result.get('website_name') or 'stage 1'}: {result['error']}" for result in results
              if result.get("error")]
    if errors:
        raise RuntimeError(f"{what} stopped on an error, the bench cannot go on: " + "; ".join(errors))
    return figures


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is zero."""
    return numerator / denominator if denominator > 0 else None


def analytics_changes(figures: Figures) -> int:
    """Changes sent by every job of one stage-2 run."""
    return sum(result["changes"] for result in figures["results"])


def session_truth(dsn: str, website_id: str, start: datetime, end: datetime) -> dict[str, tuple[Any, ...]]:
    """Each session's (firstAt, lastAt, views, visits) in ``[start, end)`` from Umami's own events (naive
    UTC, as pymongo reads dates back)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select session_id::text, min(created_at), max(created_at), sum((event_type = 1)::int),"
            " count(distinct visit_id) from website_event where website_id = %s and created_at >= %s"
            " and created_at < %s group by session_id", (website_id, start, end)).fetchall()
    return {row[0]: (row[1].astimezone(UTC).replace(tzinfo=None), row[2].astimezone(UTC).replace(tzinfo=None),
                     row[3], row[4]) for row in rows}


def list_shape(dsn: str, website_id: str, start: datetime, end: datetime) -> Figures:
    """What Umami's list of the window holds: rows (one per session and hostname), sessions on several
    hostnames, and rows whose last-event time ties with another row's (the ones offset paging can lose)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "with listed as (select session_id, hostname, max(created_at) as last_at from website_event"
            " where website_id = %s and created_at >= %s and created_at < %s group by session_id, hostname),"
            " ties as (select last_at, count(*) as n from listed group by last_at)"
            " select (select count(*) from listed),"
            " (select count(*) from (select session_id from listed group by session_id having count(*) > 1) t),"
            " (select coalesce(sum(n), 0) from ties where n > 1), (select count(*) from ties where n > 1),"
            " (select coalesce(max(n), 0) from ties)", (website_id, start, end)).fetchone()
    assert row is not None
    return {"list_rows": row[0], "multi_hostname_sessions": row[1], "tied_rows": int(row[2]),
            "tie_groups": row[3], "largest_tie": row[4]}


class Bench:
    """One benchmark run over one or more scales, then the tie-heavy day."""

    def __init__(self, args: argparse.Namespace, mongo_uri: str, folder: Path, server: WorkerServer,
                 before: WorkerServer | None = None) -> None:
        self.args = args
        self.mongo_uri = mongo_uri
        self.folder = folder
        self.server = server
        self.before = before
        self.client: MongoClient[Figures] = MongoClient(mongo_uri)
        self.db = self.client[DATABASE]
        self.settings: Figures = {key: value for key, value in
                                  (("page_size", args.page_size), ("batch_size", args.batch_size))
                                  if value is not None}
        self.page_size = SyncSettings(**self.settings).page_size
        self.match_field = SyncSettings(**self.settings).user_match_field

    def seed(self, collection: str, traffic: TrafficSummary, sizes: Sizes) -> UsersSummary:
        """A fresh users collection, identical for every run of one scale."""
        self.db.drop_collection(collection)
        return seed_users(self.mongo_uri, DATABASE, collection, identities=traffic.identity_emails(),
                          total=sizes.users, seed=traffic.seed, day=traffic.day)

    def scale(self, scale: int, sizes: Sizes, *, full: bool) -> Figures:
        """Generate the data of one scale and measure it; ``full`` adds the limits, both write paths and the
        baseline."""
        figures: Figures = {"scale": scale, "sizes": asdict(sizes)}
        with LocalPostgres() as postgres:
            load_umami_schema(postgres.dsn)
            log(f"scale {scale}x: generating {sizes.sessions:,} sessions on {sizes.websites} website(s)")
            started = time.perf_counter()
            traffic = generate_traffic(postgres.dsn, day=DAY, websites=sizes.websites, sessions=sizes.sessions,
                                       identified=sizes.identified, user_id=FAKE_UMAMI_USER_ID)
            figures["generate_seconds"] = time.perf_counter() - started
            figures["traffic"] = {**asdict(traffic), "identified": traffic.identified,
                                  "anonymous": traffic.anonymous, "events": traffic.events}
            with FakeUmami(postgres.dsn, username=USERNAME, password=PASSWORD,
                           user_id=FAKE_UMAMI_USER_ID) as umami:
                worker = self.worker(postgres.dsn, umami.url, traffic)
                self.db.client.drop_database(DATABASE)
                if full:
                    log("recording the sync's update operations (untimed run)")
                    self.seed("users_record", traffic, sizes)
                    figures["record"] = worker.run(
                        "record", settings={**self.settings, "users_collection": "users_record"},
                        sessions_ops=str(self.folder / "sessions.ops.bson"),
                        analytics_ops=str(self.folder / "analytics.ops.bson"))
                figures["users"] = asdict(self.seed("users", traffic, sizes))
                if full:
                    copy_indexes(self.db, self.db, "users_record", "users")
                figures["auto_path"] = "on" if UsersCollection(
                    self.db["users"], match_field=self.match_field, collation=None).collation_works() else "off"
                log(f"stage 1 (session sync; mongo_collation auto: {figures['auto_path']} on this server)")
                umami.reset()
                figures["sessions"] = complete(worker.run(
                    "sessions", settings={**self.settings, "users_collection": "users"}), "stage 1")
                figures["sessions"]["http_requests"] = len(umami.requests)
                log("stage 2 (analytics sync, all websites)")
                umami.reset()
                figures["analytics"] = complete(worker.run(
                    "analytics", settings={**self.settings, "users_collection": "users"}), "stage 2")
                figures["analytics"]["http"] = {**request_split(umami, traffic.website_ids),
                                                "page_size": self.page_size}
                if full and self.before is not None:
                    figures["before"] = self.before_runs(postgres.dsn, umami, traffic, sizes)
                if full:
                    figures["limits"] = self.limits(worker, umami, traffic, sizes)
                    figures["paths"] = self.paths(worker, traffic, sizes, figures)
                    figures["baseline"] = self.baseline(worker, traffic, sizes)
                    self.db.drop_collection("users_record")
                self.db.drop_collection("users")
        return figures

    def before_runs(self, dsn: str, umami: FakeUmami, traffic: TrafficSummary, sizes: Sizes) -> Figures:
        """Both stages of the product to compare with (``--before``), on a fresh copy of the users with the same
        indexes, as the stage runs above ran."""
        assert self.before is not None
        worker = self.worker(dsn, umami.url, traffic, server=self.before)
        self.seed("users_before", traffic, sizes)
        copy_indexes(self.db, self.db, "users_record", "users_before")
        settings = {**self.settings, "users_collection": "users_before"}
        log(f"before ({self.before.product}): stage 1")
        figures: Figures = {"sessions": complete(worker.run("sessions", settings=settings), "stage 1, before")}
        log(f"before ({self.before.product}): stage 2")
        umami.reset()
        figures["analytics"] = complete(worker.run("analytics", settings=settings), "stage 2, before")
        figures["analytics"]["http"] = {**request_split(umami, traffic.website_ids), "page_size": self.page_size}
        self.db.drop_collection("users_before")
        return figures

    def listings(self) -> Figures:
        """The listing alone on generated lists (``bench/listing.py``), at each of ``--listing-rows``, with this
        product (and the one of ``--before``)."""
        figures: Figures = {"page_size": self.page_size, "runs": []}
        for rows in self.args.listing_rows:
            for label, server in (("after", self.server), ("before", self.before)):
                if server is None:
                    continue
                log(f"listing alone ({label}): {rows:,} generated rows")
                run = Worker(server, {}, {}, profile=self.args.profile).run("listing", rows=rows,
                                                                            page_size=self.page_size)
                figures["runs"].append({"product": label, **run})
        return figures

    def worker(self, dsn: str, umami_url: str, traffic: TrafficSummary, *,
               server: WorkerServer | None = None) -> Worker:
        """A worker launcher whose children see this day's servers."""
        env = {
            "AIRFLOW_CONN_UMAMI_DB": postgres_connection(dsn),
            "AIRFLOW_CONN_UMAMI_API": api_connection(umami_url),
            "AIRFLOW_CONN_USERS_MONGO": mongo_connection(self.mongo_uri, DATABASE),
        }
        common = {"dsn": dsn, "mongo_uri": self.mongo_uri, "database": DATABASE, "umami_url": umami_url,
                  "username": USERNAME, "password": PASSWORD, "website_ids": list(traffic.website_ids),
                  "start": traffic.start.isoformat(), "end": traffic.end.isoformat()}
        return Worker(server or self.server, env, common, profile=self.args.profile)

    def limits(self, worker: Worker, umami: FakeUmami, traffic: TrafficSummary, sizes: Sizes) -> Figures:
        """Bare read, bare writes of the recorded operations, and bare API paging."""
        limits: Figures = {}
        log("limit: bare read of the session stage's rows")
        limits["read"] = worker.run("bare_read", settings=self.settings)
        self.seed("users_bare", traffic, sizes)
        copy_indexes(self.db, self.db, "users_record", "users_bare")
        log("limit: bare bulk_write of stage 1's operations")
        limits["sessions_write"] = worker.run("bare_write", collection="users_bare",
                                              ops=str(self.folder / "sessions.ops.bson"))
        log("limit: bare bulk_write of stage 2's operations")
        limits["analytics_write"] = worker.run("bare_write", collection="users_bare",
                                               ops=str(self.folder / "analytics.ops.bson"))
        self.db.drop_collection("users_bare")
        log("limit: bare API paging")
        umami.reset()
        limits["http"] = worker.run("bare_http", page_size=self.page_size)
        return limits

    def paths(self, worker: Worker, traffic: TrafficSummary, sizes: Sizes, main: Figures) -> Figures:
        """Both write paths, each on a fresh copy of the users with the indexes its look-ups need: stage 1,
        its re-run, stage 2, its re-run; then whether both paths left the users the same.

        The path ``auto`` chose on this server already ran: its first runs are the stage runs above (on the
        fresh ``users``), only its re-runs run here. The other path runs all four on a fresh copy.
        """
        paths: Figures = {"auto": main["auto_path"]}
        for path in PATHS:
            reused = path == main["auto_path"]
            collection = "users" if reused else f"users_{path}"
            if not reused:
                self.seed(collection, traffic, sizes)
                UsersCollection(self.db[collection], match_field=self.match_field,
                                collation=path == "on").ensure_indexes()
            settings = {**self.settings, "users_collection": collection, "mongo_collation": path}
            runs: Figures = {"collection": collection, "first_runs_are_the_stage_runs": reused}
            for stage in ("sessions", "analytics"):
                if reused:
                    runs[f"{stage}_first"] = main[stage]
                else:
                    log(f"write path collation {path}: {stage}, first run")
                    runs[f"{stage}_first"] = complete(worker.run(stage, settings=settings), f"{stage}, {path}")
                log(f"write path collation {path}: {stage}, re-run")
                runs[f"{stage}_rerun"] = complete(worker.run(stage, settings=settings), f"{stage} re-run, {path}")
            paths[path] = runs
        differing, compared = self.compare_users(*(paths[path]["collection"] for path in PATHS))
        paths["compared_users"], paths["differing_users"] = compared, differing
        for path in PATHS:
            if paths[path]["collection"] != "users":
                self.db.drop_collection(paths[path]["collection"])
        return paths

    def compare_users(self, first: str, second: str) -> tuple[int, int]:
        """(users whose synced fields differ, users compared) between two collections seeded alike."""
        projection = dict.fromkeys(OUR_FIELDS, 1)
        other = {user["_id"]: user for user in self.db[second].find({}, projection)}
        differing = compared = 0
        for user in self.db[first].find({}, projection):
            compared += 1
            differing += other.pop(user["_id"], None) != user
        return differing + len(other), compared

    def baseline(self, worker: Worker, traffic: TrafficSummary, sizes: Sizes) -> Figures:
        """The original tool's approach on the same data, sampled within the budget when slow."""
        self.seed("users_baseline", traffic, sizes)
        budget = self.args.baseline_budget
        log(f"baseline: original session sync (budget {budget:.0f} s)")
        sessions = worker.run("baseline_sessions", collection="users_baseline", budget_seconds=budget)
        log(f"baseline: original analytics sync (budget {budget:.0f} s)")
        analytics = worker.run("baseline_analytics", collection="users_baseline", budget_seconds=budget)
        self.db.drop_collection("users_baseline")
        return {"sessions": sessions, "analytics": analytics}

    def ties(self) -> Figures:
        """The tie-heavy day: one website whose hits are on whole seconds, sessions ending in groups on the
        same second, some on two hostnames; one user per session (knowing its id). Stage 2 at a small page
        size, then every user's ``umamiAnalytics`` checked against Umami's own events."""
        sessions, page_size = self.args.tie_sessions, self.args.tie_page_size
        figures: Figures = {"sessions": sessions, "page_size": page_size, "ties": asdict(TieDay())}
        with LocalPostgres() as postgres:
            load_umami_schema(postgres.dsn)
            log(f"tie-heavy day: generating {sessions:,} sessions (whole seconds, tie groups, two hostnames)")
            traffic = generate_traffic(postgres.dsn, day=DAY, websites=1, sessions=sessions, identified=0,
                                       user_id=FAKE_UMAMI_USER_ID, ties=TieDay())
            (website_id,) = traffic.website_ids
            truth = session_truth(postgres.dsn, website_id, traffic.start, traffic.end)
            figures["list"] = list_shape(postgres.dsn, website_id, traffic.start, traffic.end)
            figures["expected"] = len(truth)
            users = self.db["users_ties"]
            self.db.drop_collection("users_ties")
            users.insert_many([
                {"_id": ObjectId(), "email": f"tie{n}@example.com", "name": f"Tie {n}", "isDeleted": False,
                 "createdAt": datetime(2026, 1, 1), "updatedAt": datetime(2026, 1, 1), "session_id": session_id}
                for n, session_id in enumerate(sorted(truth))])
            UsersCollection(users, match_field="email", collation=False).ensure_indexes()
            with FakeUmami(postgres.dsn, username=USERNAME, password=PASSWORD,
                           user_id=FAKE_UMAMI_USER_ID) as umami:
                worker = self.worker(postgres.dsn, umami.url, traffic)
                log(f"tie-heavy day: stage 2 at page size {page_size}")
                figures["analytics"] = worker.run("analytics", settings={
                    **self.settings, "page_size": page_size, "users_collection": "users_ties"})
                figures["analytics"]["http"] = {**request_split(umami, traffic.website_ids), "page_size": page_size}
            figures["check"] = self.check_ties(truth)
            self.db.drop_collection("users_ties")
        return figures

    def check_ties(self, truth: dict[str, tuple[Any, ...]]) -> Figures:
        """Every user of the tie day against the truth of its session: written, and exact."""
        written = exact = 0
        wrong: list[Figures] = []
        for user in self.db["users_ties"].find({}, {"session_id": 1, "umamiAnalytics": 1}):
            analytics = user.get("umamiAnalytics")
            if not analytics:
                continue
            written += 1
            got = (analytics.get("firstAt"), analytics.get("lastAt"), analytics.get("views"), analytics.get("visits"))
            if analytics.get("id") == user["session_id"] and got == truth.get(user["session_id"]):
                exact += 1
            elif len(wrong) < 5:
                wrong.append({"session_id": user["session_id"], "written": got,
                              "truth": truth.get(user["session_id"])})
        return {"expected": len(truth), "written": written, "exact": exact, "wrong": wrong}


def summarise(scales: list[Figures], ties: Figures | None, listings: Figures | None = None) -> Figures:
    """Derived figures (rates, ratios, memory growth) and the targets, from the raw figures of each scale."""
    main = scales[0]
    sessions, analytics = main["sessions"], main["analytics"]
    session_result = sessions["result"]
    results = analytics["results"]
    sessions_read = sum(result["sessions"] for result in results)
    summary: Figures = {
        "sessions": {
            "seconds": sessions["seconds"],
            "rows": session_result["rows_read"],
            "rows_per_second": ratio(session_result["rows_read"], sessions["seconds"]),
            "changes": session_result["changes"],
            "bulk_writes": session_result["bulk_writes"],
            "http_requests": sessions["http_requests"],
            "rss_peak_mb": sessions["rss_peak_mb"],
            **_cpu(sessions, session_result["rows_read"]),
            "lookup_seconds": _probe(sessions, "lookup_by_identity"),
            **_calls(sessions, "lookup_by_identity"),
            "unfolded_scan_seconds": _probe(sessions, "unfolded_scan"),
            "bulk_write_seconds": _probe(sessions, "bulk_write"),
        },
        "analytics": {
            "seconds": analytics["seconds"],
            "rows": sessions_read,
            "rows_per_second": ratio(sessions_read, analytics["seconds"]),
            "changes": analytics_changes(analytics),
            "bulk_writes": sum(result["bulk_writes"] for result in results),
            "http_requests": _requests(analytics["http"]),
            "planning_requests": analytics["http"]["planning"],
            "list_pages": sum(result["list_pages"] for result in results),
            "repair_pages": sum(result["repair_pages"] for result in results),
            "session_reads": sum(result["session_reads"] for result in results),
            "logins": sum(result["logins"] for result in results),
            "left_to_other_tasks": sum(result.get("left_to_other_tasks", 0) for result in results),
            "retries": sum(result["retries"] for result in results),
            "rss_peak_mb": analytics["rss_peak_mb"],
            **_cpu(analytics, sessions_read),
            **_calls(analytics, "lookup_by_session"),
            "websites": [_website(result, analytics["http"]["page_size"]) for result in results],
            **_time_split(analytics),
        },
    }
    targets: list[Figures] = []
    if "limits" in main:
        summary["limits"] = _limit_ratios(main)
        limit = summary["limits"]
        targets.append(_target("stage 1 <= 1.3x (bare read + bare write)", limit["sessions"]["ratio_to_sum"], 1.3))
        targets.append(_target("stage 1 <= 1.1x the slower of read / write (aim)",
                               limit["sessions"]["ratio_to_slower"], 1.1))
        for stage, number in (("sessions", 1), ("analytics", 2)):
            targets.append(_target(f"stage {number} client CPU <= 1.5x (bare read + bare write + look-ups alone)",
                                   limit[stage]["cpu_ratio"], 1.5))
    targets.append(_target("stage 1 client CPU <= 25 us per identity row",
                           summary["sessions"]["cpu_per_row_us"], CPU_PER_ROW_US))
    targets.append(_target("stage 2 client CPU <= 25 us per session", summary["analytics"]["cpu_per_row_us"],
                           CPU_PER_ROW_US))
    targets.extend(_request_targets(summary["analytics"]["websites"], main["analytics"]))
    if "before" in main:
        summary["before"] = _before(main["before"])
    if "paths" in main:
        summary["paths"] = _paths(main["paths"])
        targets.extend(_path_targets(summary["paths"]))
    if ties is not None:
        summary["ties"] = _ties(ties)
        targets.extend(_tie_targets(summary["ties"]))
    if "baseline" in main:
        summary["baseline"] = _baseline(main)
        speedup = summary["baseline"]["speedup"]
        targets.append({"name": "end to end >= 5x faster than the original approach", "value": speedup,
                        "limit": 5.0, "met": speedup is not None and speedup >= 5.0})
    if len(scales) > 1:
        summary["memory"] = _memory(scales)
        for stage in ("sessions", "analytics"):
            growth = summary["memory"][stage]["growth_mb"]
            targets.append({"name": f"{stage}: peak RSS growth {scales[0]['scale']}x -> {scales[-1]['scale']}x "
                                    "<= +50 MB", "value": growth, "limit": 50.0, "met": growth <= 50.0})
    if listings is not None:
        summary["listing"] = _listing(listings)
        targets.extend(_listing_targets(summary["listing"]))
    summary["targets"] = targets
    return summary


LISTING_BYTES_PER_ROW = 36
"""The listing's memory per row that the README gives: two 64-bit hashes a row in flat arrays one to two thirds full,
25 to 51 bytes as a list grows (CPython's array keeps a sixteenth spare), 35 on average over list sizes. The limit of
the listing-alone steps; ``tests/test_readme.py`` holds the README's figures to it."""


def _requests(http: Figures) -> int:
    """Every request a stage-2 run sent (``request_split``)."""
    total: int = sum(sum(site.values()) for site in http["per_website"].values()) + http["planning"] + http["other"]
    return total


def _calls(figures: Figures, lookup: str) -> Figures:
    """A step's owner look-up calls and the ``find`` commands it sent."""
    return {"lookup_calls": figures["probes"][lookup]["calls"], "find_calls": figures["probes"]["find"]["calls"]}


def _before(before: Figures) -> Figures:
    """The stage runs of the product compared with (``--before``)."""
    sessions, analytics = before["sessions"], before["analytics"]
    return {
        "sessions": {"seconds": sessions["seconds"], "rss_peak_mb": sessions["rss_peak_mb"],
                     **_cpu(sessions, sessions["result"]["rows_read"]), **_calls(sessions, "lookup_by_identity")},
        "analytics": {"seconds": analytics["seconds"], "rss_peak_mb": analytics["rss_peak_mb"],
                      **_cpu(analytics, sum(result["sessions"] for result in analytics["results"])),
                      **_calls(analytics, "lookup_by_session"),
                      "http_requests": _requests(analytics["http"])},
    }


def _listing(listings: Figures) -> Figures:
    """Each product's listing-alone runs, and its memory per row between its smallest and largest run."""
    summary: Figures = {"page_size": listings["page_size"]}
    for product in ("after", "before"):
        runs = [run for run in listings["runs"] if run["product"] == product]
        if not runs:
            continue
        first, last = runs[0], runs[-1]
        summary[product] = {
            "runs": [{key: run[key] for key in ("rows", "rows_per_second", "cpu_per_row_us", "rss_peak_mb")}
                     for run in runs],
            "bytes_per_row": ratio((last["rss_peak_mb"] - first["rss_peak_mb"]) * 2**20, last["rows"] - first["rows"])}
    return summary


def _listing_targets(listing: Figures) -> list[Figures]:
    per_row = listing["after"]["bytes_per_row"]
    if per_row is None:  # one size only: no growth to measure
        return []
    return [_target(f"listing memory per row <= {LISTING_BYTES_PER_ROW} bytes (the README's figure)", per_row,
                    LISTING_BYTES_PER_ROW)]


def _target(name: str, value: float | None, limit: float) -> Figures:
    return {"name": name, "value": value, "limit": limit, "met": value is not None and value <= limit}


def _website(result: Figures, page_size: int) -> Figures:
    """One stage-2 job's requests, split, and what it may send: ceil(list rows / page size) + session reads + 2."""
    return {"website_id": result["website_id"], "website_name": result["website_name"],
            "list_rows": result["list_rows"], "sessions": result["sessions"], "list_pages": result["list_pages"],
            "repair_pages": result["repair_pages"], "session_reads": result["session_reads"],
            "logins": result["logins"], "requests": result["requests"], "retries": result["retries"],
            "allowed": math.ceil(result["list_rows"] / page_size) + result["session_reads"] + 2,
            "page_size": page_size, "complete": result["error"] is None and result["missing_rows"] == 0}


def _probe(figures: Figures, label: str, kind: str = "seconds") -> float:
    """Seconds a step spent in one probed method (``worker.stage_probes``); ``kind="cpu_seconds"``: the CPU time
    of the calling thread in it."""
    seconds: float = figures["probes"][label][kind]
    return seconds


def _cpu(figures: Figures, rows: int) -> Figures:
    """A step's client CPU (user + system of its child, from ``wait4``), in all and per row in microseconds."""
    return {"cpu_seconds": figures["cpu_seconds"], "cpu_per_row_us": ratio(figures["cpu_seconds"] * 1e6, rows)}


def _time_split(figures: Figures) -> Figures:
    """Where a stage-2 run's wall time went (see ``worker.stage_probes``): the main thread pages the list,
    reads sessions, looks owners up and asks PostgreSQL for sessions' first and last events; the rest of its
    time is planning and waiting for the writer."""
    list_pages, waited = _probe(figures, "list_pages"), _probe(figures, "list_wait")
    parts = {"list_wait_seconds": waited if figures["probes"]["list_wait"]["calls"] else list_pages,
             "session_read_seconds": _probe(figures, "session_reads"),
             "lookup_seconds": _probe(figures, "lookup_by_session"),
             "span_query_seconds": _probe(figures, "session_spans")}
    return {**parts, "list_page_seconds": list_pages, "list_overlap_seconds": list_pages - parts["list_wait_seconds"],
            "bulk_write_seconds": _probe(figures, "bulk_write"),
            "rest_seconds": figures["seconds"] - sum(parts.values())}


def _limit_ratios(main: Figures) -> Figures:
    limits = main["limits"]
    read, write = limits["read"]["seconds"], limits["sessions_write"]["seconds"]
    http, analytics_write = limits["http"]["seconds"], limits["analytics_write"]["seconds"]
    stage1, stage2 = main["sessions"]["seconds"], main["analytics"]["seconds"]
    lookup = _probe(main["analytics"], "lookup_by_session")
    excess = stage2 - max(http, analytics_write)
    # The owner look-ups of a re-run (which writes nothing) are the look-ups alone: a server that serves one
    # command at a time (SecantusDB) must do them on top of the bare write, whatever the sync overlaps.
    reruns = main["paths"][main["auto_path"]]
    lookup1 = _probe(reruns["sessions_rerun"], "lookup_by_identity")
    lookup2 = _probe(reruns["analytics_rerun"], "lookup_by_session")
    return {
        "sessions": {"read_seconds": read, "write_seconds": write, "ratio_to_sum": ratio(stage1, read + write),
                     "ratio_to_slower": ratio(stage1, max(read, write)), "lookup_alone_seconds": lookup1,
                     "ratio_to_server_work": ratio(stage1, write + lookup1),
                     **_cpu_limits(main["sessions"], limits["read"], limits["sessions_write"],
                                   reruns["sessions_rerun"], "lookup_by_identity")},
        "analytics": {"read_seconds": http, "write_seconds": analytics_write,
                      "ratio_to_sum": ratio(stage2, http + analytics_write),
                      "ratio_to_slower": ratio(stage2, max(http, analytics_write)),
                      "slower": "bare API paging" if http >= analytics_write else "bare bulk_write",
                      "excess_seconds": excess, "lookup_seconds": lookup,
                      "lookup_share_of_excess": ratio(lookup, excess), "lookup_alone_seconds": lookup2,
                      "ratio_to_server_work": ratio(stage2, analytics_write + lookup2),
                      **_cpu_limits(main["analytics"], limits["http"], limits["analytics_write"],
                                    reruns["analytics_rerun"], "lookup_by_session")},
    }


def _cpu_limits(stage: Figures, read: Figures, write: Figures, rerun: Figures, lookup: str) -> Figures:
    """The client CPU of a stage's bare read and bare write (their children, per row and per operation) and of its
    look-ups alone (the CPU of the look-up calls in a re-run), and the stage's CPU over their sum."""
    lookups = _probe(rerun, lookup, "cpu_seconds")
    floor = read["cpu_seconds"] + write["cpu_seconds"] + lookups
    return {"read_cpu_seconds": read["cpu_seconds"], "read_cpu_per_row_us": ratio(read["cpu_seconds"] * 1e6,
                                                                                  read["rows"]),
            "write_cpu_seconds": write["cpu_seconds"], "write_cpu_per_op_us": ratio(write["cpu_seconds"] * 1e6,
                                                                                   write["rows"]),
            "lookup_alone_cpu_seconds": lookups, "cpu_floor_seconds": floor,
            "cpu_ratio": ratio(stage["cpu_seconds"], floor)}


def _request_targets(websites: list[Figures], analytics: Figures) -> list[Figures]:
    """Per website (its job's own requests, login included): <= ceil(list rows / page size) + session reads
    + 2; every job complete; no retries.

    Website discovery (a login and the website list) belongs to planning, not to one website: it is
    reported apart, in ``http.other`` minus the jobs' logins.
    """
    targets = []
    for site in websites:
        targets.append({"name": f"stage 2 requests, website {site['website_id'][:8]} <= ceil({site['list_rows']:,} / "
                                f"{site['page_size']:,}) + {site['session_reads']:,} session reads + 2",
                        "value": site["requests"], "limit": site["allowed"],
                        "met": site["requests"] <= site["allowed"]})
    incomplete = sum(not site["complete"] for site in websites)
    targets.append({"name": "stage 2: every website's job complete (no missing rows, no error)",
                    "value": incomplete, "limit": 0, "met": incomplete == 0})
    retries = sum(site["retries"] for site in websites)
    non_2xx = analytics["http"]["non_2xx"]
    targets.append({"name": "stage 2 retries (and non-2xx answers) on a healthy server == 0",
                    "value": retries + non_2xx, "limit": 0, "met": retries + non_2xx == 0})
    return targets


def _paths(paths: Figures) -> Figures:
    summary: Figures = {"auto": paths["auto"]}
    for path in PATHS:
        runs = paths[path]
        summary[path] = {"first_runs_are_the_stage_runs": runs["first_runs_are_the_stage_runs"]}
        for stage in ("sessions", "analytics"):
            for run in ("first", "rerun"):
                figures = runs[f"{stage}_{run}"]
                summary[path][f"{stage}_{run}"] = {
                    "changes": figures["result"]["changes"] if stage == "sessions" else analytics_changes(figures),
                    "seconds": figures["seconds"],
                    "lookup_seconds": _probe(figures, "lookup_by_identity" if stage == "sessions"
                                             else "lookup_by_session")}
    summary["differing_users"], summary["compared_users"] = paths["differing_users"], paths["compared_users"]
    return summary


def _path_targets(paths: Figures) -> list[Figures]:
    rerun = sum(paths[path][f"{stage}_rerun"]["changes"] for path in PATHS for stage in ("sessions", "analytics"))
    return [
        {"name": "re-run sends 0 changes (collation on and off, both stages)", "value": rerun, "limit": 0,
         "met": rerun == 0},
        {"name": f"collation on and off leave the same users ({paths['compared_users']:,} compared)",
         "value": paths["differing_users"], "limit": 0, "met": paths["differing_users"] == 0},
    ]


def _ties(ties: Figures) -> Figures:
    (result,) = ties["analytics"]["results"]
    site = _website(result, ties["page_size"])
    return {**ties["list"], "page_size": ties["page_size"], "sessions": ties["sessions"],
            "expected": ties["check"]["expected"], "written": ties["check"]["written"],
            "exact": ties["check"]["exact"], "wrong": ties["check"]["wrong"],
            "read_sessions": result["sessions"], "merged_sessions": result["merged_sessions"],
            "matched_sessions": result["matched_sessions"], "rows_read": result["rows_read"],
            "missing_rows": result["missing_rows"], "repeated_rows": result["repeated_rows"],
            "error": result["error"], "seconds": ties["analytics"]["seconds"],
            **{key: site[key] for key in ("list_rows", "list_pages", "repair_pages", "session_reads", "logins",
                                          "requests", "allowed", "complete")}}


def _tie_targets(ties: Figures) -> list[Figures]:
    exact = ties["exact"] == ties["written"] == ties["expected"] and ties["complete"]
    return [
        {"name": f"tie-heavy day: every session exact ({ties['expected']:,} sessions, page size {ties['page_size']})",
         "value": ties["exact"], "limit": ties["expected"], "met": exact},
        {"name": f"tie-heavy day requests <= ceil({ties['list_rows']:,} / {ties['page_size']}) + "
                 f"{ties['session_reads']:,} session reads + 2",
         "value": ties["requests"], "limit": ties["allowed"], "met": ties["requests"] <= ties["allowed"]},
    ]


def _baseline(main: Figures) -> Figures:
    sessions, analytics = main["baseline"]["sessions"], main["baseline"]["analytics"]
    product = main["sessions"]["seconds"] + main["analytics"]["seconds"]
    original = sessions["seconds"] + analytics["seconds"]
    return {
        "sessions_seconds": sessions["seconds"], "analytics_seconds": analytics["seconds"],
        "sessions_speedup": ratio(sessions["seconds"], main["sessions"]["seconds"]),
        "analytics_speedup": ratio(analytics["seconds"], main["analytics"]["seconds"]),
        "speedup": ratio(original, product),
        "extrapolated": sessions["extrapolated"] or analytics["extrapolated"],
        "notes": sessions["notes"] + analytics["notes"],
    }


def _memory(scales: list[Figures]) -> Figures:
    first, last = scales[0], scales[-1]
    return {stage: {f"{scale['scale']}x": scale[stage]["rss_peak_mb"] for scale in scales}
            | {"growth_mb": last[stage]["rss_peak_mb"] - first[stage]["rss_peak_mb"]}
            for stage in ("sessions", "analytics")}


def _number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def _run(figures: Figures) -> str:
    """``changes / seconds`` of one run."""
    return f"{figures['changes']:,} / {figures['seconds']:,.2f} s"


def table(report: Figures) -> str:
    """The one table: stage 1 and stage 2 side by side, both write paths, the tie-heavy day, the targets."""
    summary, meta = report["summary"], report["meta"]
    main = report["scales"][0]
    s1, s2 = summary["sessions"], summary["analytics"]
    sizes = main["sizes"]
    rows: list[tuple[str, str, str]] = [
        ("wall time (s)", _number(s1["seconds"], 2), _number(s2["seconds"], 2)),
        ("rows per second", _number(s1["rows_per_second"], 0), _number(s2["rows_per_second"], 0)),
        ("rows (identity rows / sessions)", f"{s1['rows']:,}", f"{s2['rows']:,}"),
        ("changes sent", f"{s1['changes']:,}", f"{s2['changes']:,}"),
        ("bulk_write calls", f"{s1['bulk_writes']:,}", f"{s2['bulk_writes']:,}"),
        ("HTTP requests (retries)", f"{s1['http_requests']:,}", f"{s2['http_requests']:,} ({s2['retries']})"),
        ("  planning: login, websites, row counts", "-", f"{s2['planning_requests']:,}"),
        ("  list pages (repair) + session reads", "-",
         f"{s2['list_pages']:,} ({s2['repair_pages']}) + {s2['session_reads']:,}"),
    ]
    for site in s2["websites"]:
        rows.append((f"    {site['website_name'] or site['website_id'][:8]} ({site['website_id'][:8]})", "-",
                     f"{site['list_pages']:,} ({site['repair_pages']}) + {site['session_reads']:,}"))
    rows += [
        ("users left to another website's task", "-", f"{s2['left_to_other_tasks']:,}"),
        ("owner look-up (s) [by identity | by session]", _number(s1["lookup_seconds"], 2),
         _number(s2["lookup_seconds"], 2)),
        ("owner look-up calls / find commands", f"{s1['lookup_calls']:,} / {s1['find_calls']:,}",
         f"{s2['lookup_calls']:,} / {s2['find_calls']:,}"),
        ("session spans query in PostgreSQL (s)", "-", _number(s2["span_query_seconds"], 2)),
        ("API list pages + session reads (s)", "-",
         f"{_number(s2['list_page_seconds'], 2)} + {_number(s2['session_read_seconds'], 2)}"),
        ("  list pages, main thread waited (s) [overlapped]", "-",
         f"{_number(s2['list_wait_seconds'], 2)} [{_number(s2['list_overlap_seconds'], 2)}]"),
        ("bulk_write calls, writer thread (s)", _number(s1["bulk_write_seconds"], 2),
         _number(s2["bulk_write_seconds"], 2)),
        ("peak RSS of the worker (MB)", _number(s1["rss_peak_mb"]), _number(s2["rss_peak_mb"])),
        ("client CPU of the step (s)", _number(s1["cpu_seconds"], 2), _number(s2["cpu_seconds"], 2)),
        ("client CPU per row (us) [identity row | session]", _number(s1["cpu_per_row_us"], 1),
         _number(s2["cpu_per_row_us"], 1)),
    ]
    if "limits" in summary:
        l1, l2 = summary["limits"]["sessions"], summary["limits"]["analytics"]
        rows += [
            ("limit: bare read (s) [PG cursor | API pages]", _number(l1["read_seconds"], 2),
             _number(l2["read_seconds"], 2)),
            ("limit: bare bulk_write of same ops (s)", _number(l1["write_seconds"], 2),
             _number(l2["write_seconds"], 2)),
            ("sync / (read + write)", _number(l1["ratio_to_sum"], 2, "x"), _number(l2["ratio_to_sum"], 2, "x")),
            ("sync / slower of the two", _number(l1["ratio_to_slower"], 2, "x"),
             _number(l2["ratio_to_slower"], 2, "x")),
            ("stage 2 beyond its slower limit (s)", "-", _number(l2["excess_seconds"], 2)),
            ("owner look-ups alone, in a re-run (s)", _number(l1["lookup_alone_seconds"], 2),
             _number(l2["lookup_alone_seconds"], 2)),
            ("sync / (bare write + look-ups alone)", _number(l1["ratio_to_server_work"], 2, "x"),
             _number(l2["ratio_to_server_work"], 2, "x")),
            ("client CPU: bare read (s) [us per row]", _cpu_cell(l1, "read"), _cpu_cell(l2, "read")),
            ("client CPU: bare bulk_write (s) [us per op]", _cpu_cell(l1, "write"), _cpu_cell(l2, "write")),
            ("client CPU: look-ups alone, in a re-run (s)", _number(l1["lookup_alone_cpu_seconds"], 2),
             _number(l2["lookup_alone_cpu_seconds"], 2)),
            ("client CPU / (bare read + write + look-ups)", _number(l1["cpu_ratio"], 2, "x"),
             _number(l2["cpu_ratio"], 2, "x")),
        ]
    if "baseline" in summary:
        base = summary["baseline"]
        mark = " *" if base["extrapolated"] else ""
        rows += [
            ("original approach (s)", _number(base["sessions_seconds"], 1, mark),
             _number(base["analytics_seconds"], 1, mark)),
            ("speedup vs original", _number(base["sessions_speedup"], 1, "x"),
             _number(base["analytics_speedup"], 1, "x")),
        ]
    if "memory" in summary:
        memory = summary["memory"]
        rows += [(f"peak RSS {key} (MB)", _number(memory["sessions"][key]), _number(memory["analytics"][key]))
                 for key in memory["sessions"] if key != "growth_mb"]
        rows.append(("peak RSS growth (MB)", _number(memory["sessions"]["growth_mb"], 1),
                     _number(memory["analytics"]["growth_mb"], 1)))
    path_rows: list[tuple[str, str, str]] = []
    if "paths" in summary:
        paths = summary["paths"]
        for path in PATHS:
            for run, label in (("first", "first run"), ("rerun", "re-run")):
                note = " (= the runs above)" if run == "first" and paths[path]["first_runs_are_the_stage_runs"] else ""
                path_rows.append((f"collation {path}: {label}{note}", _run(paths[path][f"sessions_{run}"]),
                                  _run(paths[path][f"analytics_{run}"])))
    width = max(len(row[0]) for row in rows + path_rows) + 2
    lines = [
        f"umami-mongo-sync bench: {sizes['websites']} website(s), {sizes['sessions']:,} sessions "
        f"({sizes['identified']:,} identified), {sizes['users']:,} users; MongoDB: {meta['mongo']}",
    ]
    lines.append(f"{'':<{width}}{'stage 1: sessions':>22}{'stage 2: analytics':>22}")
    lines += [f"{label:<{width}}{first:>22}{second:>22}" for label, first, second in rows]
    if "baseline" in summary:
        base = summary["baseline"]
        lines.append(f"{'end to end speedup vs original':<{width}}{_number(base['speedup'], 1, 'x'):>44}")
        if base["extrapolated"]:
            lines.append("* timed on a measured sample and extrapolated: " + "; ".join(base["notes"]))
    if path_rows:
        lines.append(f"write paths (mongo_collation; auto chose {summary['paths']['auto']} here), each on a fresh "
                     "copy of the users: changes sent / wall time")
        lines += [f"{label:<{width}}{first:>22}{second:>22}" for label, first, second in path_rows]
    if "before" in summary:
        lines += _before_lines(summary, meta["before"], width)
    if "ties" in summary:
        lines += _tie_lines(summary["ties"], width)
    if "listing" in summary:
        lines += _listing_lines(summary["listing"], width)
    if "limits" in summary:
        lines.append(_stage2_note(summary))
    lines.append("targets:")
    for target in summary["targets"]:
        value = target["value"]
        shown = _number(value, 2) if isinstance(value, float) else str(value)
        lines.append(f"  [{'met' if target['met'] else 'MISSED'}] {target['name']}: {shown} "
                     f"(limit {target['limit']})")
    return "\n".join(lines)


def _before_lines(summary: Figures, product: str, width: int) -> list[str]:
    before, after = summary["before"], {stage: summary[stage] for stage in ("sessions", "analytics")}
    lines = [f"before ({product}) -> after, the same day on a fresh copy of the users:"]
    for label, key, digits in (("wall time (s)", "seconds", 2), ("client CPU of the step (s)", "cpu_seconds", 2),
                               ("client CPU per row (us)", "cpu_per_row_us", 1), ("peak RSS (MB)", "rss_peak_mb", 1),
                               ("owner look-up calls", "lookup_calls", 0), ("find commands", "find_calls", 0)):
        cells = [f"{_number(before[stage][key], digits)} -> {_number(after[stage][key], digits)}"
                 for stage in ("sessions", "analytics")]
        lines.append(f"{label:<{width}}{cells[0]:>22}{cells[1]:>22}")
    requests = f"{before['analytics']['http_requests']:,} -> {after['analytics']['http_requests']:,}"
    lines.append(f"{'HTTP requests':<{width}}{'-':>22}{requests:>22}")
    return lines


def _listing_lines(listing: Figures, width: int) -> list[str]:
    lines = [f"listing alone (generated pages of {listing['page_size']:,} rows through SessionListing and the figure "
             "rules, no servers): rows per second / client CPU per row (us) / peak RSS (MB)"]
    for product in ("before", "after"):
        if product not in listing:
            continue
        for run in listing[product]["runs"]:
            label = f"{product}: {run['rows']:,} rows"
            value = (f"{_number(run['rows_per_second'], 0)} / {_number(run['cpu_per_row_us'], 1)} / "
                     f"{_number(run['rss_peak_mb'], 1)}")
            lines.append(f"{label:<{width}}{value:>44}")
        label = f"{product}: memory per row (bytes)"
        lines.append(f"{label:<{width}}{_number(listing[product]['bytes_per_row'], 1):>44}")
    return lines


def _cpu_cell(limit: Figures, step: str) -> str:
    per = limit["read_cpu_per_row_us" if step == "read" else "write_cpu_per_op_us"]
    return f"{_number(limit[f'{step}_cpu_seconds'], 2)} [{_number(per, 1)}]"


def _tie_lines(ties: Figures, width: int) -> list[str]:
    rows = [
        ("sessions expected / written / exact", f"{ties['expected']:,} / {ties['written']:,} / {ties['exact']:,}"),
        ("list rows read / missing / repeated", f"{ties['rows_read']:,} / {ties['missing_rows']:,} / "
                                                f"{ties['repeated_rows']:,}"),
        ("requests: list pages (repair) + session reads + logins",
         f"{ties['list_pages']:,} ({ties['repair_pages']}) + {ties['session_reads']:,} + {ties['logins']} "
         f"= {ties['requests']:,}"),
        ("wall time (s)", _number(ties["seconds"], 2)),
    ]
    label_width = max(width, *(len(label) + 2 for label, _ in rows))
    return [f"tie-heavy day: 1 website, {ties['sessions']:,} sessions ({ties['multi_hostname_sessions']:,} on two "
            f"hostnames), {ties['list_rows']:,} list rows ({ties['tied_rows']:,} tie on their last second, in "
            f"{ties['tie_groups']:,} groups of up to {ties['largest_tie']}); stage 2 at page size {ties['page_size']}"
            ] + [f"{label:<{label_width}}{value:>{44 + width - label_width}}" for label, value in rows]


def _stage2_note(summary: Figures) -> str:
    """Where stage 2's time goes beyond its slower limit, from the probes of the measured run."""
    limit, s2 = summary["limits"]["analytics"], summary["analytics"]
    share = limit["lookup_share_of_excess"]
    slower = max(limit["read_seconds"], limit["write_seconds"])
    return (f"stage 2: {_number(s2['seconds'], 1)} s = {limit['slower']} {_number(slower, 1)} s + "
            f"{_number(limit['excess_seconds'], 1)} s. Reader thread: list pages "
            f"{_number(s2['list_page_seconds'], 1)} s, of which the main thread waited "
            f"{_number(s2['list_wait_seconds'], 1)} s. Main thread: session reads "
            f"{_number(s2['session_read_seconds'], 1)} s, owner look-up "
            f"{_number(s2['lookup_seconds'], 1)} s ({_number(None if share is None else share * 100, 0)}% of the "
            f"excess), session spans query {_number(s2['span_query_seconds'], 1)} s, the rest (planning, waiting for "
            f"the writer) {_number(s2['rest_seconds'], 1)} s. Writer thread: bulk_write "
            f"{_number(s2['bulk_write_seconds'], 1)} s. The look-ups alone (a re-run, no writes) take "
            f"{_number(limit['lookup_alone_seconds'], 1)} s: a server that serves one command at a time does them "
            f"on top of the writes, so stage 2 is {_number(limit['ratio_to_server_work'], 2, 'x')} the server's work.")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--smoke`` sets tiny sizes (explicit flags still win)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--websites", type=int)
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--identified", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--scales", help="comma-separated multiples of the sizes, e.g. 1,4 (default)")
    parser.add_argument("--mongo-uri", help="a MongoDB to use instead of the local SecantusDB")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--page-size", type=int, help="the sync's page_size (default: the product default)")
    parser.add_argument("--batch-size", type=int, help="the sync's batch_size (default: the product default)")
    parser.add_argument("--baseline-budget", type=float, help="seconds per baseline stage before extrapolating")
    parser.add_argument("--tie-sessions", type=int, help="sessions of the tie-heavy day (0: skip it)")
    parser.add_argument("--tie-page-size", type=int, help="the sync's page_size on the tie-heavy day")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one scale: checks the bench runs")
    parser.add_argument("--profile", type=Path, help="a folder: py-spy samples every step into it (slows the steps)")
    parser.add_argument("--listing-rows", help="generated list rows of the listing-alone steps, comma-separated "
                                               "(default 1000000,10000000; 0: skip them)")
    parser.add_argument("--before", type=Path, help="a checkout of the product to compare with: its stages (first "
                                                    "scale) and listing steps run too, side by side")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.listing_rows = [int(part) for part in str(args.listing_rows).split(",") if int(part or 0) > 0]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so the servers get stopped
    scales = [int(part) for part in str(args.scales).split(",") if part.strip()]
    base = Sizes(args.websites, args.sessions, args.identified, args.users)
    with contextlib.ExitStack() as stack:
        mongo_uri = args.mongo_uri or stack.enter_context(LocalMongo()).uri
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="umami-bench-")))
        server = WorkerServer(folder)
        stack.callback(server.close)
        before = None if args.before is None else WorkerServer(folder, product=args.before.resolve())
        if before is not None:
            stack.callback(before.close)
        bench = Bench(args, mongo_uri, folder, server, before)
        stack.callback(bench.client.close)
        measured = [bench.scale(scale, base.times(scale), full=index == 0) for index, scale in enumerate(scales)]
        ties = bench.ties() if args.tie_sessions > 0 else None
        listings = bench.listings() if args.listing_rows else None
        bench.client.drop_database(DATABASE)
    report: Figures = {
        "meta": {"generated_at": datetime.now(UTC).isoformat(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "mongo": shown_uri(args.mongo_uri) if args.mongo_uri
                 else "SecantusDB (local, in memory)", "smoke": args.smoke, "day": DAY.isoformat(),
                 "settings": bench.settings, "baseline_budget_seconds": args.baseline_budget,
                 "before": None if args.before is None else str(args.before)},
        "scales": measured,
    }
    if ties is not None:
        report["ties"] = ties
    if listings is not None:
        report["listing"] = listings
    report["summary"] = summarise(measured, ties, listings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2, default=str))
    temporary.replace(args.out)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
