"""Typed architecture settings and the task a problem poses; pure data, no Keras import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ARCHITECTURE_NAMES = ("vanilla", "stacked", "cnn_lstm", "encoder_decoder", "bidirectional", "generative")

Head = Literal["softmax", "sigmoid", "linear", "step_sigmoid", "sequence_softmax", "mixture"]


class ModelSpec(BaseModel):
    """Typed model and optimiser settings from ``params.yaml`` (``problems.<p>.model``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cells: int = Field(50, gt=0)                 # memory cells per LSTM layer
    layers: int = Field(1, ge=1)                 # stacked LSTM layers (encoder side for seq2seq)
    decoder_cells: int = Field(50, gt=0)         # encoder_decoder: cells of the decoder LSTM
    direction: Literal["forward", "backward"] = "forward"  # vanilla/stacked reading order
    dropout: float = Field(0.0, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)     # > 0 disables the fused cuDNN kernel
    # Let LSTMs take the fused cuDNN kernel on a GPU. Off by default: on an H200 with
    # Keras 3.15 / JAX 0.11 it returned wrong backward sequences (bidirectional layers)
    # and the encoder-decoder did not learn (4% vs 99.7% whole answers without it).
    cudnn: bool = False
    l2: float = Field(0.0, ge=0)                 # weight regularisation on LSTM kernels
    filters: int = Field(2, gt=0)                # cnn_lstm: Conv2D filters
    kernel: int = Field(2, gt=0)                 # cnn_lstm: Conv2D kernel size
    pool: int = Field(2, gt=0)                   # cnn_lstm: max-pooling size
    # cnn_lstm: the frames are on/off images (any non-zero pixel is on), so each pooled value is
    # looked up by its window's on/off pattern instead of computed: same outputs, ~14x faster layer
    binary_frames: bool = False
    mixtures: int = Field(5, gt=0)               # generative: Gaussian mixture components
    temperature: float = Field(1.0, ge=0)        # generative: sampling temperature when drawing (0 = means)
    optimizer: Literal["adam", "rmsprop", "sgd", "adamw"] = "adam"
    learning_rate: float = Field(0.001, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"  # cosine decays to 0 over all planned steps
    clipnorm: float | None = Field(None, gt=0)


@dataclass(frozen=True)
class Task:
    """What the problem asks of a model: shapes, head and loss.

    Attributes:
        input_shape: one example's input shape, e.g. (5, 10) or (50, 50, 50, 1).
        output_shape: one example's target shape, e.g. (10,), (2, 12), (10, 1).
        head: the output layer family (see :data:`Head`).
        loss: a Keras loss name, or "mixture_nll" for the generative head.
        steps_per_run: optimiser steps planned for the whole fit (for schedules).
    """

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    head: Head
    loss: str
    steps_per_run: int = 1000
