"""The six LSTM architecture families, discoverable by name.

An architecture is the body of a model; the problem decides its head and loss through
a :class:`Task`. So any architecture whose shapes fit a problem can be tried on it
(vanilla vs stacked on the damped sine; forward, backward and bidirectional on the
cumulative sum). Each module exposes ``build(spec: ModelSpec, task: Task) ->
keras.Model`` returning a compiled model. Model code uses Keras 3 APIs only, so it
runs on the JAX, TensorFlow or PyTorch backend.

Nothing here imports Keras: modules load on first use, so config parsing and
``--help`` stay free of the ~4 s Keras import.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from lstmops.modeling.architectures.spec import ARCHITECTURE_NAMES, Head, ModelSpec, Task

if TYPE_CHECKING:
    import keras

__all__ = ["ARCHITECTURES", "ARCHITECTURE_NAMES", "Head", "ModelSpec", "Task", "build_model",
           "custom_objects", "get_architecture", "resolve_loss"]


def get_architecture(name: str) -> ModuleType:
    """The module of an architecture, imported on first use (Keras loads only then)."""
    if name not in ARCHITECTURE_NAMES:
        raise KeyError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURE_NAMES)})")
    return importlib.import_module(f"lstmops.modeling.architectures.{name}")


class _Registry(Mapping[str, ModuleType]):
    """Name -> architecture module; listing names imports nothing, looking one up imports it."""

    def __getitem__(self, name: str) -> ModuleType:
        return get_architecture(name)

    def __contains__(self, name: object) -> bool:  # Mapping's default would import the module
        return name in ARCHITECTURE_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(ARCHITECTURE_NAMES)

    def __len__(self) -> int:
        return len(ARCHITECTURE_NAMES)

    def __repr__(self) -> str:
        return f"ARCHITECTURES({', '.join(ARCHITECTURE_NAMES)})"


ARCHITECTURES: Mapping[str, ModuleType] = _Registry()


def build_model(name: str, spec: ModelSpec, task: Task) -> "keras.Model":
    """Build and compile architecture ``name`` for ``task``.

    Raises:
        KeyError: ``name`` is not an architecture (the message lists the known ones).
        ValueError: the architecture does not fit the task or the spec (one line).
    """
    return get_architecture(name).build(spec, task)


def resolve_loss(name: str) -> Any:
    """What ``model.compile(loss=...)`` needs for a ``Task.loss`` name (a project loss or a Keras name)."""
    if name == "mixture_nll":
        return get_architecture("generative").mixture_nll
    return name


def custom_objects() -> dict[str, Any]:
    """The project's own serialisable Keras objects, for ``load_model``/``model_from_json``.

    Calling this imports the modules that define them, which also registers them
    (``lstmops>...``), so later loads in the process find them without the argument.
    """
    from lstmops.modeling.architectures._common import ProjectedLSTM, ReverseTime
    from lstmops.modeling.architectures.frames import FrameConv2D, FrameConvPool2D, FramePool2D

    return {"lstmops>ReverseTime": ReverseTime, "lstmops>mixture_nll": resolve_loss("mixture_nll"),
            "lstmops>FrameConv2D": FrameConv2D, "lstmops>FramePool2D": FramePool2D,
            "lstmops>FrameConvPool2D": FrameConvPool2D, "lstmops>ProjectedLSTM": ProjectedLSTM}
