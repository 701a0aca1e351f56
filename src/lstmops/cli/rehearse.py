"""``lstmops rehearse``: months of operation through simulated days, in a world of its own.

See :mod:`lstmops.rehearsal` for what is simulated and :mod:`lstmops.rehearsal.world` for
where a rehearsal writes (``rehearsals/<name>/``: its own database, registry, git + DVC
repository and Prefect tags; the real ones are only read).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from lstmops.cli import PROBLEM_NAMES, _errors, app


def _bad(text: str) -> dict:
    from lstmops.errors import InputError

    problem, at, day = text.partition("@")
    if not at or not problem or not day:
        raise InputError(f"--bad-candidate {text!r}: expected PROBLEM@YYYY-MM-DD")
    return {"problem": problem, "day": day}


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def rehearse(
    first: Annotated[str, typer.Option("--from", help="First simulated day, YYYY-MM-DD.", show_default=False)],
    last: Annotated[str, typer.Option("--to", help="Last simulated day (inclusive).", show_default=False)],
    problems: Annotated[Optional[list[str]], typer.Option(
        "--problems", "-p", help=f"Problems to rehearse (repeat the option; default all): {', '.join(PROBLEM_NAMES)}.",
        show_default=False)] = None,
    approve: Annotated[str, typer.Option(help="auto: approve every proposal (and act on rollback findings); "
                                              "never: leave proposals to expire.")] = "auto",
    sizes: Annotated[str, typer.Option(help="A preset of rehearsal.yaml: quick (12 weeks of six problems in < 30 min), "
                                            "small (the decision benchmark's sizes), default (params.yaml as is).")] = "quick",
    name: Annotated[Optional[str], typer.Option(help="Folder under rehearsals/ (default: FROM_TO_SIZES).")] = None,
    bad_candidate: Annotated[Optional[list[str]], typer.Option(
        "--bad-candidate", help="PROBLEM@DAY: deploy a deliberately bad model that day (rehearses the rollback).",
        show_default=False)] = None,
    workers: Annotated[int, typer.Option(help="Processes the problems are spread over.")] = 2,
    replace: Annotated[bool, typer.Option("--replace", help="Start an existing rehearsal of this name over.")] = False,
) -> None:
    """Replay the operating loop (traffic, monitoring, updates, approvals, rollbacks) through simulated days.

    Writes only to rehearsals/NAME/ and ends with its stakeholder report and a table of decisions.
    """
    import signal

    signal.signal(signal.SIGTERM, _interrupted)  # a killed rehearsal stops its workers too
    with _errors("rehearse"):
        from lstmops import paths
        from lstmops.config import load_settings
        from lstmops.rehearsal.run import rehearse as run, summary_lines
        from lstmops.rehearsal.world import Plan

        source = paths.repo_root()
        chosen = list(problems or load_settings(paths.params_file(source)).problems)
        plan = Plan(name or f"{first}_{last}_{sizes}", first, last, chosen, approve, sizes,
                    [_bad(b) for b in bad_candidate or []], workers)
        result = run(plan, source, replace=replace, echo=typer.echo)
        typer.echo("\n".join(summary_lines(result["plan"])))
        typer.echo(f"report: {result['report']}\ndecisions: {result['decisions']}\n"
                   f"rehearsed {len(result['plan'].days)} day(s) of {len(chosen)} problem(s) in "
                   f"{result['seconds'] / 60:.1f} min")
