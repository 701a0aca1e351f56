"""The reference ("book") training method of the six problems, for ``bench_training.py``.

Each ``run_<problem>`` is our own implementation of the recipe of shared/PROBLEMS.md:
the book's per-example data generation (``reference_generators.MODEL_READY_REFERENCES``:
Python loops into lists, ``np.array`` at the end, no scaling), its exact model as a
plain ``keras.Sequential`` of the reference layers, its loss, Adam at Keras's default
learning rate, its batch size and epochs, and its loop style:

* echo: one ``fit`` call per freshly drawn example (batch of 1), 10,000 calls;
* rectangles: one ``fit`` call per freshly drawn rectangle (its 3 pairs, one batch of
  3, no shuffling), 25,000 calls;
* the others: one ``fit`` over the whole generated set, 1 epoch, the reference batch.

Departures, each in the reference's favour (they make it faster, never slower): no
``metrics=['acc']`` at compile and ``verbose=0`` (the book logs every call).

Every ``run_*`` returns plain JSON-able data: the seconds and how they were obtained,
the timing parts, and the skill of the reference model on 1,000 fresh sequences drawn
by the same generator. Keras is imported inside functions: the caller runs each one in
a fresh child process that has imported Keras before any clock starts.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_generators import BOOK_ALPHABET, MODEL_READY_REFERENCES  # noqa: E402

# Training-set sizes (examples, or fit calls for the per-update loops) of PROBLEMS.md.
REFERENCE_SIZES = {
    "echo": 10_000,
    "damped_sine": 10_000,
    "moving_square": 5_000,
    "addition": 75_000,
    "cumulative_sum": 50_000,
    "rectangles": 25_000,
}
BATCH_SIZES = {"damped_sine": 10, "moving_square": 32, "addition": 32, "cumulative_sum": 10}
SCORE_N = 1000               # fresh sequences each reference model is scored on
SCORE_SEED_OFFSET = 7919     # the scoring set's seed is the training seed plus this
FRAMES_GEN_SAMPLE = 500      # moving line: book-style frame generation timed on this many, then scaled
FRAMES_CHUNK = 1024          # moving line, full epoch: fit chunk; a multiple of 32, so 5,000 in chunks = 157 updates as in one fit
EQUIVALENT_STEPS_PER_EXECUTION = 100  # for the update-equivalent skill run only (same updates, fewer dispatches)


def _now() -> float:
    return time.perf_counter()


# --- The book's models -----------------------------------------------------------------


def book_model(name: str, params: Any, steps_per_execution: int = 1) -> Any:
    """The reference model of ``name`` as a plain ``keras.Sequential``, compiled as the book does."""
    import keras

    layers = keras.layers
    if name == "echo":
        stack = [keras.Input((params.length, params.n_features)), layers.LSTM(25),
                 layers.Dense(params.n_features, activation="softmax")]
        loss = "categorical_crossentropy"
    elif name == "damped_sine":
        stack = [keras.Input((params.length, 1)), layers.LSTM(20, return_sequences=True), layers.LSTM(20),
                 layers.Dense(params.n_out)]
        loss = "mae"
    elif name == "moving_square":
        size = params.size
        stack = [keras.Input((None, size, size, 1)),  # the book leaves the number of frames open
                 layers.TimeDistributed(layers.Conv2D(2, (2, 2), activation="relu")),
                 layers.TimeDistributed(layers.MaxPooling2D(pool_size=(2, 2))),
                 layers.TimeDistributed(layers.Flatten()),
                 layers.LSTM(50), layers.Dense(1, activation="sigmoid")]
        loss = "binary_crossentropy"
    elif name == "addition":
        in_width, out_width = addition_widths(params)
        symbols = len(BOOK_ALPHABET)
        stack = [keras.Input((in_width, symbols)), layers.LSTM(75), layers.RepeatVector(out_width),
                 layers.LSTM(50, return_sequences=True),
                 layers.TimeDistributed(layers.Dense(symbols, activation="softmax"))]
        loss = "categorical_crossentropy"
    elif name == "cumulative_sum":
        stack = [keras.Input((params.n_timesteps, 1)), layers.Bidirectional(layers.LSTM(50, return_sequences=True)),
                 layers.TimeDistributed(layers.Dense(1, activation="sigmoid"))]
        loss = "binary_crossentropy"
    elif name == "rectangles":
        stack = [keras.Input((1, 2)), layers.LSTM(10), layers.Dense(2, activation="linear")]
        loss = "mae"
    else:
        raise KeyError(f"no reference model for {name!r}")
    model = keras.Sequential(stack, name=f"book_{name}")
    model.compile(loss=loss, optimizer="adam", steps_per_execution=steps_per_execution)
    return model


def addition_widths(params: Any) -> tuple[int, int]:
    """Input and output widths of the book's padded addition strings (8 and 2 at the reference settings)."""
    return params.n_terms * len(str(params.largest)) + params.n_terms - 1, len(str(params.n_terms * params.largest))


