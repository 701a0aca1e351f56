"""Generative LSTM with a Gaussian mixture density head (the rectangle-drawing model).

A plain regressor trained on "from (0,0) predict (w,0), w ~ U[0,1]" learns the mean
w = 0.5 and so draws the same rectangle every time. Here the model outputs a mixture
of K diagonal Gaussians over the D-dimensional next point instead, trained by negative
log-likelihood: generation samples varied widths and heights, while coordinates that
are always the same (the 0 of (w,0)) get tiny sigmas.

Output per example: a (K, 1 + 2D) array, one row per component,
``[logit, mean_1..mean_D, log_sigma_1..log_sigma_D]``. The shape itself says K and D,
so :func:`sample`, :func:`mean_prediction` and :func:`mixture_nll` need nothing else.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from lstmops.modeling.architectures._common import (check_direction, check_sequence_input, compile_model, lstm_stack,
                                           mismatch, model_input)
from lstmops.modeling.architectures._heads import check_head
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "generative"
HEADS = ("mixture",)
LOSS = "mixture_nll"
# exp(-7) ~ 1e-3 is finer than any scaled coordinate needs; exp(3) ~ 20 covers any spread.
LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 3.0


def params_shape(mixtures: int, dims: int) -> tuple[int, int]:
    """Shape of one example's output: K rows of (logit, D means, D log-sigmas)."""
    return mixtures, 1 + 2 * dims


def _dims(width: int) -> int:
    if width < 3 or width % 2 != 1:
        raise ValueError(f"mixture component rows must hold 1 + 2D values, got {width}")
    return (width - 1) // 2


@keras.saving.register_keras_serializable(package="lstmops")
def mixture_nll(y_true, y_pred):
    """Per-example negative log-likelihood of ``y_true`` (batch, D) under ``y_pred`` (batch, K, 1+2D)."""
    ops = keras.ops
    dims = _dims(y_pred.shape[-1])
    if y_true.shape[-1] != dims:
        raise ValueError(f"mixture_nll: targets have {y_true.shape[-1]} dims, the mixture {dims}")
    y = ops.expand_dims(ops.cast(y_true, y_pred.dtype), axis=-2)  # (batch, 1, D) against K components
    logits, means = y_pred[..., 0], y_pred[..., 1:1 + dims]
    log_sigmas = ops.clip(y_pred[..., 1 + dims:], LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    z = (y - means) * ops.exp(-log_sigmas)
    log_norm = ops.sum(log_sigmas, axis=-1) + 0.5 * dims * math.log(2 * math.pi)
    log_density = -0.5 * ops.sum(z * z, axis=-1) - log_norm  # (batch, K): log N(y; component k)
    log_weights = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    return -ops.logsumexp(log_weights + log_density, axis=-1)


def split_mixture(params_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logits (n, K), means (n, K, D), log_sigmas (n, K, D))`` from outputs (n, K, 1+2D) or (K, 1+2D).

    Log-sigmas are clamped to the same range the loss uses.
    """
    out = np.asarray(params_out, dtype=np.float64)
    if out.ndim not in (2, 3):
        raise ValueError(f"mixture outputs must be (n, K, 1+2D) or (K, 1+2D), got shape {out.shape}")
    out = out.reshape((-1,) + out.shape[-2:])
    dims = _dims(out.shape[-1])
    log_sigmas = np.clip(out[..., 1 + dims:], LOG_SIGMA_MIN, LOG_SIGMA_MAX)
    return out[..., 0], out[..., 1:1 + dims], log_sigmas


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _points_shape(params_out: np.ndarray, dims: int) -> tuple[int, ...]:
    return np.shape(params_out)[:-2] + (dims,)


def sample(params_out: np.ndarray, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
    """Draw one point per row: a component from softmax(logits / T), then its Gaussian with sigma*sqrt(T).

    Args:
        params_out: model outputs, (n, K, 1+2D), or one example's (K, 1+2D).
        rng: the random stream (injected, so generation is reproducible).
        temperature: > 0 scales randomness; 0 gives :func:`mean_prediction`.

    Returns:
        (n, D) points, or (D,) for one example.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return mean_prediction(params_out)
    logits, means, log_sigmas = split_mixture(params_out)
    probs = _softmax(logits / temperature)
    n, k = probs.shape
    dims = means.shape[-1]
    chosen = np.minimum((probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), k - 1)
    rows = np.arange(n)
    sigma = np.exp(log_sigmas[rows, chosen]) * math.sqrt(temperature)
    points = means[rows, chosen] + sigma * rng.standard_normal((n, dims))
    return points.reshape(_points_shape(params_out, dims))


def mean_prediction(params_out: np.ndarray) -> np.ndarray:
    """The mean of each example's most likely component: a deterministic point, (n, D) or (D,)."""
    logits, means, _ = split_mixture(params_out)
    points = means[np.arange(len(logits)), logits.argmax(axis=1)]
    return points.reshape(_points_shape(params_out, means.shape[-1]))


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """``layers`` x ``LSTM(cells)`` -> ``Dense(K*(1+2D))`` as (K, 1+2D), compiled with :func:`mixture_nll`."""
    check_sequence_input(NAME, task)
    check_head(NAME, task, HEADS)
    check_direction(NAME, spec)
    if task.loss != LOSS:
        raise mismatch(NAME, f"the mixture head is trained with loss {LOSS!r}, got {task.loss!r}")
    dims = task.output_shape[0]
    inputs, x = model_input(task)
    x = lstm_stack(x, spec, layers=spec.layers, per_step=False)
    shape = params_shape(spec.mixtures, dims)
    x = keras.layers.Dense(shape[0] * shape[1], name="mixture_dense")(x)
    outputs = keras.layers.Reshape(shape, name="mixture_params")(x)
    model = keras.Model(inputs, outputs, name=NAME)
    return compile_model(model, spec, task, loss=mixture_nll)
