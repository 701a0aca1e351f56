"""Encoder-decoder LSTM: sequence in, sequence of classes out (the addition problem's model)."""

from __future__ import annotations

import keras

from lstmops.modeling.architectures._common import (check_direction, check_sequence_input, compile_model, lstm,
                                           lstm_stack, model_input)
from lstmops.modeling.architectures._heads import check_head
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "encoder_decoder"
HEADS = ("sequence_softmax",)


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """``layers`` x ``LSTM(cells)`` encoder -> ``RepeatVector(out_steps)`` ->
    ``LSTM(decoder_cells, return_sequences=True)`` -> ``TimeDistributed(Dense(classes, softmax))``."""
    check_sequence_input(NAME, task)
    check_head(NAME, task, HEADS)
    check_direction(NAME, spec)
    out_steps, classes = task.output_shape
    inputs, x = model_input(task)
    x = lstm_stack(x, spec, layers=spec.layers, per_step=False, prefix="encoder")
    x = keras.layers.RepeatVector(out_steps, name="repeat")(x)
    x = lstm(spec, spec.decoder_cells, return_sequences=True, name="decoder")(x)
    outputs = keras.layers.TimeDistributed(keras.layers.Dense(classes, activation="softmax"), name="head")(x)
    model = keras.Model(inputs, outputs, name=NAME)
    return compile_model(model, spec, task)
