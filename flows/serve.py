"""Serve the scheduled update deployments (``make serve``), with a local Prefect server if none is set.

One deployment per problem, ``lstmops-update/<problem>``, on the cron of
``update.schedule`` (UTC), and ``lstmops-monitor/daily`` on ``monitoring.schedule``, which
starts an update deployment when monitoring raises an alarm; a run that finds a candidate pauses for approval (Resume in the
UI, or ``lstmops approve``). With ``PREFECT_API_URL`` set, this serves against that
server; without it, it starts ``prefect server start`` on 127.0.0.1 (state in
``.prefect/``), waits until it is healthy, and stops it again on exit (Ctrl-C).

    python flows/serve.py [--port 4200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def deployments() -> list:
    """A deployment per problem in ``params.yaml`` plus the daily monitoring, with schedules from it."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows.monitor import monitor
    from flows.update import update
    from lstmops import paths
    from lstmops.config import load_settings

    settings = load_settings(paths.params_file())
    schedule = CronSchedule(cron=settings.update.schedule, timezone="UTC")
    daily = monitor.to_deployment(name="daily", schedules=[CronSchedule(cron=settings.monitoring.schedule,
                                                                        timezone="UTC")],
                                  tags=["lstmops", "monitoring"],
                                  description="Daily monitoring of every problem (yesterday, UTC): Evidently "
                                              "snapshots, alarms as events, triggered updates, the report.")
    return [daily] + [update.to_deployment(name=problem, schedules=[schedule], parameters={"problem": problem},
                                 tags=["lstmops", "update", problem],
                                 description=f"Scheduled update of {problem}: collect, assess, develop, compare, "
                                             "propose, wait for approval.")
            for problem in settings.problems]


def start_server(port: int, timeout_s: float = 60) -> subprocess.Popen:
    """``prefect server start`` on 127.0.0.1:``port``; returns once ``/api/health`` answers."""
    home = ROOT / ".prefect"
    home.mkdir(exist_ok=True)
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(home / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"serve: error: prefect server stopped at start; see {home / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"serve: error: prefect server did not answer within {timeout_s:.0f} s")


def main() -> None:
    """Serve every problem's deployment until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args()
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        server = start_server(args.port)
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{args.port}/api"
    print(f"Prefect UI: {os.environ['PREFECT_API_URL'].removesuffix('/api')}  (deployments: lstmops-update/*, lstmops-monitor/daily)")
    from prefect import serve

    try:
        serve(*deployments())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the repository root, for `flows.update`
    main()