# --- Skill of a reference model -------------------------------------------------------------


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float64)


def rectangle_from_origin(model: Any) -> np.ndarray:
    """The book's generation: start at (0,0), feed each prediction back in; 4 points (4, 2)."""
    points = [np.zeros(2)]
    for _ in range(3):
        points.append(_predict(model, points[-1].reshape(1, 1, 2))[0])
    return np.stack(points)


def score(name: str, model: Any, params: Any, seed: int, n: int = SCORE_N) -> dict[str, float]:
    """The PROBLEMS.md skill metric(s) of a reference model on ``n`` fresh book-style sequences."""
    if name == "rectangles":
        from lstmops.problems import rectangles

        shape = rectangle_from_origin(model)
        return {"geometric_error": float(rectangles.geometric_error(shape)[0]),
                "width": float(shape[1, 0]), "height": float(shape[2, 1])}
    rng = random.Random(seed + SCORE_SEED_OFFSET)
    if name == "moving_square":
        x, y = frames_float64(params, n, np.random.default_rng(seed + SCORE_SEED_OFFSET))
    else:
        x, y = MODEL_READY_REFERENCES[name](params, n, rng)
    p = _predict(model, x)
    if name == "echo":
        return {"accuracy": float((p.argmax(-1) == y.argmax(-1)).mean())}
    if name == "damped_sine":
        return {"mae": float(np.abs(p - y).mean())}
    if name == "moving_square":
        hits = (p.reshape(-1) >= 0.5) == (y.reshape(-1) == 1)
        return {"accuracy_100": float(hits[:100].mean()), "accuracy": float(hits.mean())}
    if name == "addition":
        hits = p.argmax(-1) == y.argmax(-1)
        return {"sequence_accuracy": float(hits.all(axis=1).mean()), "char_accuracy": float(hits.mean())}
    if name == "cumulative_sum":
        hits = (p[..., 0] >= 0.5) == (y[..., 0] == 1)
        return {"sequence_accuracy": float(hits.all(axis=1).mean()), "step_accuracy": float(hits.mean())}
    raise KeyError(name)


# --- Batch recipes: damped sine, addition, cumulative sum -------------------------------------


def run_batch(name: str, params: Any, seed: int) -> dict[str, Any]:
    """Generate the whole set the book's way, build, one ``fit`` of 1 epoch with the reference batch."""
    import keras

    n = REFERENCE_SIZES[name]
    keras.utils.set_random_seed(seed)
    start = _now()
    x, y = MODEL_READY_REFERENCES[name](params, n, random.Random(seed))
    generated = _now()
    model = book_model(name, params)
    built = _now()
    model.fit(x, y, batch_size=BATCH_SIZES[name], epochs=1, verbose=0)
    trained = _now()
    return {
        "seconds": trained - start, "how": f"measured: full run ({n:,} examples, batch {BATCH_SIZES[name]}, 1 epoch)",
        "parts": {"generate_s": generated - start, "build_s": built - generated, "train_s": trained - built},
        "skill": score(name, model, params, seed), "skill_from": "full reference model",
    }


# --- Per-update recipes: echo, rectangles ----------------------------------------------------


def _one_update_fit(name: str) -> dict[str, Any]:
    """The book's ``fit`` arguments for one update of the per-example loops."""
    if name == "echo":
        return {"epochs": 1, "batch_size": 1, "verbose": 0}
    return {"epochs": 1, "verbose": 0, "shuffle": False}  # rectangles: the 3 pairs form one batch


