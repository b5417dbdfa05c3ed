"""The benchmark: both stages at realistic scale against real servers, side by side with their limits and
the original tool's approach, in one table and one JSON file.

    python bench/run.py [--sessions N --identified N --websites N --users N --mongo-uri URI
                         --scales 1,4 --out bench/results.json --smoke]

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

from pymongo import MongoClient  # noqa: E402

from local_stack.mongo import LocalMongo  # noqa: E402
from local_stack.postgres import LocalPostgres, load_umami_schema  # noqa: E402
from local_stack.traffic import FAKE_UMAMI_USER_ID, generate_traffic, seed_users  # noqa: E402
from local_stack.umami_api import FakeUmami  # noqa: E402
from umami_sync.settings import SyncSettings  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pymongo.database import Database

    from local_stack.traffic import TrafficSummary, UsersSummary

DAY = date(2026, 11, 26)
DATABASE = "umami_bench"
USERNAME, PASSWORD = "admin", "umami"
SMOKE = {"websites": 1, "sessions": 300, "identified": 100, "users": 500, "scales": "1", "baseline_budget": 5.0}
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


class Worker:
    """Runs ``bench/worker.py`` tasks in fresh processes and reads their peak RSS with ``wait4``."""

    def __init__(self, folder: Path, env: dict[str, str], common: Figures) -> None:
        self.folder = folder
        self.env = env
        self.common = common
        self.runs = 0

    def run(self, task: str, **config: Any) -> Figures:
        """Run ``task`` with the common config plus ``config``; return its figures and ``rss_peak_mb``."""
        self.runs += 1
        out = self.folder / f"{self.runs:02d}-{task}.out.json"
        config_path = self.folder / f"{self.runs:02d}-{task}.json"
        config_path.write_text(json.dumps({**self.common, **config, "task": task, "out": str(out)}, default=str))
        log_path = self.folder / f"{self.runs:02d}-{task}.log"
        with log_path.open("wb") as output:
            process = subprocess.Popen([sys.executable, "-m", "bench.worker", str(config_path)], cwd=ROOT,
                                       env=self.env, stdout=output, stderr=subprocess.STDOUT)
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except BaseException:
                process.kill()
                process.wait()
                raise
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"bench worker {task!r} failed with exit code {process.returncode}:\n{tail}")
        figures: Figures = json.loads(out.read_text())
        figures["rss_peak_mb"] = usage.ru_maxrss / 1024
        return figures


def copy_indexes(source: Database[Figures], target: Database[Figures], source_name: str, target_name: str) -> None:
    """Give ``target_name`` the secondary indexes of ``source_name`` (the ones the sync ensured)."""
    for name, info in source[source_name].index_information().items():
        if name == "_id_":
            continue
        options = {key: info[key] for key in ("unique", "sparse", "collation", "partialFilterExpression")
                   if key in info}
        target[target_name].create_index(list(info["key"]), name=name, **options)


def per_website_requests(umami: FakeUmami, website_ids: Sequence[str]) -> tuple[dict[str, int], int, int]:
    """Requests the Umami double answered per website, requests not about one website, and non-2xx answers."""
    per_site = dict.fromkeys(website_ids, 0)
    other = failed = 0
    for record in umami.requests:
        site = next((website for website in website_ids if website in record.path), None)
        if site is None:
            other += 1
        else:
            per_site[site] += 1
        failed += record.status >= 300
    return per_site, other, failed


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is zero."""
    return numerator / denominator if denominator > 0 else None


