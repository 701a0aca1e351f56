"""Output heads, chosen by the problem (``Task.head``) and shared by every architecture.

A body ends either with one vector per example (``per_step=False``) or with one
vector per time step (``per_step=True``); :func:`per_step` says which the head needs.
"""

from __future__ import annotations

from typing import Any

import keras

from lstmops.modeling.architectures._common import mismatch
from lstmops.modeling.architectures.spec import Task

PER_EXAMPLE_HEADS = ("softmax", "sigmoid", "linear")
PER_STEP_HEADS = ("step_sigmoid",)
# Heads whose body is specific to one architecture.
OWNED_HEADS = {"sequence_softmax": "encoder_decoder", "mixture": "generative"}


def per_step(task: Task) -> bool:
    """Whether the head needs one body output per time step."""
    return task.head in PER_STEP_HEADS


def check_head(arch: str, task: Task, allowed: tuple[str, ...]) -> None:
    """Raise a one-line ``ValueError`` unless ``arch`` can carry ``task.head`` with its output shape."""
    if task.head not in allowed:
        owner = OWNED_HEADS.get(task.head)
        hint = f" (use {owner!r})" if owner else ""
        raise mismatch(arch, f"head {task.head!r} does not fit (supported: {', '.join(allowed)}){hint}")
    problem = _shape_problem(task)
    if problem:
        raise mismatch(arch, f"head {task.head!r} {problem}")


def _shape_problem(task: Task) -> str | None:
    out, steps = tuple(task.output_shape), task.input_shape[0]
    if task.head == "sigmoid" and out not in ((), (1,)):
        return f"predicts one probability, but output_shape is {out}"
    if task.head in ("softmax", "linear", "mixture") and len(out) != 1:
        return f"needs a 1-D output_shape, got {out}"
    if task.head == "step_sigmoid" and out not in ((steps,), (steps, 1)):
        return f"needs output_shape ({steps}, 1) to match {steps} input steps, got {out}"
    if task.head == "sequence_softmax" and len(out) != 2:
        return f"needs a (steps, classes) output_shape, got {out}"
    return None


def add_head(x: Any, task: Task) -> Any:
    """Apply the standard head for ``task.head`` (not the architecture-owned ones) to body output ``x``."""
    if task.head == "softmax":
        return keras.layers.Dense(task.output_shape[-1], activation="softmax", name="head")(x)
    if task.head == "sigmoid":
        return keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    if task.head == "linear":
        return keras.layers.Dense(task.output_shape[-1], name="head")(x)
    if task.head == "step_sigmoid":
        dense = keras.layers.Dense(1, activation="sigmoid")
        return keras.layers.TimeDistributed(dense, name="head")(x)
    raise ValueError(f"head {task.head!r} is built by the {OWNED_HEADS.get(task.head, '?')} architecture")
