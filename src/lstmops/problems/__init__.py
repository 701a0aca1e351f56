"""The six reference problems, discoverable by name.

Each module in this package is one data-generating process and exposes the same
members, so stages, flows, the CLI and tests can loop over ``PROBLEMS``:

- ``Params``: a frozen pydantic model of the process parameters (defaults = the
  reference settings of PROBLEMS.md), with validators for impossible values;
- ``generate(params, n, rng) -> pd.DataFrame``: vectorised NumPy generator, one row
  per sequence, inputs and targets in plain readable columns;
- ``input_columns(params)`` / ``target_columns(params)``: which columns feed the
  model and which are the truth it must predict;
- ``contract(params) -> Contract``: the data contract checked by the validate stage.
"""

from __future__ import annotations

from types import ModuleType

from lstmops.errors import InputError
from lstmops.problems.contract import Contract
from lstmops.problems import addition, cumulative_sum, damped_sine, echo, moving_square, rectangles

PROBLEMS: dict[str, ModuleType] = {
    "echo": echo,
    "damped_sine": damped_sine,
    "moving_square": moving_square,
    "addition": addition,
    "cumulative_sum": cumulative_sum,
    "rectangles": rectangles,
}


class UnknownProblem(InputError, KeyError):
    """No problem of that name: an :class:`InputError` that ``except KeyError`` still catches."""

    def __str__(self) -> str:  # the plain message, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


def get_problem(name: str) -> ModuleType:
    """The module of a problem, or a one-line :class:`UnknownProblem` naming the known ones."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise UnknownProblem(f"unknown problem {name!r} (known: {', '.join(PROBLEMS)})") from None
