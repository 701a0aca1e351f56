"""The problems, discovered by scanning this package: adding one is one module plus its params entry.

A module of this package counts as a problem when it defines ``Params`` and
``generate`` at its top level; its file name is the problem's name. Stages, flows, the
CLI and tests loop over :func:`problem_names` / ``PROBLEMS``, and generic code asks the
module for everything that differs per problem (no ``if name == ...`` elsewhere).

Members a problem module defines (required unless a default is given):

- ``Params``: a frozen pydantic model of the process parameters (defaults = the
  reference settings of PROBLEMS.md), with validators for impossible values;
- ``generate(params, n, rng) -> pd.DataFrame``: vectorised NumPy generator, one row
  per sequence, inputs and targets in plain readable columns;
- ``input_columns(params)`` / ``target_columns(params)``: which columns feed the
  model and which are the truth it must predict;
- ``contract(params) -> Contract``: the data contract checked by the validate stage
  and, column by column, by ``predict`` and ``observe``;
- ``PREPARER``: its preparer class (raw table <-> model arrays), built on
  :class:`lstmops.features.preparers.Preparer`;
- ``HEAD``, ``LOSS``: the output layer family and the Keras loss the model needs;
- ``PRIMARY_METRIC``, ``HIGHER_IS_BETTER`` and ``score(table, predicted) -> dict``:
  skill of decoded predictions against a raw table holding the true targets;
- ``per_example(table, predicted) -> array``: one value per example (1/0 for a right
  answer, an absolute error, ...) whose mean is the primary metric, so the update
  gate can resample evaluation examples (for a generative problem ``predicted`` are
  drawn outputs and ``table`` fresh rows of the process);
- ``input_summary(table, params)`` / ``outcome_summary(table, params)``: summary
  features of each sequence's inputs and of its outcomes (true, or predictions as
  targets), one row per sequence, categorical ones as pandas ``category``: what drift
  monitoring compares, since Evidently has no sequence methods;
- ``TASK``: a one-line description for ``lstmops problems`` (a string literal, so
  the CLI reads it without importing the module);
- ``ORDER`` (optional, int literal; default: none): position in listings; problems
  without it follow the ordered ones, alphabetically;
- ``describe_input(row) -> str`` (optional; default: the row's values joined by
  spaces, "" for an empty row) and ``describe_output(output) -> str`` (optional;
  default ``str(output)``): a prediction in words, ``input → output``;
- ``as_targets(output) -> dict`` (optional; default: a list becomes ``y_0, y_1, ..``,
  anything else ``target``): a decoded prediction in the raw target columns;
- ``GENERATIVE`` (optional; default False): outputs are drawn, not predicted from
  inputs; then the module also defines ``draw(model, preparer, n, rng, temperature)``
  (outputs array), ``score_outputs(outputs) -> dict`` (skill from the outputs alone)
  and ``draw_metrics(drawn, train_table) -> dict`` (added to the evaluation metrics);
- ``PREPARE_CHUNK_ROWS`` (optional; default None): serve inputs through
  ``preparer.inputs_chunks`` this many rows at a time (large rendered inputs);
- ``check_texts(params, texts) -> (row, message) | None`` (optional): extra checks of
  the text input columns (``{column: stripped texts}``) before a model sees them;
- ``after_finalize(model, preparer, model_spec, rng, folder)`` (optional): extra build
  outputs the finalize stage writes into ``metrics/<problem>/`` (e.g. a picture).

The problem's entry ``problems.<name>`` in params.yaml names its ``architecture`` and
gives ``process`` (its ``Params``), ``sizes``, ``drift`` (``[]`` for none), ``model`` and
``train``: dvc.yaml's stage matrix lists every one of these keys for every problem.
``tests/test_new_problem.py`` holds a complete small example (``parity``).

This package's ``__init__`` imports only the standard library: :func:`problem_names`
and :func:`problem_tasks` read the modules' source, so ``lstmops --help`` stays fast;
``PROBLEMS`` and :func:`get_problem` import the modules themselves.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from functools import cache
from types import ModuleType
from typing import Any

from lstmops.errors import InputError

_REQUIRED = ("Params", "generate")


def _top_level_names(tree: ast.Module) -> dict[str, ast.AST]:
    """Names bound at a module's top level (classes, functions, assignments, imports)."""
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = node
    return found


def _literal(node: ast.AST | None) -> Any:
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


@cache
def _scan() -> dict[str, dict[str, Any]]:
    """``{name: {"order": .., "task": ..}}`` of every problem module, in listing order, without importing them."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name.startswith("_"):
            continue
        spec = importlib.util.find_spec(f"{__name__}.{info.name}")
        source = spec.loader.get_source(spec.name) if spec and spec.loader else None
        if source is None:
            continue
        names = _top_level_names(ast.parse(source))
        if all(member in names for member in _REQUIRED):
            found[info.name] = {"order": _literal(names.get("ORDER")), "task": _literal(names.get("TASK"))}

    def key(name: str) -> tuple:
        order = found[name]["order"]
        return (0, order, name) if isinstance(order, int) else (1, 0, name)

    return {name: found[name] for name in sorted(found, key=key)}


def problem_names() -> tuple[str, ...]:
    """Every problem's name: those with an ``ORDER`` first, then the rest alphabetically. Imports nothing heavy."""
    return tuple(_scan())


def problem_tasks() -> dict[str, str]:
    """Each problem's one-line ``TASK`` (read from its source; "" where a module lacks one)."""
    return {name: info["task"] or "" for name, info in _scan().items()}


class UnknownProblem(InputError, KeyError):
    """No problem of that name: an :class:`InputError` that ``except KeyError`` still catches."""

    def __str__(self) -> str:  # the plain message, not KeyError's quoted repr
        return str(self.args[0]) if self.args else ""


def get_problem(name: str) -> ModuleType:
    """The module of a problem, or a one-line :class:`UnknownProblem` naming the known ones."""
    if name not in _scan():
        raise UnknownProblem(f"unknown problem {name!r} (known: {', '.join(problem_names())})")
    module = importlib.import_module(f"{__name__}.{name}")
    missing = [member for member in _REQUIRED if not hasattr(module, member)]
    if missing:  # the source scan and the module disagree (e.g. a member deleted at import)
        raise KeyError(f"problem module {name!r} lacks {', '.join(missing)}")
    return module


def is_generative(name: str) -> bool:
    """Whether a problem's outputs are drawn rather than predicted from inputs (False for unknown names)."""
    return name in _scan() and bool(getattr(get_problem(name), "GENERATIVE", False))


@cache
def _problems() -> dict[str, ModuleType]:
    return {name: get_problem(name) for name in problem_names()}


def __getattr__(attr: str) -> Any:
    # PROBLEMS and Contract are loaded on first use: importing this package must stay light.
    if attr == "PROBLEMS":
        return _problems()
    if attr == "Contract":
        from lstmops.problems.contract import Contract

        return Contract
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
