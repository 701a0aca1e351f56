"""Every DVC stage depends on every file of the library it runs.

A stage whose deps miss a module it imports is not re-run when that module changes,
so its outputs (metrics, models) silently go stale. For each stage of dvc.yaml, a fresh
interpreter imports the stage's script without running it, then follows every
``lstmops`` import it can see: the script's and each reached module's, at any depth
(the lazy imports inside functions too, found in the source), until nothing new
loads. Every file that ends up in ``sys.modules`` must be covered by the stage's deps.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_KEY = "echo"  # foreach stages are checked for one problem; ${key} is all that varies

# Runs in a fresh interpreter: argv[1:] are stage scripts. Prints each one's loaded lstmops files.
_COLLECT = r'''
import ast, importlib, json, os, pkgutil, runpy, sys, traceback, warnings
from pathlib import Path

def names_in(path, module):
    """Every lstmops module a source file may import, at any depth of its AST."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)  # may be a submodule
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.JoinedStr) and node.args[0].values
              and isinstance(node.args[0].values[0], ast.Constant)):
            prefix = str(node.args[0].values[0].value)  # import_module(f"lstmops.pkg.{name}"): any of pkg
            if prefix.endswith("."):
                pkg = importlib.import_module(prefix[:-1])
                yield from (f"{prefix}{m.name}" for m in pkgutil.iter_modules(pkg.__path__))

def load(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:  # the name exists but is an attribute, not a module: fine
            raise

def ours():
    return {n: m.__file__ for n, m in list(sys.modules.items())
            if (n == "lstmops" or n.startswith("lstmops.")) and getattr(m, "__file__", None)}

def collect(script):
    runpy.run_path(script, run_name="__dvc_deps_check__")  # the stage's guard keeps main() from running
    pending, done = [("__script__", script)], set()
    while pending:
        module, path = pending.pop()
        for name in names_in(path, module):
            if name == "lstmops" or name.startswith("lstmops."):
                load(name)
        done.add(module)
        pending += [(n, f) for n, f in ours().items() if n not in done and (n, f) not in pending]
    return sorted(set(ours().values()))

# Third-party libraries take most of the time and are not what is checked: load them once,
# then give each stage a forked child in which no lstmops module is loaded yet.
warnings.simplefilter("ignore")
for heavy in ("numpy", "pandas", "scipy.stats", "sklearn", "jax", "keras", "matplotlib", "great_expectations"):
    try:
        importlib.import_module(heavy)
    except ImportError:
        pass
assert not ours(), "a third-party import loaded lstmops"
for script in sys.argv[1:]:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            print(script + "\t" + json.dumps(collect(script)), flush=True)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if status:
        print(script + "\t" + json.dumps({"failed": status}), flush=True)
'''


def _stages() -> dict[str, dict]:
    """Every stage of dvc.yaml; a foreach stage expanded for EXAMPLE_KEY."""
    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    found = {}
    for name, stage in yaml.safe_load(text)["stages"].items():
        if "foreach" in stage:
            body = yaml.safe_load(json.dumps(stage["do"]).replace("${key}", EXAMPLE_KEY))
            found[f"{name}@{EXAMPLE_KEY}"] = body
        else:
            found[name] = stage
    return found


def _script(stage: dict) -> str:
    scripts = [t for t in shlex.split(stage["cmd"]) if t.endswith(".py")]
    assert len(scripts) == 1, f"expected one script in {stage['cmd']!r}"
    return scripts[0]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = _stages()


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    """The library files each stage loads, each stage in its own forked child of a fresh interpreter."""
    env = dict(os.environ) | {"PYTHONPATH": str(ROOT / "src"), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"),
                              "GX_ANALYTICS_ENABLED": "false"}
    scripts = sorted({_script(stage) for stage in STAGES.values()})
    done = subprocess.run([sys.executable, "-c", _COLLECT, *scripts], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    by_script = dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
    found = {}
    for name, stage in STAGES.items():
        files = json.loads(by_script.get(_script(stage), "null"))
        assert isinstance(files, list), f"{name}: importing {_script(stage)} failed:\n{done.stderr}"
        outside = [f for f in files if not Path(f).resolve().is_relative_to(ROOT)]
        assert not outside, f"{name}: lstmops loaded from outside this checkout: {outside[:3]}"
        found[name] = sorted(Path(f).resolve().relative_to(ROOT).as_posix() for f in files)
    return found


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_every_module_it_loads(name, loaded):
    deps = [str(d) for d in STAGES[name].get("deps", [])]
    assert _covered(_script(STAGES[name]), deps), f"{name}: its own script is not a dep"
    missing = [f for f in loaded[name] if not _covered(f, deps)]
    assert not missing, f"{name}: dvc.yaml deps miss {len(missing)} loaded module(s): {missing}"


def test_the_check_sees_lazy_imports(loaded):
    """evaluate imports lstmops.modeling.experiment only inside main(); it must be seen."""
    assert "src/lstmops/modeling/experiment.py" in loaded[f"evaluate@{EXAMPLE_KEY}"]
    assert "src/lstmops/modeling/training.py" in loaded[f"finalize@{EXAMPLE_KEY}"]


def test_coverage_rule():
    deps = ["src/lstmops/problems", "src/lstmops/config.py"]
    assert _covered("src/lstmops/problems/echo.py", deps)
    assert _covered("src/lstmops/config.py", deps)
    assert not _covered("src/lstmops/problems_extra.py", deps)
    assert not _covered("src/lstmops/configs.py", deps)


def test_per_problem_stages_share_one_preamble():
    """No stage parses its own arguments or loads params.yaml itself: entry.stage_args does."""
    import ast

    for name, stage in STAGES.items():
        if "@" not in name:
            continue
        tree = ast.parse((ROOT / _script(stage)).read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        assert "argparse" not in imported and "load_settings" not in imported, name
        assert imported & {"stage_args", "problem_arg"}, f"{name} does not use lstmops.entry's preamble"


def test_stage_args_parses_the_problem_and_loads_its_settings(monkeypatch):
    from lstmops.config import load_settings
    from lstmops.entry import stage_args
    from lstmops.errors import ConfigError

    monkeypatch.setenv("LSTMOPS_ROOT", str(ROOT))
    ctx = stage_args("a stage", ["echo"])
    assert ctx.problem == "echo" and ctx.root == ROOT
    assert ctx.cfg == load_settings(ROOT / "params.yaml").problems["echo"] == ctx.settings.problems["echo"]
    with pytest.raises(ConfigError, match="unknown problem 'nope'"):
        stage_args("a stage", ["nope"])


def test_bytecode_in_directory_deps_is_ignored():
    """Stages depend on whole source folders (problems, architectures); the bytecode Python
    writes into them on machines without PYTHONDONTWRITEBYTECODE must not change their
    hashes, or `dvc status` would report every stage changed after the first run."""
    def check_ignore(path: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).with_name("dvc")), "check-ignore", "--details", path],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})

    folders = ("src/lstmops/problems", "src/lstmops/modeling/architectures")
    for path in [f"{f}/__pycache__/x.cpython-311.pyc" for f in folders] + ["src/lstmops/problems/stray.pyc"]:
        done = check_ignore(path)
        assert done.returncode == 0, f"{path} is not ignored by DVC: {done.stdout}{done.stderr}"
        assert ".dvcignore" in done.stdout
    assert check_ignore("src/lstmops/problems/echo.py").returncode == 1, "a source file must stay a dependency"
