"""Live progress of repeated training runs on a terminal; quiet in logs and CI.

On an interactive terminal (stderr is a TTY) a ``rich`` progress bar shows the epochs
done, how many replicas have stopped, the current mean training and validation loss,
and the time left. Anywhere else (DVC writing to a log, CI, a Prefect worker) nothing is
drawn; the caller prints one summary line per finished run instead.
"""

from __future__ import annotations

import sys
from typing import Any


class RunProgress:
    """A progress display for one batch of repeated runs, used as a context manager.

    Args:
        title: what is being trained, e.g. ``evaluate echo: 10 runs``.
        epochs: the most epochs a run may take.
        enabled: draw the bar (default: when stderr is a terminal).
    """

    def __init__(self, title: str, epochs: int, enabled: bool | None = None):
        self.title, self.epochs = title, epochs
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "RunProgress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("epochs  {task.fields[status]}"), TimeElapsedColumn(),
                                 TextColumn("left"), TimeRemainingColumn(),
                                 console=Console(file=sys.stderr), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.epochs, status="")
        return self

    def __call__(self, step: Any) -> None:
        """Take one :class:`lstmops.modeling.replicas.ReplicaProgress` (after each epoch)."""
        if self._bar is None:
            return
        val = "" if step.mean_val_loss is None else f" val {step.mean_val_loss:.4g}"
        status = f"stopped {step.done}/{step.replicas}  loss {step.mean_loss:.4g}{val}"
        total = step.epoch if step.done == step.replicas else self.epochs  # all stopped early: the bar is full
        self._bar.update(self._task, completed=step.epoch, total=total, status=status)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
