"""A finalized model on disk: architecture JSON and weights as separate files, the fitted
preprocessing, metadata and sha256 checksums of every file.

Separate architecture and weights make a weights-only update a small, low-risk change.
Loading verifies the checksums first and never executes code from the files: the
architecture is rebuilt from JSON with Keras safe mode, and nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lstmops.errors import BundleError

ARCHITECTURE = "model.json"
WEIGHTS = "model.weights.h5"
PREPROCESSING = "preprocessing.json"
METADATA = "metadata.json"
CHECKSUMS = "checksums.json"
FILES = (ARCHITECTURE, WEIGHTS, PREPROCESSING, METADATA)




def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_bundle(model: Any, preparer: Any, metadata: dict, folder: Path) -> dict[str, str]:
    """Write the four files and their checksums into ``folder``; returns the checksums."""
    from lstmops.features.transformers import save_json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / ARCHITECTURE).write_text(model.to_json(indent=1) + "\n", encoding="utf-8")
    model.save_weights(folder / WEIGHTS)
    save_json(preparer, folder / PREPROCESSING)
    (folder / METADATA).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    sums = {name: sha256(folder / name) for name in FILES}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n", encoding="utf-8")
    return sums


def verify_bundle(folder: Path) -> dict[str, str]:
    """Check every file against ``checksums.json``; raise :class:`BundleError` naming the first bad one."""
    index = folder / CHECKSUMS
    if not index.is_file():
        raise BundleError(f"model bundle {folder}: no {CHECKSUMS}")
    sums = json.loads(index.read_text(encoding="utf-8"))
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise BundleError(f"model bundle {folder}: {name} is missing")
        if sha256(path) != sums.get(name):
            raise BundleError(f"model bundle {folder}: {name} does not match its checksum (tampered or corrupt)")
    return sums


def _zero_initializers(config: Any) -> None:
    """Replace every initializer in a model config by zeros, in place.

    The weights file overwrites every variable right after: drawing random and
    orthogonal initial values first would only cost seconds of JAX compilation.
    """
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_initializer") and value is not None:
                config[key] = {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                               "registered_name": None}
            else:
                _zero_initializers(value)
    elif isinstance(config, list):
        for value in config:
            _zero_initializers(value)


def load_model(folder: Path) -> Any:
    """Rebuild a bundle's model for inference: JSON in Keras safe mode, then its weights.

    No compile configuration (no optimizer or loss is needed to predict), so a weights
    file is all the state there is. Call only after the checksums have been verified.
    """
    from lstmops.modeling.training import use_default_backend

    use_default_backend()
    import keras

    from lstmops.modeling.architectures import custom_objects

    config = json.loads((folder / ARCHITECTURE).read_text(encoding="utf-8"))
    config.pop("compile_config", None)
    _zero_initializers(config)
    model = keras.saving.deserialize_keras_object(config, custom_objects=custom_objects(), safe_mode=True)
    model.load_weights(folder / WEIGHTS)
    return model


def load_bundle(folder: Path) -> tuple[Any, Any, dict]:
    """Verify, then load (model, preparer, metadata) from ``folder``."""
    verify_bundle(folder)
    from lstmops.features.preparers import load_preparer

    metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    return load_model(folder), load_preparer(folder / PREPROCESSING), metadata
