"""Simulated daily traffic: requests drawn from the drifting process, served, and observed a little later.

Real users send requests with ``lstmops predict`` and report outcomes with ``lstmops
observe``; to watch monitoring work before there are users (and in the rehearsal and the
benchmark), ``simulate_day`` plays one day of that: ``monitoring.traffic.requests``
sequences drawn from the process as it stands on that day (a seeded stream per problem
and day, so a re-run draws the same rows), predicted by the champion through the serving
path (the previous model in shadow while ``monitoring.shadow_days`` allow), logged at
noon of that day; and the true outcomes of the requests of ``observation_lag_days``
earlier, observed now. A generative problem (rectangles) has no inputs or outcomes: the
champion draws that many shapes, and :func:`world_sample` gives the shapes the process
makes on a day (the "world" its drawings are compared with).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd

from lstmops.config import Settings, problem_settings
from lstmops.seeding import int_seed_for, rng_for

REQUEST_HOUR = 12  # simulated requests are logged at noon of their day


@dataclass(frozen=True)
class TrafficDay:
    """What one simulated day did for one problem."""

    problem: str
    day: str
    champion_version: int
    predicted: int   # predictions logged now (0 when a re-run finds them logged)
    observed: int    # observations of earlier requests recorded now


def request_ids(problem: str, day: date, n: int) -> list[str]:
    """Ids of a day's simulated requests, e.g. ``2027-01-18-echo-q000012``."""
    return [f"{day.isoformat()}-{problem}-q{i:06d}" for i in range(n)]


def requests(settings: Settings, problem: str, day: date) -> pd.DataFrame:
    """The day's requests with their true outcomes, drawn from the process as it stands on ``day``."""
    from lstmops.data.drift import generate_at
    from lstmops.problems import get_problem

    cfg = problem_settings(settings, problem)
    n = settings.monitoring.traffic.requests
    table = generate_at(get_problem(problem), cfg.process, cfg.drift, n, rng_for(settings.seed, problem, "traffic",
                                                                                 day.isoformat()), day)
    return table.assign(id=request_ids(problem, day, n))


def world_sample(settings: Settings, problem: str, day: date, n: int) -> pd.DataFrame:
    """``n`` sequences the process makes on ``day`` (for a generative problem: the shapes it now makes)."""
    from lstmops.data.drift import generate_at
    from lstmops.problems import get_problem

    cfg = problem_settings(settings, problem)
    return generate_at(get_problem(problem), cfg.process, cfg.drift, n,
                       rng_for(settings.seed, problem, "world", day.isoformat()), day)


def simulate_day(settings: Settings, problem: str, day: date, *, registry, store) -> TrafficDay:
    """Serve ``day``'s requests and observe the outcomes of those of ``observation_lag_days`` earlier."""
    from lstmops.problems import get_problem, is_generative
    from lstmops.serving.inputs import version_params
    from lstmops.serving.predict import observe, open_version, predict

    served = open_version(registry, problem, "champion")
    when = datetime.combine(day, time(REQUEST_HOUR))
    n = settings.monitoring.traffic.requests
    shadow_days = settings.monitoring.shadow_days
    ids = request_ids(problem, day, n)
    predicted = observed = 0
    if not store.known_ids(problem, ids):
        if is_generative(problem):
            predict(problem, pd.DataFrame({"id": ids}), registry, store, seed=int_seed_for(
                settings.seed, problem, "traffic-draw", day.isoformat()), shadow_days=shadow_days, at=when)
        else:
            table = requests(settings, problem, day)
            columns = ["id", *get_problem(problem).input_columns(served.preparer.params)]
            predict(problem, table[columns], registry, store, shadow_days=shadow_days, at=when)
        predicted = n
    lag = settings.monitoring.traffic.observation_lag_days
    asked = day - timedelta(days=lag)
    if not is_generative(problem):
        earlier = requests(settings, problem, asked)
        logged = store.known_ids(problem, earlier["id"].tolist())
        pending = earlier[earlier["id"].isin(logged)
                          & ~earlier["id"].isin(store.observed_ids(problem, earlier["id"].tolist()))]
        if not pending.empty:
            targets = get_problem(problem).target_columns(version_params(registry.resolve(problem, "champion")))
            rows = pending[["id", *targets]].assign(observed_at=datetime.combine(day, time(REQUEST_HOUR)).isoformat())
            observed = observe(problem, rows.reset_index(drop=True), registry, store)
    return TrafficDay(problem, day.isoformat(), served.version.version, predicted, observed)
