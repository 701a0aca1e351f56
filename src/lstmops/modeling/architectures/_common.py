"""Pieces every architecture shares: the input cast, LSTM layers, time reversal, compiling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

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
         name: str | None = None, wide_input: bool = False) -> keras.layers.LSTM:
    """An LSTM layer with the spec's dropout, recurrent dropout and L2 on its input kernel.

    ``wide_input``: a :class:`ProjectedLSTM`, for inputs of many features per step.
    """
    reg = keras.regularizers.L2(spec.l2) if spec.l2 > 0 else None
    return (ProjectedLSTM if wide_input else keras.layers.LSTM)(
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
               prefix: str = "lstm", wide_input: bool = False) -> Any:
    """``layers`` LSTMs of ``spec.cells``; all but the last return sequences, the last if ``per_step``.

    ``backward`` makes the first layer read the sequence in reverse (``go_backwards``);
    later layers read its (reversed-order) outputs forward, so the whole stack reads
    backwards, and per-step outputs are flipped back into time order at the end.
    ``wide_input`` makes the first layer a :class:`ProjectedLSTM`.
    """
    for i in range(layers):
        last = i == layers - 1
        x = lstm(spec, spec.cells, return_sequences=per_step or not last,
                 go_backwards=backward and i == 0, name=f"{prefix}_{i + 1}", wide_input=wide_input and i == 0)(x)
    if backward and per_step:
        x = ReverseTime(name="to_time_order")(x)
    return x


@keras.saving.register_keras_serializable(package="lstmops")
class ProjectedLSTM(keras.layers.LSTM):
    """A Keras ``LSTM`` that multiplies all steps' inputs by its input kernel at once.

    Keras' LSTM cell multiplies each step's input by the input kernel inside the loop
    over time. For wide inputs (the CNN-LSTM's 1,152 features per frame) that product is
    most of the layer's work, and inside the loop it runs as one small product per step,
    forwards and backwards. Here it is one product over the whole sequence before the
    loop, which keeps only the recurrent product in it. Same weights, same
    configuration, same values up to float rounding. It runs as Keras' own LSTM with
    dropout (whose masks Keras' loop draws and applies) and wherever Keras may pick the
    fused cuDNN kernel (``use_cudnn`` other than False: ``model.cudnn``).
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if cell.dropout or cell.recurrent_dropout or self.use_cudnn is not False:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        projected = ops.matmul(sequences, cell.kernel)
        if cell.use_bias:
            projected = projected + cell.bias
        recurrent, activation, gate = cell.recurrent_kernel, cell.activation, cell.recurrent_activation

        def step(z_in, states):
            h, c = states
            z_i, z_f, z_c, z_o = ops.split(z_in + ops.matmul(h, recurrent), 4, axis=-1)
            c = gate(z_f) * c + gate(z_i) * activation(z_c)  # Keras' gate order: input, forget, cell, output
            h = gate(z_o) * activation(c)
            return h, [h, c]

        from keras.src import backend  # the loop keras.layers.RNN itself runs (no public alias)

        initial_state = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        return backend.rnn(
            step, projected, initial_state, go_backwards=self.go_backwards, mask=mask, unroll=self.unroll,
            input_length=sequences.shape[1], zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences)


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