def _update_batch(name: str) -> int:
    return 1 if name == "echo" else 3


def run_per_update(name: str, params: Any, seed: int, updates: int, full_below_s: float) -> dict[str, Any]:
    """The book's loop: draw one example (echo) or one rectangle, ``fit`` on it, repeat.

    Times a warm-up call (the first, which compiles), then ``updates`` calls; the total
    is extrapolated linearly to the full count. When that estimate is under
    ``full_below_s`` seconds, the rest of the loop is run too and the measured total
    replaces the estimate. The skill is that of the fully trained model: the loop's own
    if it ran in full; otherwise an update-equivalent model: the same initial weights,
    the same examples in the same order, one ``fit(shuffle=False)`` with the same batch
    size, which applies the very same sequence of Adam updates (only faster).
    """
    import keras

    count = REFERENCE_SIZES[name]
    draw = MODEL_READY_REFERENCES[name]
    kwargs = _one_update_fit(name)
    rng = random.Random(seed)
    keras.utils.set_random_seed(seed)
    start = _now()
    model = book_model(name, params)
    built = _now()
    x, y = draw(params, 1, rng)
    model.fit(x, y, **kwargs)
    warmed = _now()
    updates = max(1, min(updates, count - 1))
    for _ in range(updates):
        x, y = draw(params, 1, rng)
        model.fit(x, y, **kwargs)
    timed = _now()
    per_update = (timed - warmed) / updates
    estimate = (built - start) + (warmed - built) + per_update * (count - 1)
    parts = {"build_s": built - start, "warmup_call_s": warmed - built, "timed_updates": updates,
             "per_update_ms": 1e3 * per_update, "extrapolated_s": estimate}
    done = 1 + updates
    if full_below_s > 0 and estimate < full_below_s:
        for _ in range(count - done):
            x, y = draw(params, 1, rng)
            model.fit(x, y, **kwargs)
        finished = _now()
        parts["measured_full_s"] = finished - start
        return {"seconds": finished - start, "parts": parts,
                "how": f"measured: full loop of {count:,} fit calls (extrapolation from the first {updates} "
                       f"after a warm-up call said {estimate:.1f} s)",
                "skill": score(name, model, params, seed), "skill_from": "full reference model (the loop itself)"}
    partial = score(name, model, params, seed)
    equivalent, equivalent_s = update_equivalent_model(name, params, seed)
    parts["update_equivalent_fit_s"] = equivalent_s
    return {"seconds": estimate, "parts": parts,
            "how": f"EXTRAPOLATED from {updates} timed fit calls after a warm-up call, to {count:,} calls",
            "skill": score(name, equivalent, params, seed), "partial_skill": partial,
            "skill_from": f"update-equivalent full model (same {count:,} updates as the loop, one fit call); "
                          f"the partial model after {done} calls scored {partial}"}


def update_equivalent_model(name: str, params: Any, seed: int) -> tuple[Any, float]:
    """The model the full per-update loop would end with, trained in one ``fit`` (and its seconds)."""
    import keras

    count = REFERENCE_SIZES[name]
    draw = MODEL_READY_REFERENCES[name]
    rng = random.Random(seed)  # the loop's stream: the same examples in the same order
    pairs = [draw(params, 1, rng) for _ in range(count)]
    x = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs])
    keras.utils.set_random_seed(seed)  # the loop's initial weights
    start = _now()
    model = book_model(name, params, steps_per_execution=EQUIVALENT_STEPS_PER_EXECUTION)
    model.fit(x, y, batch_size=_update_batch(name), epochs=1, shuffle=False, verbose=0)
    return model, _now() - start


# --- Moving line -----------------------------------------------------------------------------


