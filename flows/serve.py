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
    """``prefect server start`` on 127.0.0.1:``port`` (state in ``.prefect/``); returns once it answers."""
    from lstmops.update.orchestration import start_server as start

    home = ROOT / ".prefect"
    try:
        return start(port, home, home / "server.log", timeout_s)
    except RuntimeError as err:
        raise SystemExit(f"serve: error: {err}") from None


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
