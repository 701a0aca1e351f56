"""Per-example Python-loop generators of the six problems, the way the reference book codes them.

Two kinds, both the baseline of ``bench_generate.py`` only; ``rng`` is a seeded
``random.Random`` and every example is drawn ONE at a time with per-step Python loops:

* ``<problem>_arrays_reference(params, n, rng) -> (X, y)`` (``MODEL_READY_REFERENCES``):
  the book's whole path to model-ready arrays. Each example is drawn and encoded at
  once into Python lists (one-hot lists for echo and the padded addition strings, the
  float lists of the damped sine and cumulative sum, float64 frames for the moving
  line, the 3 point pairs of a rectangle), and ``np.array(...)`` of the lists, reshaped
  as the book's models expect, is built at the end. Like the book, no scaling: its
  values already lie in [0, 1].
* ``<problem>_reference(params, n, rng) -> DataFrame`` (``REFERENCES``): raw-table rows
  with the same columns (and dtypes) as the project's vectorised ``generate``.

Where the book's own code differs in a detail from the process of PROBLEMS.md,
these follow PROBLEMS.md (and so the project), so that both sides draw the same
process; each such place says so.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd


def _columns(prefix: str, count: int) -> list[str]:
    """Column names ``prefix_0 .. prefix_{count-1}``."""
    return [f"{prefix}_{i}" for i in range(count)]


# --- 1. Echo -----------------------------------------------------------------


def echo_example(length: int, n_features: int, out_index: int, rng: random.Random) -> list[int]:
    """One sequence of random ints, then its target and the index used."""
    sequence = [rng.randint(0, n_features - 1) for _ in range(length)]
    return sequence + [sequence[out_index], out_index]


def echo_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` echo sequences, one example at a time."""
    rows = [echo_example(params.length, params.n_features, params.out_index, rng) for _ in range(n)]
    return pd.DataFrame(rows, columns=_columns("x", params.length) + ["target", "out_index"])


# --- 2. Damped sine wave -----------------------------------------------------


def damped_sine_example(length: int, n_out: int, period_range: tuple[int, int],
                        decay_range: tuple[float, float], rng: random.Random) -> list[float]:
    """One wave of ``length + n_out`` steps, then its period and decay."""
    period = rng.randint(*period_range)
    decay = rng.uniform(*decay_range)
    values = [0.5 + 0.5 * math.sin(2 * math.pi * i / period) * math.exp(-decay * i)
              for i in range(length + n_out)]
    return values + [period, decay]


