"""Shared edge behaviour for stages and scripts: the per-problem preamble, and clear
one-line errors for what a user can fix."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lstmops import paths
from lstmops.config import ProblemSettings, Settings, load_settings, problem_settings
from lstmops.errors import LstmopsError, StageError

__all__ = ["StageContext", "StageError", "problem_arg", "run_main", "stage_args"]


@dataclass(frozen=True)
class StageContext:
    """What every per-problem stage starts from: the problem, all settings, its own, the root."""

    problem: str
    settings: Settings
    cfg: ProblemSettings
    root: Path


def problem_arg(description: str | None, argv: list[str] | None = None) -> str:
    """Parse the one positional argument of a per-problem stage: the problem's name."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("problem")
    return parser.parse_args(argv).problem


def stage_args(description: str | None, argv: list[str] | None = None) -> StageContext:
    """Parse the problem argument and load params.yaml (a one-line error for an unknown problem)."""
    problem = problem_arg(description, argv)
    settings = load_settings(paths.params_file())
    return StageContext(problem, settings, problem_settings(settings, problem), paths.repo_root())


def run_main(main: Callable[[], None], name: str) -> None:
    """Run ``main``; a :class:`LstmopsError` prints ``name: error: message`` and exits 2.

    Anything else is an internal bug: it propagates with its traceback (exit 1).
    """
    try:
        main()
    except LstmopsError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
