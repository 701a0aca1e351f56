"""``lstmops``: the command line of the registered models.

Commands: ``problems``, ``sample``, ``predict``, ``observe``, ``skill``, ``models
list|show|rollback``, ``proposals list``, ``approve``, ``reject`` (:mod:`lstmops.cli.proposals`),
``monitor check|traffic|status|ui`` (:mod:`lstmops.cli.monitor`) and ``report``, the stakeholder
pages (:mod:`lstmops.cli.report`);
``--help`` on each, ``--json`` for scripts. Every failure the user can cause (an
:class:`lstmops.errors.LstmopsError`, or a database that cannot be reached) prints one
line, ``lstmops COMMAND: error: ...``, and exits with status 2; anything else is a bug
and keeps its traceback (exit 1).
Heavy libraries (Keras, JAX, pandas, scikit-learn) load inside the commands that need
them, so ``lstmops --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lstmops.errors import DatabaseError, InputError, LstmopsError
from lstmops.problems import problem_names, problem_tasks

# Discovered from the modules of lstmops/problems by reading their source, so that
# --help and name checks import nothing heavy.
PROBLEM_NAMES = problem_names()
TASKS = problem_tasks()

app = typer.Typer(help="Registered LSTM models: sample raw inputs, predict, record true outcomes, track skill.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
models_app = typer.Typer(help="Registered model versions: list, show, roll back, export.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ProblemArg = Annotated[str, typer.Argument(help=f"One of: {', '.join(PROBLEM_NAMES)}.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _user_error(err: BaseException) -> LstmopsError | None:
    """The error as the user should see it, or None for a bug (which keeps its traceback).

    A database that cannot be reached or read (SQLAlchemy's ``OperationalError``: no server,
    locked, unreadable file; or its plain ``DatabaseError``: not a database, corrupt) is the
    user's environment, so it becomes a :class:`DatabaseError`. Its other errors (integrity,
    programming) are bugs.
    """
    if isinstance(err, LstmopsError):
        return err
    if "sqlalchemy" in sys.modules:
        from sqlalchemy import exc

        if isinstance(err, exc.OperationalError) or type(err) is exc.DatabaseError:
            detail = (str(err.orig).strip() if err.orig is not None else str(err)) or type(err).__name__
            return DatabaseError(f"the database cannot be used: {detail}")
    return None


@contextmanager
def _errors(command: str) -> Iterator[None]:
    """Print a user's error as ``lstmops COMMAND: error: <one line>`` and exit 2; let bugs propagate."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - only user errors are caught; the rest is re-raised
        shown = _user_error(err)
        if shown is None:
            raise
        first = (str(shown).strip().splitlines() or [type(shown).__name__])[0]
        typer.echo(f"lstmops {command}: error: {first}", err=True)
        raise typer.Exit(2) from None


def _problem(name: str) -> str:
    if name not in PROBLEM_NAMES:
        raise InputError(f"unknown problem {name!r} (known: {', '.join(PROBLEM_NAMES)})")
    return name


def _db(ctx: typer.Context) -> str | None:
    return (ctx.obj or {}).get("db")


def _registry(ctx: typer.Context) -> Any:
    from lstmops.registry.versions import Registry

    return Registry(_db(ctx), store=(ctx.obj or {}).get("model_store"))


def _store(ctx: typer.Context) -> Any:
    from lstmops.store.records import Store

    return Store(_db(ctx))


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=1, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as aligned plain-text columns."""
    cells = [[str(c) for c in columns]] + [["-" if r.get(c) is None else _cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        typer.echo("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"lstmops {version('lstmops')}")
        raise typer.Exit()


@app.callback()
def _options(ctx: typer.Context,
             db: Annotated[Optional[str], typer.Option(
                 "--db", envvar="LSTMOPS_DB_URL", show_envvar=True,
                 help="Database URL of the registry and the prediction store "
                      "(default: sqlite:///<repo>/registry/lstmops.db).")] = None,
             model_store: Annotated[Optional[str], typer.Option(
                 "--model-store", envvar="LSTMOPS_MODEL_STORE", show_envvar=True,
                 help="s3://bucket/prefix holding every version's files, for registries shared between "
                      "machines (endpoint and credentials: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).")] = None,
             version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="Show the version and exit.")] = False) -> None:
    """Registered LSTM models: sample raw inputs, predict, record true outcomes, track skill."""
    ctx.obj = {"db": db, "model_store": model_store or None}


def _architectures() -> dict[str, str]:
    """``problems.<p>.architecture`` from params.yaml, when there is one (read without full validation)."""
    import yaml

    from lstmops import paths

    try:
        raw = yaml.safe_load(paths.params_file().read_text(encoding="utf-8")) or {}
        return {name: spec.get("architecture") for name, spec in (raw.get("problems") or {}).items()}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


@app.command()
def problems(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Every problem: task, architecture, champion and previous versions."""
    with _errors("problems"):
        registry = _registry(ctx)
        configured = _architectures()
        rows = []
        for name in PROBLEM_NAMES:
            versions = registry.versions(name)
            aliases = {a: v.version for v in versions for a in v.aliases}
            champion = next((v for v in versions if "champion" in v.aliases), None)
            architecture = configured.get(name) or (champion.architecture if champion else None)
            rows.append({"problem": name, "architecture": architecture, "champion": aliases.get("champion"),
                         "previous": aliases.get("previous"), "versions": len(versions), "task": TASKS[name]})
        if json_out:
            _print_json(rows)
        else:
            _table(rows, ["problem", "architecture", "champion", "previous", "versions", "task"])


