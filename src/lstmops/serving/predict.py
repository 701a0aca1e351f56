"""Serving a registered model: raw rows in, checked, prepared, predicted, decoded, delivered, logged.

Order matters: the checksums are verified and every row is checked (see
:mod:`lstmops.serving.inputs`) before Keras loads the model, so bad input fails in a fraction
of a second and nothing is logged for it. The model is rebuilt from its JSON in Keras
safe mode (no Python code from files, no pickle). Predictions are logged only after they
were delivered (``deliver``), so a failed delivery leaves nothing logged and can be retried
with the same ids.

Shadow: for ``monitoring.shadow_days`` after the champion changed (a promotion or a
rollback), the ``previous`` model also predicts the same inputs, after the served
predictions were delivered and logged; its outputs are logged as shadow predictions
(never served) so the store scores champion and previous side by side. A shadow model
that cannot load, refuses the inputs or fails in any way is skipped with a warning: it
never fails or holds up what was served.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from lstmops.errors import DataError, LstmopsError
from lstmops.modeling import bundle
from lstmops.modeling.bundle import PREPROCESSING
from lstmops.modeling.training import use_compile_cache
from lstmops.serving.inputs import reworded, validate_inputs, validate_targets, version_params
from lstmops.serving.rawio import InputError, row_ids
from lstmops.registry.versions import ModelVersion, Registry
from lstmops.problems import get_problem, is_generative, problem_names
from lstmops.store.records import Store

log = logging.getLogger(__name__)
CHUNK_ROWS = 4096        # most rows per model call; smaller inputs are padded to a power of two
MIN_BATCH = 32


_MODELS: OrderedDict[tuple, Any] = OrderedDict()
MODELS_KEPT = 8          # inference models a long-lived process keeps loaded (champion, shadow, per problem)


def load_model(folder: Path) -> Any:
    """The bundle's inference model (:func:`lstmops.modeling.bundle.load_model`), with the compile cache on.

    A process that serves many requests (the monitoring traffic, the update flow's replay,
    a rehearsal) keeps the last few models loaded, with their compiled predict programs:
    loading costs a third of a second and a first prediction a compilation. The key holds
    the size and modification time of the bundle's files, so a changed bundle is loaded anew
    (the caller has verified its checksums first).
    """
    from lstmops.modeling.training import use_default_backend

    use_default_backend()
    use_compile_cache()
    folder = Path(folder)
    stats = tuple((p.name, s.st_size, s.st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()
                  for s in [p.stat()])
    key = (str(folder.resolve()), stats)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model = bundle.load_model(folder)
    _MODELS[key] = model
    while len(_MODELS) > MODELS_KEPT:
        _MODELS.popitem(last=False)
    return model


def model_outputs(model: Any, x: np.ndarray, chunk: int = CHUNK_ROWS) -> np.ndarray:
    """Raw outputs in calls of a few fixed batch sizes (powers of two up to ``chunk``), padding the rest.

    JAX compiles one program per batch shape: a handful of shapes keeps that to one
    compilation per model and size class, which the compile cache then keeps.
    """
    n = len(x)
    batch = chunk if n >= chunk else max(MIN_BATCH, 1 << (n - 1).bit_length())
    pad = (-n) % batch
    padded = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
    return np.asarray(model.predict(padded, batch_size=batch, verbose=0))[:n]


@dataclass
class Served:
    """A registered version opened for serving: checksums verified, preprocessing loaded, model on demand."""

    version: ModelVersion
    preparer: Any
    _model: Any = field(default=None, repr=False)

    @property
    def model(self) -> Any:
        """The Keras model, loaded on first use."""
        if self._model is None:
            self._model = load_model(self.version.folder)
        return self._model

    @property
    def temperature(self) -> float:
        """Sampling temperature of a generative model (from its metadata; 1 if absent)."""
        settings = self.version.metadata.get("settings", {})
        return float(settings.get("model", {}).get("temperature", settings.get("temperature", 1.0)))


def open_version(registry: Registry, problem: str, ref: str | int | None = "champion") -> Served:
    """Resolve ``ref``, verify every file's checksum, load the fitted preprocessing (JSON)."""
    from lstmops.features.preparers import load_preparer

    mv = registry.resolve(problem, ref)
    registry.verify(mv)
    preparer = load_preparer(mv.folder / PREPROCESSING)
    if preparer.name != problem:
        raise InputError(problem, f"v{mv.version} holds preprocessing for {preparer.name}, not {problem}")
    return Served(mv, preparer)


