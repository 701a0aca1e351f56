"""Generate a problem's data as its process stands on a given date.

A drift schedule (``problems.<name>.drift`` in params.yaml) is a list of steps applied
in order. A sudden step changes every sequence from its start date; a gradual step
changes a share of sequences that rises linearly between its start and end dates, so a
batch drawn mid-way mixes the old and the new process, as real gradual drift does.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel

from lstmops.config import DriftStep


def params_at(base: BaseModel, schedule: Sequence[DriftStep], applied: Sequence[bool]) -> BaseModel:
    """The process parameters once the steps flagged in ``applied`` have taken effect."""
    values = base.model_dump()
    for step, on in zip(schedule, applied):
        if on:
            values.update(step.set)
    return type(base).model_validate(values)


def fully_applied(base: BaseModel, schedule: Sequence[DriftStep], as_of: date) -> BaseModel:
    """Parameters of the process that every sequence follows once gradual steps end."""
    return params_at(base, schedule, [step.share(as_of) > 0 for step in schedule])


def generate_at(
    problem, base: BaseModel, schedule: Sequence[DriftStep], n: int, rng: np.random.Generator, as_of: date
) -> pd.DataFrame:
    """Draw ``n`` sequences from ``problem`` as its drifting process stands on ``as_of``.

    Args:
        problem: a module from :data:`lstmops.problems.PROBLEMS`.
        base: the process parameters before any drift.
        schedule: drift steps, applied in order.
        n: number of sequences.
        rng: the only source of randomness.
        as_of: the date the data is drawn at.
    """
    shares = [step.share(as_of) for step in schedule]
    if not schedule or all(s in (0.0, 1.0) for s in shares):
        return problem.generate(params_at(base, schedule, [s == 1.0 for s in shares]), n, rng)
    flags = np.stack([rng.random(n) < s for s in shares], axis=1)
    combos, group = np.unique(flags, axis=0, return_inverse=True)
    parts = []
    for g, combo in enumerate(combos):
        rows = np.flatnonzero(group == g)
        part = problem.generate(params_at(base, schedule, combo.tolist()), len(rows), rng)
        parts.append(part.set_index(pd.Index(rows)))
    return pd.concat(parts).sort_index().reset_index(drop=True)
