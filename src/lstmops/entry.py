"""Shared edge behaviour for stages and scripts: clear one-line errors for what a user can fix."""

from __future__ import annotations

import sys
from typing import Callable

from lstmops.errors import LstmopsError, StageError

__all__ = ["StageError", "run_main"]


def run_main(main: Callable[[], None], name: str) -> None:
    """Run ``main``; a :class:`LstmopsError` prints ``name: error: message`` and exits 2.

    Anything else is an internal bug: it propagates with its traceback (exit 1).
    """
    try:
        main()
    except LstmopsError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
