"""CNN-LSTM: a small per-frame CNN feeding an LSTM (the moving-square video model)."""

from __future__ import annotations

import keras

from lstmops.modeling.architectures._common import check_direction, compile_model, lstm_stack, mismatch, model_input
from lstmops.modeling.architectures.frames import FrameConvPool2D, window_too_large
from lstmops.modeling.architectures._heads import PER_EXAMPLE_HEADS, PER_STEP_HEADS, add_head, check_head, per_step
from lstmops.modeling.architectures.spec import ModelSpec, Task

NAME = "cnn_lstm"
HEADS = PER_EXAMPLE_HEADS + PER_STEP_HEADS


def _check_frames(spec: ModelSpec, task: Task) -> None:
    if len(task.input_shape) != 4:
        raise mismatch(NAME, f"needs (frames, height, width, channels) inputs, got input_shape "
                             f"{tuple(task.input_shape)}")
    _, height, width, _ = task.input_shape
    side = min(height, width) - spec.kernel + 1  # after a 'valid' convolution
    if side < spec.pool:
        raise mismatch(NAME, f"frames of {height}x{width} are too small for kernel {spec.kernel} "
                             f"then pool {spec.pool}")
    refusal = window_too_large(spec.kernel, spec.pool, task.input_shape[-1]) if spec.binary_frames else None
    if refusal:
        raise mismatch(NAME, f"binary_frames: {refusal}")


def build(spec: ModelSpec, task: Task) -> keras.Model:
    """Per frame ``Conv2D(filters, kernel, relu)`` -> ``MaxPooling2D(pool)`` -> ``Flatten``; then
    ``layers`` x ``LSTM(cells)`` -> head, compiled.

    The per-frame convolution and pooling are one fused layer of :mod:`frames` (the
    values ``TimeDistributed(Conv2D)`` then ``TimeDistributed(MaxPooling2D)`` give,
    several times faster on CPU); with ``binary_frames`` it looks pooled values up by the
    on/off pattern of their window.
    """
    _check_frames(spec, task)
    check_head(NAME, task, HEADS)
    check_direction(NAME, spec)
    inputs, x = model_input(task)
    x = FrameConvPool2D(spec.filters, spec.kernel, spec.pool, activation="relu", binary=spec.binary_frames,
                        name="frames_conv_pool")(x)
    frames, height, width, channels = x.shape[1:]
    x = keras.layers.Reshape((frames, height * width * channels), name="frames_flatten")(x)
    x = lstm_stack(x, spec, layers=spec.layers, per_step=per_step(task), wide_input=True)
    model = keras.Model(inputs, add_head(x, task), name=NAME)
    return compile_model(model, spec, task)