def damped_sine_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` damped sine waves, one example at a time."""
    periods = (params.period_min, params.period_max)
    decays = (params.decay_min, params.decay_max)
    rows = [damped_sine_example(params.length, params.n_out, periods, decays, rng) for _ in range(n)]
    columns = _columns("x", params.length) + _columns("y", params.n_out) + ["period", "decay"]
    return pd.DataFrame(rows, columns=columns)


# --- 3. Moving line ----------------------------------------------------------


def _next_row(row: int, size: int, max_step: int, rng: random.Random) -> int:
    """The row lit in the next column: a uniform step of at most ``max_step``, clipped.

    PROBLEMS.md (and the project) step by -1/0/+1 uniformly and then clip; the book's
    ``randint(max(0, r-1), min(size-1, r+1))`` draws uniformly among the clipped rows,
    which differs only at the image border. We follow PROBLEMS.md.
    """
    return min(max(row + rng.randint(-max_step, max_step), 0), size - 1)


def moving_square_example(size: int, max_step: int, rng: random.Random) -> list[int]:
    """One video as its direction then the row lit at each column step."""
    direction = 1 if rng.random() < 0.5 else 0
    row = rng.randint(0, size - 1)
    path = [row]
    for _ in range(1, size):
        row = _next_row(row, size, max_step, rng)
        path.append(row)
    cols = list(range(size)) if direction == 1 else list(range(size - 1, -1, -1))
    return [direction] + path + cols + [max_step]


def moving_square_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` line-drawing videos as raw-table rows (direction and row path), one at a time."""
    rows = [moving_square_example(params.size, params.max_step, rng) for _ in range(n)]
    columns = ["direction"] + _columns("r", params.size) + _columns("c", params.size) + ["max_step"]
    return pd.DataFrame(rows, columns=columns)


def moving_square_frames_example(size: int, max_step: int, rng: random.Random) -> tuple[list[np.ndarray], int]:
    """One video as the book builds it: ``size`` float64 frames, each a copy of the last plus a pixel."""
    direction = 1 if rng.random() < 0.5 else 0
    frame = np.zeros((size, size))
    row = rng.randint(0, size - 1)
    frame[row, 0 if direction else size - 1] = 1
    frames = [frame]
    for i in range(1, size):
        row = _next_row(row, size, max_step, rng)
        frame = frame.copy()
        frame[row, i if direction else size - 1 - i] = 1
        frames.append(frame)
    return frames, direction


def moving_square_frames_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """``n`` videos as the book's model-ready arrays: frames (n, size, size, size, 1) float64, directions (n, 1).

    Memory: n * size**3 * 8 bytes for the array, plus as much again for the per-example
    lists while the array is built (as in the book).
    """
    X, y = [], []
    for _ in range(n):
        frames, direction = moving_square_frames_example(params.size, params.max_step, rng)
        X.append(frames)
        y.append(direction)
    size = params.size
    return np.array(X).reshape(n, size, size, size, 1), np.array(y).reshape(n, 1)


# --- 4. Addition -------------------------------------------------------------


def addition_example(n_terms: int, smallest: int, largest: int, rng: random.Random) -> list:
    """One sum as its unpadded expression text and its answer."""
    terms = [rng.randint(smallest, largest) for _ in range(n_terms)]
    return ["+".join(str(t) for t in terms), sum(terms)]


def addition_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` sums, one example at a time."""
    rows = [addition_example(params.n_terms, params.smallest, params.largest, rng) for _ in range(n)]
    return pd.DataFrame(rows, columns=["expression", "answer"])


# --- 5. Cumulative sum -------------------------------------------------------


def cumulative_sum_example(n_timesteps: int, threshold: float, rng: random.Random) -> list[float]:
    """One sequence of uniform values, its per-step flags and the threshold.

    The book uses a per-example ``numpy.cumsum``; a plain running sum is faster in
    pure Python at this length, so this baseline is, if anything, conservative.
    """
    values = [rng.random() for _ in range(n_timesteps)]
    flags, running = [], 0.0
    for v in values:
        running += v
        flags.append(0 if running < threshold else 1)
    return values + flags + [threshold]