class Bench:
    """One benchmark run over one or more scales."""

    def __init__(self, args: argparse.Namespace, mongo_uri: str, folder: Path) -> None:
        self.args = args
        self.mongo_uri = mongo_uri
        self.folder = folder
        self.client: MongoClient[Figures] = MongoClient(mongo_uri)
        self.db = self.client[DATABASE]
        self.settings: Figures = {key: value for key, value in
                                  (("page_size", args.page_size), ("batch_size", args.batch_size))
                                  if value is not None}
        self.page_size = SyncSettings(**self.settings).page_size

    def seed(self, collection: str, traffic: TrafficSummary, sizes: Sizes) -> UsersSummary:
        """A fresh users collection, identical for every run of one scale."""
        self.db.drop_collection(collection)
        return seed_users(self.mongo_uri, DATABASE, collection, identities=traffic.identity_emails(),
                          total=sizes.users, seed=traffic.seed, day=traffic.day)

    def scale(self, scale: int, sizes: Sizes, *, full: bool) -> Figures:
        """Generate the data of one scale and measure it; ``full`` adds the limits and the baseline."""
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
                log("stage 1 (session sync)")
                umami.reset()
                figures["sessions"] = worker.run("sessions", settings={**self.settings, "users_collection": "users"})
                figures["sessions"]["http_requests"] = len(umami.requests)
                log("stage 2 (analytics sync, all websites)")
                umami.reset()
                figures["analytics"] = worker.run("analytics", settings={**self.settings, "users_collection": "users"})
                per_site, other, failed = per_website_requests(umami, traffic.website_ids)
                figures["analytics"]["http"] = {"per_website": per_site, "other": other, "non_2xx": failed,
                                                "page_size": self.page_size}
                if full:
                    figures["limits"] = self.limits(worker, umami, traffic, sizes)
                    figures["baseline"] = self.baseline(worker, traffic, sizes)
        return figures

    def worker(self, dsn: str, umami_url: str, traffic: TrafficSummary) -> Worker:
        """A worker launcher whose children see this scale's servers."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(path) for path in (ROOT, ROOT / "plugins", ROOT / "include",
                                                                  ROOT / "dags")),
            "AIRFLOW_HOME": str(self.folder / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_UMAMI_DB": postgres_connection(dsn),
            "AIRFLOW_CONN_UMAMI_API": api_connection(umami_url),
            "AIRFLOW_CONN_USERS_MONGO": mongo_connection(self.mongo_uri, DATABASE),
        }
        common = {"dsn": dsn, "mongo_uri": self.mongo_uri, "database": DATABASE, "umami_url": umami_url,
                  "username": USERNAME, "password": PASSWORD, "website_ids": list(traffic.website_ids),
                  "start": traffic.start.isoformat(), "end": traffic.end.isoformat()}
        return Worker(self.folder, env, common)

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
        log("limit: bare API paging")
        umami.reset()
        limits["http"] = worker.run("bare_http", page_size=self.page_size)
        return limits

    def baseline(self, worker: Worker, traffic: TrafficSummary, sizes: Sizes) -> Figures:
        """The original tool's approach on the same data, sampled within the budget when slow."""
        self.seed("users_baseline", traffic, sizes)
        budget = self.args.baseline_budget
        log(f"baseline: original session sync (budget {budget:.0f} s)")
        sessions = worker.run("baseline_sessions", collection="users_baseline", budget_seconds=budget)
        log(f"baseline: original analytics sync (budget {budget:.0f} s)")
        analytics = worker.run("baseline_analytics", collection="users_baseline", budget_seconds=budget)
        return {"sessions": sessions, "analytics": analytics}


def summarise(scales: list[Figures]) -> Figures:
    """Derived figures (rates, ratios, memory growth) and the targets, from the raw figures of each scale."""
    main = scales[0]
    sessions, analytics = main["sessions"], main["analytics"]
    session_result = sessions["result"]
    analytics_results = analytics["results"]
    summary: Figures = {
        "sessions": {
            "seconds": sessions["seconds"],
            "rows": session_result["read"],
            "rows_per_second": ratio(session_result["read"], sessions["seconds"]),
            "bulk_writes": session_result["bulk_writes"],
            "http_requests": sessions["http_requests"],
            "rss_peak_mb": sessions["rss_peak_mb"],
        },
        "analytics": {
            "seconds": analytics["seconds"],
            "rows": sum(result["sessions"] for result in analytics_results),
            "rows_per_second": ratio(sum(result["sessions"] for result in analytics_results), analytics["seconds"]),
            "bulk_writes": sum(result["bulk_writes"] for result in analytics_results),
            "http_requests": sum(analytics["http"]["per_website"].values()) + analytics["http"]["other"],
            "retries": sum(result["retries"] for result in analytics_results),
            "rss_peak_mb": analytics["rss_peak_mb"],
        },
    }
    targets: list[Figures] = []
    if "limits" in main:
        summary["limits"] = _limit_ratios(main)
        limit = summary["limits"]
        targets.append(_target("stage 1 <= 1.3x (bare read + bare write)", limit["sessions"]["ratio_to_sum"], 1.3))
        targets.append(_target("stage 1 <= 1.1x the slower of read / write (aim)",
                               limit["sessions"]["ratio_to_slower"], 1.1))
    targets.extend(_request_targets(main))
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
    summary["targets"] = targets
    return summary


def _target(name: str, value: float | None, limit: float) -> Figures:
    return {"name": name, "value": value, "limit": limit, "met": value is not None and value <= limit}


