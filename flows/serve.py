"""Serve the scheduled update deployments on a running Prefect server (``make serve``).

One deployment per problem, ``lstmops-update/<problem>``, on the cron of
``update.schedule`` (UTC), each waiting for approval when it finds a candidate. Needs
``PREFECT_API_URL`` pointing at a Prefect server (``prefect server start``); runs until
interrupted, starting each scheduled run in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path


def deployments() -> list:
    """A deployment per problem in ``params.yaml``, with the schedule and parameters from it."""
    from prefect.client.schemas.schedules import CronSchedule

    from lstmops import paths
    from lstmops.config import load_settings
    from update import update

    settings = load_settings(paths.params_file())
    schedule = CronSchedule(cron=settings.update.schedule, timezone="UTC")
    return [update.to_deployment(name=problem, schedules=[schedule], parameters={"problem": problem},
                                 tags=["lstmops", "update", problem],
                                 description=f"Weekly update of {problem}: collect, assess, develop, compare, "
                                             "propose, wait for approval.")
            for problem in settings.problems]


def main() -> None:
    """Serve every problem's deployment until interrupted."""
    from prefect import serve

    serve(*deployments())


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
