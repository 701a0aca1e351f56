"""Print where `make run` left its results, with each problem's headline skill."""

from __future__ import annotations

import json

from lstmops import paths
from lstmops.problems import PROBLEMS


def _read(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _skill_line(problem: str) -> str:
    data = _read(paths.statistics_file(problem))
    if not data:
        return f"  {problem:<15} not evaluated yet"
    name = data["primary_metric"]
    m = data["metrics"][name]
    # What register did on this machine: a git-ignored record, not a build output.
    version = _read(paths.registered_file(problem))
    return (f"  {problem:<15} {data['architecture']:<16} {name} {m['mean']:.4f} ± {m['std']:.4f} "
            f"over {m['n']} runs (min {m['min']:.4f}, max {m['max']:.4f})"
            + (f"; registered v{version.get('version')}" if version else ""))


def main() -> None:
    """Print the locations of data, reports, models and the registry, and the skills."""
    root = paths.repo_root()
    print("lstmops build finished. Results:")
    print(f"  raw tables        {root / 'data/raw'}/<problem>/*.parquet")
    print(f"  data contracts    {root / 'data/validated'}/<problem>.json, Data Docs {root / 'data/docs'}/<problem>/<split>/index.html")
    print(f"  prepared arrays   {root / 'data/prepared'}/<problem>/ (with preprocessing.json)")
    print(f"  metrics, plots    {root / 'metrics'}/<problem>/ (`dvc metrics show`, statistics.json, *.png)")
    print(f"  run times         {root / 'metrics'}/<problem>/timings.json (this machine's, not in git)")
    print(f"  finalized models  {root / 'models'}/<problem>/")
    print(f"  registry          {paths.registry_dir()} (`lstmops models list`)")
    print(f"  update runs       {root / 'updates'}/<problem>/<date>/gate.json; batches {root / 'data/batches'}/; "
          "proposals: `lstmops proposals list`")
    print("Skill (mean ± std over repeated runs, each on fresh test data):")
    for problem in PROBLEMS:
        print(_skill_line(problem))


if __name__ == "__main__":
    main()
