"""``lstmops models export``: a registered version in a format other tools serve.

- ``saved_model``: a TensorFlow SavedModel (``model/``, with a ``serve`` signature),
  written by Keras under the TensorFlow backend (``model.export(..., format=
  "tf_saved_model")``). It needs TensorFlow alone to load and run: TF Serving, TFLite's
  converter, ``tf.saved_model.load``. The project's own layers are traced into the graph.
- ``keras``: one ``.keras`` file (architecture, weights; no optimizer state). Loading it
  needs Keras and, for the architectures with the project's own layers (CNN-LSTM frames,
  the bidirectional time reversal, the generative mixture loss), ``import lstmops`` first.

Either way the folder also holds the fitted preprocessing (``preprocessing.json``, the
bundle's own file: what the raw columns become) and ``export.json``: the problem,
version, input and output shapes and dtypes, how outputs are read, the file checksums.
The model takes *prepared* inputs; ``lstmops prepare``-style preprocessing is the
caller's side (see the README's "Exporting a model").

The export is written next to the target and renamed into place when complete: a failed
export leaves nothing, and an existing target is replaced only with ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lstmops.errors import InputError, LstmopsError
from lstmops.modeling.bundle import PREPROCESSING, sha256

FORMATS = ("saved_model", "keras")
MANIFEST = "export.json"
SAVED_MODEL_DIR = "model"


class ExportError(LstmopsError):
    """The model could not be written in the asked format (e.g. TensorFlow is not installed)."""


def export_version(registry: Any, problem: str, ref: str | int | None, fmt: str, out: Path,
                   force: bool = False) -> dict:
    """Export version ``ref`` of ``problem`` to the folder ``out``; returns the manifest.

    Raises:
        InputError: an unknown format, or ``out`` exists and is not empty (without ``force``).
        ExportError: the export itself failed (its cause in the message).
    """
    from lstmops.features.preparers import load_preparer

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file, not a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"{out} exists and is not empty; give another -o, or --force to replace it")
    mv = registry.resolve(problem, ref)
    registry.verify(mv)
    preparer = load_preparer(Path(mv.folder) / PREPROCESSING)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would carry over to the export
    try:
        if fmt == "saved_model":
            model_path = SAVED_MODEL_DIR
            output_shape = _saved_model(Path(mv.folder), work / model_path)
        else:
            model_path = f"{problem}-v{mv.version}.keras"
            output_shape = _keras_file(Path(mv.folder), work / model_path)
        shutil.copy2(Path(mv.folder) / PREPROCESSING, work / PREPROCESSING)
        manifest = _manifest(mv, preparer, fmt, model_path, output_shape, work)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _keras_file(folder: Path, path: Path) -> list:
    from lstmops.modeling.bundle import load_model

    model = load_model(folder)
    model.save(path, include_optimizer=False)
    return list(model.output_shape)


def _saved_model(folder: Path, target: Path) -> list:
    """Write the SavedModel under the TensorFlow backend (in a child process when this one runs
    another); returns the model's output shape."""
    if os.environ.get("KERAS_BACKEND", "jax") == "tensorflow" and "keras" in sys.modules:
        return _write_saved_model(folder, target)
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise ExportError("--format saved_model needs TensorFlow (pip install tensorflow); "
                          "--format keras does not")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "lstmops.serving.export", str(folder), str(target)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ExportError("writing the SavedModel under TensorFlow failed: " + " | ".join(tail))
    return json.loads(done.stdout.strip().splitlines()[-1])


def _write_saved_model(folder: Path, target: Path) -> list:
    from lstmops.modeling.bundle import load_model

    model = load_model(folder)
    model.export(str(target), format="tf_saved_model", verbose=False)
    return list(model.output_shape)


def _manifest(mv: Any, preparer: Any, fmt: str, model_path: str, output_shape: list, work: Path) -> dict:
    files = sorted(p for p in work.rglob("*") if p.is_file())
    return {
        "problem": mv.problem,
        "version": mv.version,
        "architecture": mv.architecture,
        "format": fmt,
        "model": model_path,
        "signature": "serve" if fmt == "saved_model" else None,
        "input": {"shape": [None, *preparer.input_shape], "dtype": "float32",
                  "meaning": "prepared inputs: the raw columns through preprocessing.json"},
        "output": {"shape": output_shape, "dtype": "float32",
                   "meaning": "raw model outputs, decoded as preprocessing.json describes"},
        "preprocessing": PREPROCESSING,
        "exported_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "exported_from": str(mv.folder),
        "checksums": {str(p.relative_to(work)): sha256(p) for p in files},
    }


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m lstmops.serving.export BUNDLE TARGET`` (KERAS_BACKEND=tensorflow)."""
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(_write_saved_model(Path(args[0]), Path(args[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
