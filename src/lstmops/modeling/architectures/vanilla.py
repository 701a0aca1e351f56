"""Vanilla LSTM: one LSTM layer then the problem's head (the echo problem's reference model)."""

from __future__ import annotations

import keras

from lstmops.modeling.architectures._common import (check_sequence_input, compile_model, lstm_stack, mismatch,
                                           model_input)
from lstmops.modeling.architectures._heads import PER_EXAMPLE_HEADS, PER_STEP_HEADS, add_head, check_head, per_step
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "vanilla"
HEADS = PER_EXAMPLE_HEADS + PER_STEP_HEADS


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """``LSTM(cells)`` (reading backwards if ``spec.direction == "backward"``) -> head, compiled."""
    check_sequence_input(NAME, task)
    check_head(NAME, task, HEADS)
    if spec.layers != 1:
        raise mismatch(NAME, f"has one LSTM layer, got layers={spec.layers} (use 'stacked')")
    inputs, x = model_input(task)
    x = lstm_stack(x, spec, layers=1, per_step=per_step(task), backward=spec.direction == "backward")
    model = keras.Model(inputs, add_head(x, task), name=NAME)
    return compile_model(model, spec, task)
