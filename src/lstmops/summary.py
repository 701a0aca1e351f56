"""Print where `make run` left its results, with each problem's headline skill."""

from __future__ import annotations

import json

from lstmops import paths
from lstmops.problems import PROBLEMS


def _skill_line(problem: str) -> str:
    evaluation = paths.metrics_dir(problem) / "evaluation.json"
    if not evaluation.is_file():
        return f"  {problem:<15} not evaluated yet"
    data = json.loads(evaluation.read_text(encoding="utf-8"))
    name = data["primary_metric"]
    m = data["metrics"][name]
    registered = paths.metrics_dir(problem) / "registered.json"
    version = json.loads(registered.read_text(encoding="utf-8")) if registered.is_file() else {}
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
    print(f"  metrics, plots    {root / 'metrics'}/<problem>/ (`dvc metrics show`, *.png)")
    print(f"  finalized models  {root / 'models'}/<problem>/")
    print(f"  registry          {paths.registry_dir()} (`lstmops models list`)")
    print("Skill (mean ± std over repeated runs, each on fresh test data):")
    for problem in PROBLEMS:
        print(_skill_line(problem))


if __name__ == "__main__":
    main()