@app.command()
def sample(
    problem: ProblemArg,
    n: Annotated[int, typer.Option("-n", "--rows", min=1, help="Number of rows.", show_default=False)],
    seed: Annotated[Optional[int], typer.Option(help="Random seed (same seed, same rows).")] = None,
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Draw from the process as it stands on this date (YYYY-MM-DD; drift applies) "
                        "(default: today).")] = None,
    with_targets: Annotated[bool, typer.Option(
        "--with-targets", help="Add the true target columns (for `lstmops observe`).")] = False,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write here (.csv or .jsonl) "
                                                   "instead of standard output.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv or jsonl (default: from -o, else csv).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Rows as JSON lines on standard output; with -o, a "
                                           "JSON summary of what was written where.")] = False,
) -> None:
    """Raw input rows drawn from a problem's process, in the input format `predict` reads."""
    with _errors("sample"):
        _problem(problem)
        if json_out and output is None and fmt not in (None, "jsonl"):
            raise InputError(f"--json writes JSON lines; it cannot be combined with --format {fmt}")
        if output is not None:
            from lstmops.serving.rawio import check_writable

            check_writable(output)
        from lstmops import paths
        from lstmops.config import load_settings
        from lstmops.data.sampling import parse_date, sample_rows
        from lstmops.serving.rawio import format_of, write_rows

        settings = load_settings(paths.params_file())
        rows, note = sample_rows(settings, problem, n, seed, parse_date(as_of), with_targets)
        fmt = "jsonl" if json_out and output is None else fmt
        write_rows(rows, output, fmt)
        if json_out and output is not None:
            _print_json({"problem": problem, "rows": len(rows), "columns": [str(c) for c in rows.columns],
                         "output": str(output), "format": format_of(output, "", fmt), "note": note})
        elif note:
            typer.echo(f"lstmops sample: {note}", err=True)


@app.command()
def predict(
    ctx: typer.Context,
    problem: ProblemArg,
    source: Annotated[Optional[str], typer.Option(
        "--input", "-i", help="Raw rows: a .csv or .jsonl file, or - for standard input.")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="champion, previous, latest or a version number.")]
    = "champion",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write results here (.csv, .jsonl, "
                                                   "or text) instead of standard output.")] = None,
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="rectangles: shapes to draw (no --input).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="rectangles: random seed of the drawing.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Input format: csv or jsonl "
                                               "(default: from the file name or content).")] = None,
    shadow: Annotated[Optional[bool], typer.Option(
        "--shadow/--no-shadow", help="Also run the previous model in shadow, logged only (default: for "
                                     "monitoring.shadow_days after the champion changed).", show_default=False)]
    = None,
    json_out: JsonOpt = False,
) -> None:
    """Predict from raw rows with a registered model; log each prediction and its model version once delivered.

    The results are written (or printed) in full first and logged after: if writing fails,
    nothing is logged and the same ids can be predicted again.
    """
    with _errors("predict"):
        _problem(problem)
        if output is not None:
            from lstmops.serving.rawio import check_writable

            check_writable(output)  # before any work: a bad -o costs nothing
        registry, store = _registry(ctx), _store(ctx)
        from lstmops.serving.rawio import read_rows
        from lstmops.serving.predict import predict as run

        table = read_rows(problem, source, fmt) if source is not None else None
        if table is not None and n is not None:
            raise InputError("give either --input or --n, not both")
        batch = run(problem, table, registry, store, model, n, seed,
                    deliver=lambda done: _write_predictions(done, output, json_out), shadow=shadow,
                    shadow_days=_shadow_days() if shadow is None else None)
        note = f"{problem}: {len(batch.ids)} prediction(s) by model v{batch.version}, logged"
        typer.echo(note + (f", written to {output}" if output else ""), err=True)
        if batch.shadow_version is not None:
            typer.echo(f"{problem}: shadow: model v{batch.shadow_version} predicted the same rows (logged, "
                       "not served)", err=True)  # a skipped shadow model is logged as a warning