def _limit_ratios(main: Figures) -> Figures:
    limits = main["limits"]
    read, write = limits["read"]["seconds"], limits["sessions_write"]["seconds"]
    http, analytics_write = limits["http"]["seconds"], limits["analytics_write"]["seconds"]
    stage1, stage2 = main["sessions"]["seconds"], main["analytics"]["seconds"]
    return {
        "sessions": {"read_seconds": read, "write_seconds": write, "ratio_to_sum": ratio(stage1, read + write),
                     "ratio_to_slower": ratio(stage1, max(read, write))},
        "analytics": {"read_seconds": http, "write_seconds": analytics_write,
                      "ratio_to_sum": ratio(stage2, http + analytics_write),
                      "ratio_to_slower": ratio(stage2, max(http, analytics_write))},
    }


def _request_targets(main: Figures) -> list[Figures]:
    """Per website (its job's own requests, login included): <= ceil(sessions / page size) + 2; no retries.

    Website discovery (a login and the website list) belongs to planning, not to one website: it is
    reported apart, in ``http.other`` minus the jobs' logins.
    """
    http = main["analytics"]["http"]
    targets = []
    for result in main["analytics"]["results"]:
        allowed = math.ceil(result["sessions"] / http["page_size"]) + 2
        targets.append({"name": f"stage 2 requests, website {result['website_id'][:8]} "
                                f"<= ceil({result['sessions']:,} / {http['page_size']:,}) + 2",
                        "value": result["requests"], "limit": allowed, "met": result["requests"] <= allowed})
    retries = sum(result["retries"] for result in main["analytics"]["results"])
    targets.append({"name": "stage 2 retries (and non-2xx answers) on a healthy server == 0",
                    "value": retries + http["non_2xx"], "limit": 0, "met": retries + http["non_2xx"] == 0})
    return targets


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


def table(report: Figures) -> str:
    """The one table: stage 1 and stage 2 side by side, then the targets."""
    summary, meta = report["summary"], report["meta"]
    main = report["scales"][0]
    s1, s2 = summary["sessions"], summary["analytics"]
    sizes = main["sizes"]
    rows: list[tuple[str, str, str]] = [
        ("wall time (s)", _number(s1["seconds"], 2), _number(s2["seconds"], 2)),
        ("rows per second", _number(s1["rows_per_second"], 0), _number(s2["rows_per_second"], 0)),
        ("rows (identity rows / sessions)", f"{s1['rows']:,}", f"{s2['rows']:,}"),
        ("bulk_write calls", f"{s1['bulk_writes']:,}", f"{s2['bulk_writes']:,}"),
        ("HTTP requests (retries)", f"{s1['http_requests']:,}", f"{s2['http_requests']:,} ({s2['retries']})"),
        ("peak RSS of the worker (MB)", _number(s1["rss_peak_mb"]), _number(s2["rss_peak_mb"])),
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
    width = max(len(row[0]) for row in rows) + 2
    lines = [
        f"umami-mongo-sync bench: {sizes['websites']} website(s), {sizes['sessions']:,} sessions "
        f"({sizes['identified']:,} identified), {sizes['users']:,} users; MongoDB: {meta['mongo']}",
        f"{'':<{width}}{'stage 1: sessions':>22}{'stage 2: analytics':>22}",
    ]
    lines += [f"{label:<{width}}{first:>22}{second:>22}" for label, first, second in rows]
    if "baseline" in summary:
        base = summary["baseline"]
        lines.append(f"{'end to end speedup vs original':<{width}}{_number(base['speedup'], 1, 'x'):>44}")
        if base["extrapolated"]:
            lines.append("* timed on a measured sample and extrapolated: " + "; ".join(base["notes"]))
    lines.append("targets:")
    for target in summary["targets"]:
        value = target["value"]
        shown = _number(value, 2) if isinstance(value, float) else str(value)
        lines.append(f"  [{'met' if target['met'] else 'MISSED'}] {target['name']}: {shown} "
                     f"(limit {target['limit']})")
    return "\n".join(lines)


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
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one scale: checks the bench runs")
    args = parser.parse_args(argv)
    defaults = {"websites": 3, "sessions": 200_000, "identified": 60_000, "users": 100_000, "scales": "1,4",
                "baseline_budget": 60.0}
    for key, value in (SMOKE if args.smoke else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
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
        bench = Bench(args, mongo_uri, folder)
        stack.callback(bench.client.close)
        measured = [bench.scale(scale, base.times(scale), full=index == 0) for index, scale in enumerate(scales)]
        bench.client.drop_database(DATABASE)
    report: Figures = {
        "meta": {"generated_at": datetime.now(UTC).isoformat(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "mongo": shown_uri(args.mongo_uri) if args.mongo_uri
                 else "SecantusDB (local, in memory)", "smoke": args.smoke, "day": DAY.isoformat(),
                 "settings": bench.settings, "baseline_budget_seconds": args.baseline_budget},
        "scales": measured,
    }
    report["summary"] = summarise(measured)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2, default=str))
    temporary.replace(args.out)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
