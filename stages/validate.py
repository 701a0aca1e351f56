"""DVC stage: check every raw split of one problem against its data contract.

Writes a JSON result (per split and expectation) and Great Expectations Data Docs;
any violation fails the stage with one line per failing split naming what failed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from lstmops import paths
from lstmops.cores import usable_cores
from lstmops.data.io import read_table
from lstmops.entry import StageError, run_main, stage_args
from lstmops.problems import get_problem
from lstmops.data.validation import validate_tables

SPLITS = ("train", "validation", "test")


def _relative(path: str | None, root: Path) -> str | None:
    """A repo-relative POSIX path: the result file must be the same on every machine."""
    if path is None:
        return None
    return Path(path).resolve().relative_to(root).as_posix()


def main() -> None:
    """Validate the three splits; write the results; fail on any violation."""
    ctx = stage_args(__doc__)
    problem = ctx.problem
    contract = get_problem(problem).contract(ctx.cfg.process)
    docs = paths.data_docs_dir(problem)
    shutil.rmtree(docs, ignore_errors=True)
    # The splits side by side, one process per core: validation is pure Python.
    tables = {split: read_table(paths.raw_split(problem, split)) for split in SPLITS}
    reports = validate_tables(tables, contract, suite_prefix=problem, docs_dir=docs, workers=usable_cores())
    summary = {"success": all(r.success for r in reports.values())}
    summary |= {split: r.to_dict() | {"docs": _relative(r.docs_index, ctx.root)} for split, r in reports.items()}
    result = paths.validation_result(problem)
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    failed = [r.summary() for r in reports.values() if not r.success]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        raise StageError(f"{problem}: data contract violated in {len(failed)} split(s); see {docs}")
    n = sum(len(r.results) for r in reports.values())
    print(f"validate {problem}: {n} expectations passed on {len(reports)} splits")


if __name__ == "__main__":
    run_main(main, "validate")
