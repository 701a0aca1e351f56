"""``lstmops models export``, and bundles moving between the JAX and TensorFlow backends.

The SavedModel of every architecture is loaded by TensorFlow alone (a child process that
never imports lstmops) and must give the outputs lstmops's serving path gives on the
same prepared inputs, within 1e-5. Bundles saved under one backend must predict the same
under the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_bundles import ARCHITECTURE, fit_table, tiny_bundles

TOL = 1e-5


def _registry(tmp_path: Path):
    from lstmops.registry import Registry

    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry")
    for problem, folder in tiny_bundles().items():
        reg.register(problem, folder, actor="tester")
        if reg.aliases(problem).get("champion") is None:
            reg.promote(problem, 1, reason="test", actor="tester")
    return reg


def _inputs(problem: str, folder: Path, n: int = 7) -> np.ndarray:
    from lstmops.features.preparers import load_preparer

    preparer = load_preparer(folder / "preprocessing.json")
    return preparer.inputs(fit_table(problem).head(n)).astype("float32")


def _served_outputs(folder: Path, x: np.ndarray) -> np.ndarray:
    """What lstmops's serving path computes from prepared inputs."""
    from lstmops.serving.predict import load_model, model_outputs

    return model_outputs(load_model(folder), x)


def _child(code: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return _registry(tmp_path_factory.mktemp("export-registry"))


TF_ONLY = """
import json, sys
import numpy as np
import tensorflow as tf
for problem, folder in json.loads(sys.argv[1]).items():
    x = np.load(folder + "/x.npy")
    loaded = tf.saved_model.load(folder + "/model")  # kept referenced: its variables live with it
    out = loaded.serve(tf.constant(x))
    out = out[0] if isinstance(out, (list, tuple)) else out
    np.save(folder + "/tf.npy", np.asarray(out))
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'lstmops')))
"""


def test_saved_models_run_in_tensorflow_alone_and_match_lstmops(registry, tmp_path):
    """Every architecture's SavedModel, loaded by TensorFlow in a process that never imports lstmops."""
    from lstmops.serving.export import export_version

    exports = {}
    for problem in sorted(ARCHITECTURE):
        out = tmp_path / problem
        manifest = export_version(registry, problem, 1, "saved_model", out)
        assert manifest["format"] == "saved_model" and manifest["problem"] == problem and manifest["version"] == 1
        assert (out / "model" / "saved_model.pb").is_file() and (out / "preprocessing.json").is_file()
        on_disk = json.loads((out / "export.json").read_text())
        x = _inputs(problem, tiny_bundles()[problem])
        assert on_disk["checksums"]["preprocessing.json"] and on_disk["input"]["shape"][1:] == list(x.shape[1:])
        np.save(out / "x.npy", x)
        exports[problem] = str(out)
    done = subprocess.run([sys.executable, "-c", TF_ONLY, json.dumps(exports)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []  # TensorFlow alone: lstmops never imported
    for problem, folder in exports.items():
        expected = _served_outputs(tiny_bundles()[problem], np.load(Path(folder) / "x.npy"))
        got = np.load(Path(folder) / "tf.npy")
        assert got.shape == expected.shape, problem
        assert np.max(np.abs(got - expected)) <= TOL, (problem, np.max(np.abs(got - expected)))


def test_keras_file_loads_and_predicts_the_same(registry, tmp_path):
    import keras

    from lstmops.modeling.architectures import custom_objects
    from lstmops.serving.export import export_version

    for problem in ("echo", "moving_square"):  # plain layers, and the project's own (frames)
        out = tmp_path / problem
        manifest = export_version(registry, problem, "champion", "keras", out)
        custom_objects()  # the project's layers registered, as the README says
        model = keras.saving.load_model(out / manifest["model"])
        folder = tiny_bundles()[problem]
        x = _inputs(problem, folder)
        assert np.max(np.abs(np.asarray(model.predict(x, verbose=0)) - _served_outputs(folder, x))) <= TOL


def test_export_refuses_to_overwrite_and_leaves_nothing_behind(registry, tmp_path):
    from lstmops.errors import InputError
    from lstmops.serving.export import export_version

    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        export_version(registry, "echo", 1, "keras", out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="--format"):
        export_version(registry, "echo", 1, "onnx", tmp_path / "x")
    export_version(registry, "echo", 1, "keras", out, force=True)
    assert not (out / "keep.txt").exists() and (out / "export.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written folder


def test_cli_export_names_bad_input(tmp_path):
    env = {"LSTMOPS_DB_URL": f"sqlite:///{tmp_path / 'none.db'}", "LSTMOPS_ROOT": str(tmp_path)}
    exe = Path(sys.executable).parent / "lstmops"
    done = subprocess.run([str(exe), "models", "export", "echo", "--format", "onnx", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, env={**os.environ, **env}, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--format must be one of saved_model, keras, not 'onnx'" in done.stderr
    assert not (tmp_path / "o").exists()


CROSS = """
import os, sys, json
os.environ["KERAS_BACKEND"] = {backend!r}
sys.path.insert(0, {tests!r})
import numpy as np
from pathlib import Path
from lstmops.serving.predict import load_model, model_outputs
from lstmops.features.preparers import load_preparer
from tiny_bundles import fit_table, save_tiny_bundle, ARCHITECTURE
if {build!r}:
    for problem in ARCHITECTURE:
        save_tiny_bundle(problem, Path({root!r}) / problem, seed=3)
for problem in ARCHITECTURE:
    folder = Path({root!r}) / problem
    x = load_preparer(folder / "preprocessing.json").inputs(fit_table(problem).head(7)).astype("float32")
    np.save(folder.parent / (problem + "-" + {backend!r} + ".npy"), model_outputs(load_model(folder), x))
import keras
print(keras.backend.backend())
"""


def test_bundles_cross_backends_both_ways(tmp_path):
    """Bundles saved under TensorFlow predict the same under JAX, and the reverse."""
    tests = str(Path(__file__).parent)
    for saved_by, loaded_by in (("tensorflow", "jax"), ("jax", "tensorflow")):
        root = tmp_path / f"saved-by-{saved_by}"
        root.mkdir()
        first = _child(CROSS.format(backend=saved_by, tests=tests, build=True, root=str(root)),
                       env={"KERAS_BACKEND": saved_by, "LSTMOPS_JAX_CACHE": "off"})
        assert first.returncode == 0 and first.stdout.strip().endswith(saved_by), first.stderr[-2000:]
        second = _child(CROSS.format(backend=loaded_by, tests=tests, build=False, root=str(root)),
                        env={"KERAS_BACKEND": loaded_by, "LSTMOPS_JAX_CACHE": "off"})
        assert second.returncode == 0 and second.stdout.strip().endswith(loaded_by), second.stderr[-2000:]
        for problem in ARCHITECTURE:
            a = np.load(root / f"{problem}-{saved_by}.npy")
            b = np.load(root / f"{problem}-{loaded_by}.npy")
            assert a.shape == b.shape and np.max(np.abs(a - b)) <= TOL, (problem, saved_by, np.max(np.abs(a - b)))
