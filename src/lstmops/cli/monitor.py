"""``lstmops monitor check|traffic|status|ui``: drift and skill per interval, simulated traffic, the Evidently UI.

``check`` runs the same interval checks as the daily flow (``flows/monitor.py``) for one
day or week, saves the Evidently snapshot into the workspace and its page beside it, and
prints what was found in words. ``traffic`` plays simulated days (requests from the
drifting process, outcomes a day later) for trying monitoring out. ``status`` shows the
latest record per problem. ``ui`` serves the workspace with ``evidently ui`` on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from typing import Annotated, Any, Optional

import typer

from lstmops.cli import JsonOpt, _errors, _print_json, _problem, _registry, _store, _table, app
from lstmops.errors import InputError

monitor_app = typer.Typer(help="Monitoring: drift and skill per day and week, the Evidently workspace and UI.",
                          no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")

ProblemOpt = Annotated[Optional[str], typer.Argument(help="One problem (default: all).", show_default=False)]
DayOpt = Annotated[str, typer.Option(help="The day (YYYY-MM-DD) to check or play; for a week, any day in it.")]


def _settings() -> Any:
    from lstmops import paths
    from lstmops.config import load_settings

    return load_settings(paths.params_file())


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _problems(settings: Any, problem: str | None) -> list[str]:
    return [_problem(problem)] if problem else list(settings.problems)


@monitor_app.command("check")
def check(ctx: typer.Context, problem: ProblemOpt = None, day: DayOpt = ..., interval: Annotated[
        str, typer.Option(help="day or week (Monday to Sunday).")] = "day", json_out: JsonOpt = False) -> None:
    """Check one interval: drift of inputs, predictions and outcomes, skill against the reference."""
    with _errors("monitor check"):
        from lstmops import paths
        from lstmops.monitoring import engine
        from lstmops.monitoring.checks import INTERVALS, check_interval

        if interval not in INTERVALS:
            raise InputError(f"--interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
        settings, when = _settings(), _day(day)
        names = _problems(settings, problem)
        registry, store = _registry(ctx), _store(ctx)
        workspace = engine.open_workspace(paths.workspace_dir())
        found = [check_interval(settings, name, interval, when, store=store, registry=registry,
                                workspace=workspace).to_dict() for name in names]
        if json_out:
            _print_json(found)
            return
        for record in found:
            flag = "ALARM" if record["flagged"] else "ok"
            typer.echo(f"{record['problem']} {interval} {record['period']}: {flag} ({record['kind']}) — "
                       f"{record['words']}")
            if record.get("page"):
                typer.echo(f"  Evidently page: {record['page']}")


@monitor_app.command("traffic")
def traffic(ctx: typer.Context, problem: ProblemOpt = None, day: DayOpt = ..., to: Annotated[
        Optional[str], typer.Option(help="Play every day up to this one (YYYY-MM-DD).")] = None) -> None:
    """Play simulated traffic: each day's requests from the drifting process, outcomes a day later."""
    with _errors("monitor traffic"):
        from lstmops.monitoring.traffic import simulate_day

        settings, first = _settings(), _day(day)
        last = _day(to) if to else first
        if last < first:
            raise InputError(f"--to {last} is before --day {first}")
        registry, store = _registry(ctx), _store(ctx)
        for name in _problems(settings, problem):
            played = [simulate_day(settings, name, first + timedelta(days=i), registry=registry, store=store)
                      for i in range((last - first).days + 1)]
            typer.echo(f"{name}: {len(played)} days, {sum(p.predicted for p in played)} predictions, "
                       f"{sum(p.observed for p in played)} observations")


@monitor_app.command("status")
def status(problem: ProblemOpt = None, interval: Annotated[str, typer.Option(help="day or week.")] = "day",
           json_out: JsonOpt = False) -> None:
    """The latest check of each problem, in words."""
    with _errors("monitor status"):
        from lstmops.monitoring.checks import INTERVALS, load_checks

        if interval not in INTERVALS:
            raise InputError(f"--interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
        settings = _settings()
        latest = []
        for name in _problems(settings, problem):
            records = load_checks(name, interval)
            if records:
                latest.append(records[-1])
        if json_out:
            _print_json(latest)
            return
        if not latest:
            typer.echo("no monitoring records yet (lstmops monitor check, or the daily flow: make monitor)")
            return
        _table([{"problem": r["problem"], "period": r["period"], "alarm": "yes" if r["flagged"] else "no",
                 "kind": r["kind"], "predictions": r["predictions"], "observed": r["observed"]} for r in latest],
               ["problem", "period", "alarm", "kind", "predictions", "observed"])


@monitor_app.command("ui")
def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000) -> None:
    """Serve the Evidently workspace (monitoring/workspace) with ``evidently ui`` on 127.0.0.1 until Ctrl-C."""
    with _errors("monitor ui"):
        from lstmops import paths

        workspace = paths.workspace_dir()
        if not workspace.is_dir():
            raise InputError(f"no Evidently workspace at {workspace} yet (run lstmops monitor check or make monitor)")
        typer.echo(f"Evidently UI: http://127.0.0.1:{port} (projects lstmops/<problem>; Ctrl-C stops it)")
        command = [os.path.join(os.path.dirname(sys.executable), "evidently"), "ui", "--workspace", str(workspace),
                   "--host", "127.0.0.1", "--port", str(port)]
        try:
            raise typer.Exit(subprocess.call(command))
        except KeyboardInterrupt:
            raise typer.Exit(0) from None
