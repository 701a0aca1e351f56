"""``lstmops report [PROBLEM]``: write the stakeholder report and print where its index is.

The pages (:mod:`lstmops.monitoring.report`) are self-contained HTML files under
``monitoring/reports/``: open the printed ``index.html`` in any browser, offline.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstmops.cli import PROBLEM_NAMES, _errors, _problem, _registry, _store, app


@app.command()
def report(ctx: typer.Context,
           problem: Annotated[Optional[str], typer.Argument(
               help=f"Rebuild the pages of one problem only (default: all). One of: {', '.join(PROBLEM_NAMES)}.",
               show_default=False)] = None) -> None:
    """Write the stakeholder report (one HTML page per update run, and an index) and print the index's path."""
    with _errors("report"):
        from lstmops import paths
        from lstmops.config import load_settings
        from lstmops.monitoring.report import build_report

        chosen = [_problem(problem)] if problem else None
        settings = load_settings(paths.params_file())
        index = build_report(settings, registry=_registry(ctx), store=_store(ctx), problems=chosen)
        typer.echo(str(index))
