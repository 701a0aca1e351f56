"""Shared edge behaviour for stages and scripts: clear one-line errors, no tracebacks."""

from __future__ import annotations

import sys
from typing import Callable

from lstmops.config import ConfigError


class StageError(RuntimeError):
    """A stage cannot go on; the message is shown to the user as one line."""


def run_main(main: Callable[[], None], name: str) -> None:
    """Run ``main``; known failures print ``name: error: message`` and exit non-zero."""
    try:
        main()
    except (ConfigError, StageError, KeyError, ValueError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(2)
