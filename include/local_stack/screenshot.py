"""Take the README's screenshot of Airflow's grid with the mapped ``analytics_sync`` tasks.

    PYTHONPATH=include:plugins .venv/bin/python -m local_stack.screenshot [--out PNG] [--url URL]

Without ``--url`` it starts the demo's UI mode itself on free ports (the services, a fresh Airflow in
``.local/airflow-screenshot``), triggers the demo day's run, waits for it, takes the picture and stops
everything. With ``--url http://127.0.0.1:8080`` (a running ``bash .ci/demo --ui``) it shows the latest
successful run there instead.

Needs Debian's headless Chromium and its WebDriver (``apt-get install -y chromium chromium-driver``),
driven over the W3C WebDriver protocol with ``requests``: no other package, no browser download. The
login is the demo's (``admin`` / ``admin``), handed to the UI as its ``_token`` cookie (a token from
``POST /auth/token``). Not needed by CI.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from local_stack import demo
from local_stack._proc import free_port, port_open, wait_until
from local_stack.ui import DAG_ID, PASSWORD, USERNAME, AirflowApi

OUT = demo.REPO / "include" / "docs" / "airflow-grid.png"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "chromedriver"
WINDOW = (1440, 760)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}")


class WebDriver:
    """Just enough of a W3C WebDriver client for one screenshot: chromedriver + a fresh Chromium profile."""

    def __init__(self) -> None:
        self.port = free_port()
        self.profile = Path(tempfile.mkdtemp(prefix="umami-chromium-"))
        self._driver: subprocess.Popen[bytes] | None = None
        self._session = ""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = requests.request(method, f"http://127.0.0.1:{self.port}/session{path}", json=body, timeout=60)
        value = reply.json()["value"]
        if not reply.ok:
            raise RuntimeError(f"WebDriver {method} {path}: {value.get('message', value)}")
        return value

    def __enter__(self) -> WebDriver:
        driver = shutil.which(CHROMEDRIVER)
        if driver is None or not Path(CHROMIUM).exists():
            raise SystemExit("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
        self._driver = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), timeout=30, what="chromedriver")
        options = {"binary": CHROMIUM, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]}
        session = self._call("POST", "", {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                                            "goog:chromeOptions": options}}})
        self._session = session["sessionId"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session:
            self._call("DELETE", f"/{self._session}")
        if self._driver is not None:
            self._driver.terminate()
            self._driver.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str) -> None:
        """Load ``url``."""
        self._call("POST", f"/{self._session}/url", {"url": url})

    def set_cookie(self, name: str, value: str) -> None:
        """A cookie for the current page's site."""
        self._call("POST", f"/{self._session}/cookie", {"cookie": {"name": name, "value": value, "path": "/"}})

    def text(self) -> str:
        """The page's visible text."""
        text: str = self._call("POST", f"/{self._session}/execute/sync",
                               {"script": "return document.body ? document.body.innerText : ''", "args": []})
        return text

    def png(self) -> bytes:
        """A screenshot of the window."""
        return base64.b64decode(self._call("GET", f"/{self._session}/screenshot"))


def shoot(url: str, run_id: str, labels: list[str], out: Path) -> None:
    """Log in, open the run's mapped ``analytics_sync`` tasks next to the grid, wait for ``labels``, save."""
    api = AirflowApi(url, USERNAME, PASSWORD)
    token = api.login()
    api.close()
    page = f"{url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/analytics_sync/mapped"
    with WebDriver() as browser:
        browser.open(f"{url}/api/v2/version")  # any page of the site, so the cookie can be set
        browser.set_cookie("_token", token)
        browser.open(page)
        wait_until(lambda: all(label in browser.text() for label in [*labels, "Success", "record_status"]),
                   timeout=60, what=f"the mapped task list ({', '.join(labels)}) at {page}")
        time.sleep(2)  # let the grid's bars finish drawing
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(browser.png())
    print(f"== Saved {out} ({page})")


def latest_success(url: str) -> tuple[str, list[str]]:
    """The newest successful run on a running UI, and its ``analytics_sync`` labels."""
    api = AirflowApi(url, USERNAME, PASSWORD)
    try:
        api.login()
        runs = api.get(f"dags/{DAG_ID}/dagRuns", state="success", order_by="-run_after", limit=1)["dag_runs"]
        if not runs:
            raise SystemExit(f"no successful run of {DAG_ID} at {url} yet: trigger one first")
        run_id: str = runs[0]["dag_run_id"]
        instances = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", task_id="analytics_sync")
        return run_id, [ti["rendered_map_index"] for ti in instances["task_instances"]
                        if ti["task_id"] == "analytics_sync"]
    finally:
        api.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNG goes (default: %(default)s)")
    parser.add_argument("--url", help="a running UI (`bash .ci/demo --ui`) instead of starting one")
    args = parser.parse_args(argv)
    if args.url:
        run_id, labels = latest_success(args.url.rstrip("/"))
        shoot(args.url.rstrip("/"), run_id, labels, args.out)
        return 0
    ports = demo.resolve_ports(demo.Ports(0, 0, 0, 0))
    assert ports.airflow is not None
    with demo.DemoServices(ports, websites=2, sessions=3000, identified=900, users=2000) as services, \
            demo.airflow_ui(services, demo.REPO / ".local" / "airflow-screenshot", ports.airflow) as airflow:
        api = airflow.api()
        try:
            run_id = api.trigger(logical_date=f"{demo.LOGICAL_DATE.isoformat()}T00:00:00Z")
            state = api.wait_for_run(run_id, timeout=300)
        finally:
            api.close()
        if state != "success":
            print(f"the run {run_id} ended {state}; see {airflow.home / 'logs'}", file=sys.stderr)
            return 1
        shoot(airflow.url, run_id, services.website_names, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