def frames_float64(params: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames in the book's format (n, size, size, size, 1) float64 and directions (n, 1).

    Drawn with the project's vectorised generator and renderer (the same pixels the
    book's loops draw for the same paths; see bench_generate.py), so the untimed
    training data costs seconds, not minutes; the book's own generation is timed apart.
    """
    from lstmops.problems.moving_square import render_frames
    from lstmops.problems import moving_square

    table = moving_square.generate(params, n, rng)
    rows = table[moving_square.row_columns(params)].to_numpy()
    cols = table[moving_square.col_columns(params)].to_numpy()
    return render_frames(rows, cols).astype(np.float64), table[["direction"]].to_numpy(np.float64)


def run_moving_square(params: Any, seed: int, sample: int) -> dict[str, Any]:
    """The moving line's reference: book-style frame generation timed on ``FRAMES_GEN_SAMPLE``
    sequences and scaled to 5,000; training 1 epoch of 5,000 float64 sequences at batch 32.

    With ``sample`` > 0 (and < 5,000) the training is timed as a warm-up call on one
    batch (it compiles), then ``sample`` more sequences, and extrapolated linearly to the
    epoch; the model, trained on ``32 + sample`` sequences only, is scored on the 100
    fresh sequences of the reference's own skill check. Otherwise the full epoch is
    trained and measured, in ``fit`` calls of ``FRAMES_CHUNK`` sequences (157 updates, as
    one fit; float64 frames of all 5,000 at once need ~5 GB), and scored on 1,000.
    """
    import keras

    from reference_generators import moving_square_frames_reference

    n, batch = REFERENCE_SIZES["moving_square"], BATCH_SIZES["moving_square"]
    started = _now()
    frames = moving_square_frames_reference(params, FRAMES_GEN_SAMPLE, random.Random(seed))
    generate_sample_s = _now() - started
    del frames
    generate_s = generate_sample_s * n / FRAMES_GEN_SAMPLE
    keras.utils.set_random_seed(seed)
    start = _now()
    model = book_model("moving_square", params)
    build_s = _now() - start
    rng = np.random.default_rng(seed)
    parts: dict[str, Any] = {"generate_500_s": generate_sample_s, "generate_s": generate_s, "build_s": build_s}
    how = f"generation: {FRAMES_GEN_SAMPLE} book-style sequences timed, x{n // FRAMES_GEN_SAMPLE}; training: "
    if 0 < sample < n - batch:
        x, y = frames_float64(params, batch + sample, rng)
        start = _now()
        model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
        warm_s = _now() - start
        start = _now()
        model.fit(x[batch:], y[batch:], batch_size=batch, epochs=1, verbose=0)
        per_sequence = (_now() - start) / sample
        del x, y
        train_s = warm_s + per_sequence * (n - batch)
        parts |= {"warmup_batch_s": warm_s, "timed_sequences": sample, "per_batch_s": per_sequence * batch}
        how += (f"EXTRAPOLATED: a warm-up fit on one batch of {batch}, then {sample} sequences timed "
                f"({sample // batch} batches), scaled to the epoch of {n:,}")
        skill, skill_from = score("moving_square", model, params, seed, n=100), \
            f"PARTIAL model trained on {batch + sample} sequences only (scored on 100 fresh)"
    else:
        chunk_s = []
        for k in range(0, n, FRAMES_CHUNK):
            x, y = frames_float64(params, min(FRAMES_CHUNK, n - k), rng)
            start = _now()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            chunk_s.append(_now() - start)
            del x, y
        train_s = sum(chunk_s)
        parts["chunk_s"] = chunk_s
        how += (f"measured, full epoch of {n:,} float64 sequences in {len(chunk_s)} fit calls of <= {FRAMES_CHUNK} "
                f"(157 updates of {batch}, as one fit)")
        skill, skill_from = score("moving_square", model, params, seed), "full reference model"
    parts["train_s"] = train_s
    return {"seconds": generate_s + build_s + train_s, "how": how, "parts": parts, "skill": skill,
            "skill_from": skill_from}


def run_reference(name: str, params: Any, seed: int, updates: int, full_below_s: float,
                  frame_sample: int) -> dict[str, Any]:
    """The reference method of ``name``: seconds, how they were obtained, parts and skill."""
    if name in ("echo", "rectangles"):
        return run_per_update(name, params, seed, updates, full_below_s)
    if name == "moving_square":
        return run_moving_square(params, seed, frame_sample)
    return run_batch(name, params, seed)