def _shadow_days() -> int:
    """``monitoring.shadow_days`` from params.yaml; its default when params.yaml cannot be read (predict needs none)."""
    from lstmops import paths
    from lstmops.config import MonitoringSettings, load_settings

    try:
        return load_settings(paths.params_file()).monitoring.shadow_days
    except (LstmopsError, OSError):
        return MonitoringSettings().shadow_days


def _write_predictions(batch: Any, output: Path | None, json_out: bool) -> None:
    """The results, whole, to ``output`` (by its suffix: CSV, JSON lines or text) or standard output."""
    from lstmops.serving.rawio import write_rows, write_text

    texts = batch.texts()
    if output is None or output.suffix.lower() not in (".csv", ".jsonl", ".json"):
        if json_out and output is None:
            lines = [json.dumps({"id": i, "model_version": batch.version, "prediction": y, "text": t})
                     for i, y, t in zip(batch.ids, batch.outputs, texts)]
        else:
            lines = [f"{i}  {t}" for i, t in zip(batch.ids, texts)]
        write_text("\n".join(lines) + "\n", output)
        return
    import pandas as pd

    from lstmops.serving.readable import as_targets

    if output.suffix.lower() == ".csv":
        rows = [{"id": i, "model_version": batch.version, **as_targets(batch.problem, y), "text": t}
                for i, y, t in zip(batch.ids, batch.outputs, texts)]
    else:
        rows = [{"id": i, "model_version": batch.version, "prediction": y, "text": t}
                for i, y, t in zip(batch.ids, batch.outputs, texts)]
    write_rows(pd.DataFrame(rows), output)


