"""Bidirectional LSTM: ``spec.layers`` x ``Bidirectional(LSTM)`` then the head (cumulative sum's model)."""

from __future__ import annotations

import keras

from lstmops.modeling.architectures._common import (check_direction, check_sequence_input, compile_model, lstm,
                                           model_input)
from lstmops.modeling.architectures._heads import PER_EXAMPLE_HEADS, PER_STEP_HEADS, add_head, check_head, per_step
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "bidirectional"
HEADS = PER_EXAMPLE_HEADS + PER_STEP_HEADS


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """``layers`` x ``Bidirectional(LSTM(cells))`` (forward and backward outputs concatenated) -> head."""
    check_sequence_input(NAME, task)
    check_head(NAME, task, HEADS)
    check_direction(NAME, spec)
    inputs, x = model_input(task)
    for i in range(spec.layers):
        sequences = per_step(task) or i < spec.layers - 1
        x = keras.layers.Bidirectional(lstm(spec, spec.cells, return_sequences=sequences),
                                       name=f"bilstm_{i + 1}")(x)
    model = keras.Model(inputs, add_head(x, task), name=NAME)
    return compile_model(model, spec, task)