def _prepared(problem: str, served: Served, typed: pd.DataFrame, ids: Sequence[str]) -> Iterator[np.ndarray]:
    """Model inputs, chunk by chunk; the preparer's checks run (and fail) before this returns.

    A problem with ``PREPARE_CHUNK_ROWS`` (large rendered inputs) is prepared that many
    rows at a time, after every row has been checked.
    """
    preparer = served.preparer
    rows = _chunk_rows(problem)
    try:
        if rows:
            chunks = preparer.inputs_chunks(typed, rows)
            return _chain(next(chunks), chunks)
        return iter([preparer.inputs(typed)])
    except DataError as err:  # only the preparer's checks of the data; any other error is a bug
        raise reworded(problem, err, ids) from None


def _chunk_rows(problem: str) -> int | None:
    return getattr(get_problem(problem), "PREPARE_CHUNK_ROWS", None)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def predict_typed(problem: str, served: Served, chunks: Iterator[np.ndarray]) -> list[Any]:
    """Decoded predictions (the inverse preparation) of prepared input chunks."""
    size = _chunk_rows(problem) or CHUNK_ROWS
    decoded: list[Any] = []
    for x in chunks:
        decoded += served.preparer.decode(model_outputs(served.model, x, size))
    return decoded


def draw(served: Served, n: int, seed: int | None = None) -> list[Any]:
    """``n`` outputs drawn by a generative model (e.g. shapes, each as 4 ``[x, y]`` points), rounded to 6 places."""
    module = get_problem(served.preparer.name)
    drawn = module.draw(served.model, served.preparer, n, np.random.default_rng(seed), served.temperature)
    return np.round(drawn, 6).tolist()


@dataclass
class PredictionBatch:
    """What one ``predict`` call produced (and, once delivered, logged)."""

    problem: str
    version: int
    ids: list[str]
    inputs: list[dict[str, Any]]
    outputs: list[Any]
    shadow_version: int | None = None   # the model that predicted the same inputs in shadow (logged only)
    shadow_note: str | None = None      # why a due shadow prediction was skipped

    def texts(self) -> list[str]:
        """One readable line per prediction, e.g. ``10+2+7 → 19``."""
        from lstmops.serving.readable import describe

        return [describe(self.problem, x, y) for x, y in zip(self.inputs, self.outputs)]


def predict(problem: str, table: pd.DataFrame | None, registry: Registry, store: Store | None,
            ref: str | int | None = "champion", n: int | None = None, seed: int | None = None,
            deliver: Callable[[PredictionBatch], None] | None = None, shadow: bool | None = None,
            shadow_days: int | None = None, at: datetime | None = None) -> PredictionBatch:
    """Check raw rows, predict with the registered model ``ref``, deliver, then log every prediction.

    Args:
        table: raw rows (:func:`lstmops.serving.rawio.read_rows`); for a generative problem,
            rows of ids only, or None with ``n`` outputs to draw.
        store: where predictions are logged; None logs nothing.
        seed: randomness of drawn outputs (generative problems only).
        deliver: hands the batch to its user (writes the output) before anything is logged;
            if it raises, nothing is logged and the same ids can be predicted again.
        shadow: run the ``previous`` model in shadow (True), or not (False); None decides
            by :func:`shadow_version` with ``shadow_days`` (None: no shadow).
        at: the time the predictions are logged at (naive UTC); None = now. The update
            flow's collect step replays a dated batch as that day's traffic.

    Raises:
        InputError: a row is bad; nothing was predicted or logged.
    """
    served = open_version(registry, problem, ref)
    params = served.preparer.params
    generative = is_generative(problem)
    if table is None:
        if not generative or not n or n < 1:
            drawn = ", ".join(name for name in problem_names() if is_generative(name))
            raise InputError(problem, "no input rows (give --input FILE" + (f", or --n N shapes to draw for {drawn}"
                                                                            if drawn else "") + ")")
        table = pd.DataFrame(index=range(n))
    ids = row_ids(problem, table, generate=True)
    shown = ids if "id" in table.columns else None  # name a row by its id only when the user gave one
    typed = validate_inputs(problem, params, table, shown)
    chunks = None if generative else _prepared(problem, served, typed, shown)
    if store is not None:
        taken = store.known_ids(problem, ids)
        if taken:
            row = next(i for i, v in enumerate(ids) if v in taken)
            raise InputError(problem, f"id {ids[row]} was already predicted (ids must be new)", row, ids)
    outputs = draw(served, len(ids), seed) if chunks is None else predict_typed(problem, served, chunks)
    inputs = typed.to_dict("records") if len(typed.columns) else [{} for _ in ids]
    batch = PredictionBatch(problem, served.version.version, ids, inputs, outputs)
    if deliver is not None:
        deliver(batch)
    if store is not None:
        store.log_predictions(problem, batch.version, ids, inputs, outputs, at=at)
        _shadow(batch, table, shown, registry, store, shadow, shadow_days, seed, at)
    return batch