@app.command()
def observe(
    ctx: typer.Context,
    problem: ProblemArg,
    source: Annotated[str, typer.Option("--input", "-i", help="Rows with the prediction id and the true target "
                                        "columns (.csv, .jsonl, or - for standard input).", show_default=False)],
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite earlier observations of the same ids.")]
    = False,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Input format: csv or jsonl.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record the true outcomes of earlier predictions, to score the models that made them."""
    with _errors("observe"):
        _problem(problem)
        registry, store = _registry(ctx), _store(ctx)
        from lstmops.serving.rawio import read_rows
        from lstmops.serving.predict import observe as run

        count = run(problem, read_rows(problem, source, fmt), registry, store, replace)
        if json_out:
            _print_json({"problem": problem, "observations": count})
        else:
            typer.echo(f"{problem}: {count} observation(s) recorded")


@app.command()
def skill(
    ctx: typer.Context,
    problem: ProblemArg,
    interval: Annotated[str, typer.Option(help="day, week or month.")] = "day",
    model: Annotated[Optional[int], typer.Option("--model", "-m", help="Only this model version.")] = None,
    by: Annotated[str, typer.Option(help="Bucket by the time of the prediction (predicted) or of the "
                                    "observation (observed).")] = "predicted",
    json_out: JsonOpt = False,
) -> None:
    """Skill per interval and model version, from stored predictions and observations."""
    with _errors("skill"):
        rows = _store(ctx).skill(_problem(problem), interval, model, by=by)
        if json_out:
            _print_json(rows)
        elif not rows:
            typer.echo(f"{problem}: no observed predictions yet")
        else:
            _table(rows, list(rows[0]))


@models_app.command("list")
def models_list(ctx: typer.Context,
                problem: Annotated[Optional[str], typer.Argument(help="One problem (default: all).")] = None,
                json_out: JsonOpt = False) -> None:
    """Registered versions with their aliases and test skill."""
    with _errors("models list"):
        registry = _registry(ctx)
        names = [_problem(problem)] if problem else list(PROBLEM_NAMES)
        found = [v for name in names for v in registry.versions(name)]
        if json_out:
            _print_json([{k: v for k, v in mv.to_dict().items() if k != "metadata"} for mv in found])
            return
        rows = [{"problem": v.problem, "version": v.version, "aliases": ",".join(v.aliases) or None,
                 "architecture": v.architecture, "registered": v.registered_at.strftime("%Y-%m-%d %H:%M"),
                 "test": _headline(v.metadata)} for v in found]
        if rows:
            _table(rows, ["problem", "version", "aliases", "architecture", "registered", "test"])
        else:
            typer.echo("no registered models")


def _headline(meta: dict[str, Any]) -> str | None:
    metrics = meta.get("test_metrics") or {}
    primary = (meta.get("evaluation") or {}).get("primary_metric") or next(iter(metrics), None)
    return f"{primary} {metrics[primary]:.4g}" if primary in metrics else None


@models_app.command("show")
def models_show(ctx: typer.Context, problem: ProblemArg,
                model: Annotated[str, typer.Argument(help="champion, previous, latest or a version number.")]
                = "champion",
                json_out: JsonOpt = False) -> None:
    """One version in full: files and checksum check, metadata, aliases, and the problem's ledger."""
    with _errors("models show"):
        registry = _registry(ctx)
        mv = registry.resolve(_problem(problem), model)
        try:
            registry.verify(mv)
            integrity = "ok"
        except LstmopsError as err:
            integrity = f"FAILED: {err}"
        ledger = [p.to_dict() for p in registry.ledger(problem, limit=20)]
        if json_out:
            _print_json(mv.to_dict() | {"integrity": integrity, "ledger": ledger})
            return
        meta = mv.metadata
        typer.echo(f"{mv.problem} v{mv.version} {('(' + ', '.join(mv.aliases) + ')') if mv.aliases else ''}".rstrip())
        for key, value in [("architecture", mv.architecture), ("folder", mv.folder), ("integrity", integrity),
                           ("registered", f"{mv.registered_at:%Y-%m-%d %H:%M:%S} UTC by {mv.registered_by}"),
                           ("source", mv.source), ("epochs", meta.get("epochs")), ("data as of", meta.get("as_of")),
                           ("test metrics", meta.get("test_metrics")), ("device", meta.get("device"))]:
            if value is not None:
                typer.echo(f"  {key}: {value}")
        for entry in ledger:
            typer.echo(f"  ledger #{entry['id']} {entry['at']} {entry['action']} v{entry['champion']} "
                       f"(was {entry['replaced'] or '-'}) by {entry['actor']}: {entry['reason']}"
                       + (f" [{entry['evidence']}]" if entry["evidence"] else ""))


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context, problem: ProblemArg,
    reason: Annotated[str, typer.Option(help="Why, for the promotion ledger.", show_default=False)],
    evidence: Annotated[Optional[str], typer.Option(help="A link or path to the evidence.")] = None,
    actor: Annotated[Optional[str], typer.Option(help="Who (default: user@host).")] = None,
    expect_champion: Annotated[Optional[str], typer.Option(
        "--expect-champion", help="Roll back only if this version (vN or N) is still the champion "
                                  "(default: the champion read when the command starts).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Swap champion and previous: the previous model serves again.

    Nothing changes if the champion is no longer the one expected, so a repeated
    rollback with the same `--expect-champion` fails instead of swapping back.
    """
    with _errors("models rollback"):
        registry = _registry(ctx)
        _problem(problem)
        seen = _version_number(expect_champion) if expect_champion is not None else \
            registry.aliases(problem).get("champion")
        entry = registry.rollback(problem, reason, actor, evidence, expect_champion=seen)
        if json_out:
            _print_json(entry.to_dict())
        else:
            typer.echo(f"{problem}: champion is v{entry.champion} again, previous v{entry.previous} "
                       f"(ledger #{entry.id})")


@models_app.command("export")
def models_export(
    ctx: typer.Context, problem: ProblemArg,
    model: Annotated[str, typer.Argument(help="champion, previous, latest or a version number.")] = "champion",
    fmt: Annotated[str, typer.Option("--format", help="saved_model (TensorFlow SavedModel, for TF Serving) "
                                                       "or keras (one .keras file).")] = "saved_model",
    out: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to write (default: "
                                                "exports/PROBLEM-vN-FORMAT).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty output folder.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a registered version for other tools: the model, its preprocessing and a manifest."""
    with _errors("models export"):
        from lstmops.serving.export import export_version

        registry = _registry(ctx)
        name = _problem(problem)
        if out is None:
            version = registry.resolve(name, model).version
            out = Path("exports") / f"{name}-v{version}-{fmt}"
        manifest = export_version(registry, name, model, fmt, out, force=force)
        if json_out:
            _print_json(manifest | {"folder": str(out)})
        else:
            typer.echo(f"{name} v{manifest['version']}: {fmt} written to {out} "
                       f"(model: {manifest['model']}; input {manifest['input']['shape']}, "
                       f"output {manifest['output']['shape']})")


def _version_number(text: str) -> int:
    """``vN`` or ``N`` as a version number; anything else is an :class:`InputError`."""
    digits = text.strip().lower().removeprefix("v")
    if not digits.isdigit():
        raise InputError(f"--expect-champion {text!r} is not a version (e.g. v3 or 3)")
    return int(digits)


from lstmops.cli import monitor as _monitor  # noqa: E402,F401 - registers its commands on ``app``
from lstmops.cli import proposals as _proposals  # noqa: E402,F401 - registers its commands on ``app``
from lstmops.cli import report as _report  # noqa: E402,F401 - registers ``lstmops report``
from lstmops.cli import rehearse as _rehearse  # noqa: E402,F401 - registers ``lstmops rehearse``


def main() -> None:
    """Console entry point ``lstmops``."""
    app(prog_name="lstmops")


if __name__ == "__main__":
    main()
