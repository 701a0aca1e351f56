"""Raw input rows drawn from a problem's (drifting) process, in the format ``predict`` reads."""

from __future__ import annotations

import secrets
from datetime import date

import pandas as pd

from lstmops.config import Settings, problem_settings
from lstmops.data.drift import fully_applied, generate_at
from lstmops.errors import InputError
from lstmops.problems import get_problem, is_generative
from lstmops.seeding import rng_for


def parse_date(text: str | None) -> date:
    """A ``YYYY-MM-DD`` date (today when None), or a one-line :class:`InputError`."""
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of {text!r} is not a date (YYYY-MM-DD)") from None


def sample_rows(settings: Settings, problem: str, n: int, seed: int | None = None, as_of: date | None = None,
                with_targets: bool = False) -> tuple[pd.DataFrame, str | None]:
    """``n`` rows: an ``id``, the input columns and, if asked, the true target columns.

    Returns the rows and a note for the user (or None). The same seed gives the same
    rows and ids; without one, a fresh seed is drawn.
    """
    cfg = problem_settings(settings, problem)
    module = get_problem(problem)
    seed = secrets.randbits(31) if seed is None else seed
    when = as_of or date.today()
    table = generate_at(module, cfg.process, cfg.drift, n, rng_for(seed, problem, "sample"), when)
    ids = [f"{v:016x}" for v in rng_for(seed, problem, "sample-ids").integers(0, 2**63 - 1, n)]
    note = None
    if is_generative(problem):
        columns = []
        if with_targets:
            note = f"{problem}: a drawing has no true target; writing ids only"
    else:
        params = fully_applied(cfg.process, cfg.drift, when)  # a drifted shape shows in the columns
        columns = module.input_columns(params) + (module.target_columns(params) if with_targets else [])
    return pd.concat([pd.DataFrame({"id": ids}), table[columns]], axis=1), note