def cumulative_sum_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` cumulative-sum sequences, one example at a time."""
    threshold = params.threshold_fraction * params.n_timesteps
    rows = [cumulative_sum_example(params.n_timesteps, threshold, rng) for _ in range(n)]
    columns = _columns("x", params.n_timesteps) + _columns("y", params.n_timesteps) + ["threshold"]
    return pd.DataFrame(rows, columns=columns)


# --- 6. Rectangles -----------------------------------------------------------


def rectangle_example(width_range: tuple[float, float], height_range: tuple[float, float],
                      rng: random.Random) -> list[float]:
    """One rectangle: width, height, then its 4 corners clockwise from the origin."""
    width, height = rng.uniform(*width_range), rng.uniform(*height_range)
    points = [[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]]
    return [width, height] + [coord for point in points for coord in point]


def rectangles_reference(params, n: int, rng: random.Random) -> pd.DataFrame:
    """``n`` rectangles, one example at a time."""
    widths = (params.width_min, params.width_max)
    heights = (params.height_min, params.height_max)
    rows = [rectangle_example(widths, heights, rng) for _ in range(n)]
    points = [f"{axis}_{i}" for i in range(4) for axis in ("x", "y")]
    return pd.DataFrame(rows, columns=["width", "height"] + points)


# --- Model-ready arrays, the book's way ---------------------------------------

BOOK_ALPHABET = [str(d) for d in range(10)] + ["+", " "]  # the book's order of the 12 symbols


def one_hot_list(index: int, width: int) -> list[int]:
    """A one-hot list, as the book builds each vector."""
    vector = [0 for _ in range(width)]
    vector[index] = 1
    return vector


def echo_arrays_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Echo one-hot inputs (n, length, n_features) and targets (n, n_features), int64."""
    X, y = [], []
    for _ in range(n):
        sequence = [rng.randint(0, params.n_features - 1) for _ in range(params.length)]
        encoded = [one_hot_list(value, params.n_features) for value in sequence]
        X.append(encoded)
        y.append(encoded[params.out_index])
    return np.array(X), np.array(y)


def damped_sine_arrays_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Damped-sine inputs (n, length, 1) and targets (n, n_out), float64, unscaled."""
    X, y = [], []
    for _ in range(n):
        period = rng.randint(params.period_min, params.period_max)
        decay = rng.uniform(params.decay_min, params.decay_max)
        values = [0.5 + 0.5 * math.sin(2 * math.pi * i / period) * math.exp(-decay * i)
                  for i in range(params.length + params.n_out)]
        X.append(values[:params.length])
        y.append(values[params.length:])
    return np.array(X).reshape(n, params.length, 1), np.array(y).reshape(n, params.n_out)


def addition_arrays_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Addition one-hot inputs (n, in_width, 12) and targets (n, out_width, 12), int64, book alphabet order.

    The widths are those of the longest expression and the largest sum (8 and 2 at the
    reference settings, as the book's ``ceil(log10(...))`` formulas give there).
    """
    in_width = params.n_terms * len(str(params.largest)) + params.n_terms - 1
    out_width = len(str(params.n_terms * params.largest))
    char_to_int = {c: i for i, c in enumerate(BOOK_ALPHABET)}
    symbols = len(BOOK_ALPHABET)
    X, y = [], []
    for _ in range(n):
        terms = [rng.randint(params.smallest, params.largest) for _ in range(params.n_terms)]
        text = "+".join([str(t) for t in terms])
        text = "".join([" " for _ in range(in_width - len(text))]) + text
        answer = str(sum(terms))
        answer = "".join([" " for _ in range(out_width - len(answer))]) + answer
        X.append([one_hot_list(char_to_int[c], symbols) for c in text])
        y.append([one_hot_list(char_to_int[c], symbols) for c in answer])
    return np.array(X), np.array(y)


def cumulative_sum_arrays_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative-sum inputs (n, T, 1) float64, unscaled, and per-step 0/1 targets (n, T, 1) int64."""
    threshold = params.threshold_fraction * params.n_timesteps
    X, y = [], []
    for _ in range(n):
        values = [rng.random() for _ in range(params.n_timesteps)]
        flags, running = [], 0.0
        for v in values:  # the book uses a per-example numpy.cumsum: slower in pure Python at this length
            running += v
            flags.append(0 if running < threshold else 1)
        X.append(values)
        y.append(flags)
    steps = params.n_timesteps
    return np.array(X).reshape(n, steps, 1), np.array(y).reshape(n, steps, 1)


def rectangles_arrays_reference(params, n: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Rectangle point pairs: inputs (3n, 1, 2) and next points (3n, 2), float64, unscaled."""
    X, y = [], []
    for _ in range(n):
        width = rng.uniform(params.width_min, params.width_max)
        height = rng.uniform(params.height_min, params.height_max)
        points = [[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]]
        for i in range(1, len(points)):
            X.append(points[i - 1])
            y.append(points[i])
    return np.array(X).reshape(-1, 1, 2), np.array(y)


MODEL_READY_REFERENCES = {
    "echo": echo_arrays_reference,
    "damped_sine": damped_sine_arrays_reference,
    "moving_square": moving_square_frames_reference,
    "addition": addition_arrays_reference,
    "cumulative_sum": cumulative_sum_arrays_reference,
    "rectangles": rectangles_arrays_reference,
}


REFERENCES = {
    "echo": echo_reference,
    "damped_sine": damped_sine_reference,
    "moving_square": moving_square_reference,
    "addition": addition_reference,
    "cumulative_sum": cumulative_sum_reference,
    "rectangles": rectangles_reference,
}