def shadow_version(registry: Registry, problem: str, served: int, shadow_days: int | None,
                   now: datetime | None = None) -> int | None:
    """The ``previous`` version, when ``served`` is the champion and it became so under ``shadow_days`` ago."""
    from lstmops.database import utcnow

    aliases = registry.aliases(problem)
    previous = aliases.get("previous")
    if not shadow_days or previous is None or aliases.get("champion") != served:
        return None
    last = registry.ledger(problem, limit=1)
    if not last or (now or utcnow()) - last[0].at > timedelta(days=shadow_days):
        return None
    return previous


def _shadow(batch: PredictionBatch, table: pd.DataFrame, shown: Sequence[str] | None, registry: Registry,
            store: Store, shadow: bool | None, shadow_days: int | None, seed: int | None,
            at: datetime | None = None) -> None:
    """Predict the served inputs with the shadow model and log its outputs; any failure is only a warning."""
    problem, version = batch.problem, None
    try:
        if shadow is None:
            version = shadow_version(registry, problem, batch.version, shadow_days, now=at)
        elif shadow:
            previous = registry.aliases(problem).get("previous")
            version = previous if previous != batch.version else None
        if version is None:
            return
        other = open_version(registry, problem, version)
        if is_generative(problem):
            outputs = draw(other, len(batch.ids), seed)
        else:
            typed = validate_inputs(problem, other.preparer.params, table, shown)
            outputs = predict_typed(problem, other, _prepared(problem, other, typed, shown))
        store.log_shadow(problem, version, batch.ids, outputs, at=at)
        batch.shadow_version = version
    except Exception as err:  # noqa: BLE001 - the served predictions are delivered and logged: never fail them
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        batch.shadow_note = (f"shadow model {'' if version is None else f'v{version} '}skipped "
                             f"({type(err).__name__}: {detail}); the served predictions are unaffected")
        # a user-fixable cause is one line; anything else is a bug and keeps its traceback in the log
        log.warning("%s: %s", problem, batch.shadow_note, exc_info=not isinstance(err, LstmopsError))


def observe(problem: str, table: pd.DataFrame, registry: Registry, store: Store, replace: bool = False) -> int:
    """Record the true outcomes of earlier predictions; a bad row raises :class:`InputError`, nothing stored."""
    from lstmops.serving.rawio import typed_times

    if is_generative(problem):
        raise InputError(problem, "a generated shape has no true outcome to observe; its skill is scored from "
                                  f"the drawings themselves (lstmops skill {problem})")
    ids = row_ids(problem, table, generate=False)
    versions = store.versions_of(problem, ids)
    for row, value in enumerate(ids):
        if value not in versions:
            raise InputError(problem, f"no prediction with id {value}", row, ids)
    if not replace:
        done = store.observed_ids(problem, ids)
        for row, value in enumerate(ids):
            if value in done:
                raise InputError(problem, f"prediction {value} already has an observation (--replace overwrites "
                                          "it)", row, ids)
    targets: list[dict[str, Any]] = [{}] * len(ids)
    for version in sorted(set(versions.values())):  # each row against the contract of the model that predicted it
        rows = [i for i, v in enumerate(ids) if versions[v] == version]
        params = version_params(registry.resolve(problem, version))
        try:
            typed = validate_targets(problem, params, table.iloc[rows].reset_index(drop=True), [ids[i] for i in rows])
        except InputError as err:
            raise InputError(problem, err.detail, None if err.row is None else rows[err.row], ids) from None
        for i, record in zip(rows, typed.to_dict("records")):
            targets[i] = record
    times = typed_times(problem, table, "observed_at", ids) if "observed_at" in table.columns else None
    return store.record_observations(problem, ids, targets, times, replace)
