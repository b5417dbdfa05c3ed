"""``python -m local_stack.demo``: run the whole DAG end to end on throwaway local services.

It starts a PostgreSQL cluster with Umami's schema and a generated day of traffic, a MongoDB wire
server with the application's users, and the local Umami API, on the ports that
``airflow_settings.yaml`` names. It loads that file into a fresh Airflow home (``.local/airflow``),
runs ``airflow dags test umami_mongo_sync``, and prints what changed in MongoDB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pymongo

from local_stack.mongo import LocalMongo
from local_stack.postgres import LocalPostgres, load_umami_schema
from local_stack.traffic import generate_traffic, seed_users
from local_stack.umami_api import FakeUmami

REPO = Path(__file__).resolve().parents[2]
DEMO_DAY = date(2026, 11, 27)
PG_PORT, MONGO_PORT, UMAMI_PORT = 54329, 27018, 30001  # as in airflow_settings.yaml
DATABASE = "app"


def airflow_environment(home: Path) -> dict[str, str]:
    """Environment of the ``airflow`` commands: a private home, this repo's DAGs and plugins."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    })
    return env


def snapshot(users: pymongo.collection.Collection[dict[str, Any]]) -> dict[str, int]:
    """How many users carry what the sync writes."""
    return {
        "users": users.count_documents({}),
        "with session_id": users.count_documents({"session_id": {"$exists": True}}),
        "with umamiAnalytics": users.count_documents({"umamiAnalytics": {"$exists": True}}),
        "deleted (never touched)": users.count_documents({"isDeleted": True}),
    }


def report(before: dict[str, int], client: pymongo.MongoClient[dict[str, Any]]) -> None:
    """Print the counts before and after, one enriched user, and the status document."""
    users = client[DATABASE]["users"]
    after = snapshot(users)
    print("\n== What changed in MongoDB")
    print(f"{'':28}{'before':>10}{'after':>10}")
    for name, count in after.items():
        print(f"{name:28}{before[name]:>10}{count:>10}")
    sample = users.find_one({"umamiAnalytics": {"$exists": True}},
                            {"email": 1, "session_id": 1, "umamiSessions": {"$slice": 2}, "umamiAnalytics": 1})
    print("\n== One enriched user")
    print(json.dumps(sample, indent=2, default=str))
    print("\n== SystemConfig (systemconfigs, _id 'global')")
    print(json.dumps(client[DATABASE]["systemconfigs"].find_one({"_id": "global"}), indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    """Set everything up, run the DAG once, report. Returns the exit code of ``airflow dags test``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--websites", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--identified", type=int, default=900)
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args(argv)

    home = REPO / ".local" / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = airflow_environment(home)
    airflow = [sys.executable, "-m", "airflow"]
    with LocalPostgres(port=PG_PORT) as postgres, LocalMongo(port=MONGO_PORT) as mongo:
        load_umami_schema(postgres.dsn)
        traffic = generate_traffic(postgres.dsn, day=DEMO_DAY, websites=args.websites, sessions=args.sessions,
                                   identified=args.identified)
        seed_users(mongo.uri, DATABASE, "users", identities=traffic.identity_emails(), total=args.users)
        print(f"== Umami: {args.sessions} sessions on {args.websites} websites on {DEMO_DAY}, "
              f"{args.identified} identified; MongoDB: {args.users} users")
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo.uri)
        before = snapshot(client[DATABASE]["users"])
        with FakeUmami(postgres.dsn, port=UMAMI_PORT):
            subprocess.run([*airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, str(REPO / "include" / "load_airflow_settings.py"),
                            str(REPO / "airflow_settings.yaml")], env=env, check=True)
            logical_date = (DEMO_DAY + timedelta(days=1)).isoformat()  # a manual run syncs the day before
            print(f"== airflow dags test umami_mongo_sync {logical_date}")
            code = subprocess.run([*airflow, "dags", "test", "umami_mongo_sync", logical_date], env=env,
                                  check=False).returncode
        report(before, client)
        client.close()
    print(f"\n== airflow dags test exited with {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
