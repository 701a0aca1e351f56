"""Pieces every architecture shares: the input cast, LSTM layers, time reversal, compiling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from lstmops.modeling.architectures.spec import ModelSpec, Task

_OPTIMIZERS: dict[str, type] = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
    "adamw": keras.optimizers.AdamW,
}


def mismatch(arch: str, what: str) -> ValueError:
    """The one-line error raised when a body does not fit a task or a setting."""
    return ValueError(f"architecture {arch!r}: {what}")


def model_input(task: Task) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """``(inputs, x)``: the model's ``Input`` and its float cast.

    ``Rescaling(1.0)`` is a serialisable cast, so uint8 one-hot codes and frames can be
    fed as they are stored (4x less memory than float32) and become floats in-graph.
    """
    inputs = keras.Input(shape=tuple(task.input_shape), name="inputs")
    return inputs, keras.layers.Rescaling(1.0, name="to_float")(inputs)


def lstm(spec: ModelSpec, units: int, *, return_sequences: bool, go_backwards: bool = False,
         name: str | None = None) -> keras.layers.LSTM:
    """An LSTM layer with the spec's dropout, recurrent dropout and L2 on its input kernel."""
    reg = keras.regularizers.L2(spec.l2) if spec.l2 > 0 else None
    return keras.layers.LSTM(
        units,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        dropout=spec.dropout,
        recurrent_dropout=spec.recurrent_dropout,
        kernel_regularizer=reg,
        use_cudnn="auto" if spec.cudnn else False,
        name=name,
    )


def lstm_stack(x: Any, spec: ModelSpec, *, layers: int, per_step: bool, backward: bool = False,
               prefix: str = "lstm") -> Any:
    """``layers`` LSTMs of ``spec.cells``; all but the last return sequences, the last if ``per_step``.

    ``backward`` makes the first layer read the sequence in reverse (``go_backwards``);
    later layers read its (reversed-order) outputs forward, so the whole stack reads
    backwards, and per-step outputs are flipped back into time order at the end.
    """
    for i in range(layers):
        last = i == layers - 1
        x = lstm(spec, spec.cells, return_sequences=per_step or not last,
                 go_backwards=backward and i == 0, name=f"{prefix}_{i + 1}")(x)
    if backward and per_step:
        x = ReverseTime(name="to_time_order")(x)
    return x


@keras.saving.register_keras_serializable(package="lstmops")
class ReverseTime(keras.layers.Layer):
    """Flip a ``(batch, time, ...)`` tensor along time; a named, safe-mode-loadable layer."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape


def learning_rate(spec: ModelSpec, task: Task) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The constant rate, or a cosine decay to 0 over the run's planned steps."""
    if spec.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(spec.learning_rate, decay_steps=task.steps_per_run)
    return spec.learning_rate


def optimizer(spec: ModelSpec, task: Task) -> keras.optimizers.Optimizer:
    """A fresh optimiser from the spec (name, rate or schedule, clipnorm)."""
    return _OPTIMIZERS[spec.optimizer](learning_rate=learning_rate(spec, task), clipnorm=spec.clipnorm)


def compile_model(model: keras.Model, spec: ModelSpec, task: Task,
                  loss: str | Callable[..., Any] | None = None) -> keras.Model:
    """Compile ``model`` with the spec's optimiser and ``loss`` (default: ``task.loss``); return it."""
    model.compile(optimizer=optimizer(spec, task), loss=loss if loss is not None else task.loss)
    return model


def check_sequence_input(arch: str, task: Task) -> None:
    """Raise unless one example is a ``(time, features)`` sequence."""
    if len(task.input_shape) != 2:
        raise mismatch(arch, f"needs (time, features) inputs, got input_shape {tuple(task.input_shape)}")


def check_direction(arch: str, spec: ModelSpec) -> None:
    """Raise when a reading direction is asked of an architecture that has no such option."""
    if spec.direction != "forward":
        raise mismatch(arch, f"direction {spec.direction!r} applies only to 'vanilla' and 'stacked'")
