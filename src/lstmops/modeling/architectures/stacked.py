"""Stacked LSTM: ``spec.layers`` LSTM layers then the problem's head (the damped sine's reference model)."""

from __future__ import annotations

import keras

from lstmops.modeling.architectures._common import check_sequence_input, compile_model, lstm_stack, model_input
from lstmops.modeling.architectures._heads import PER_EXAMPLE_HEADS, PER_STEP_HEADS, add_head, check_head, per_step
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "stacked"
HEADS = PER_EXAMPLE_HEADS + PER_STEP_HEADS


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """``layers`` x ``LSTM(cells)`` (all but the last return sequences) -> head, compiled.

    With ``direction == "backward"`` the stack reads the sequence from its end; per-step
    outputs are put back in time order before the head.
    """
    check_sequence_input(NAME, task)
    check_head(NAME, task, HEADS)
    inputs, x = model_input(task)
    x = lstm_stack(x, spec, layers=spec.layers, per_step=per_step(task),
                   backward=spec.direction == "backward")
    model = keras.Model(inputs, add_head(x, task), name=NAME)
    return compile_model(model, spec, task)
