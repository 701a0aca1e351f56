"""DVC stage: check every raw split of one problem against its data contract.

Writes a JSON result (per split and expectation) and Great Expectations Data Docs;
any violation fails the stage with one line per failing split naming what failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from lstmops import paths
from lstmops.config import load_settings, problem_settings
from lstmops.data.io import read_table
from lstmops.entry import StageError, run_main
from lstmops.problems import get_problem
from lstmops.data.validation import validate_table

SPLITS = ("train", "validation", "test")


def main() -> None:
    """Validate the three splits; write the results; fail on any violation."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("problem")
    args = parser.parse_args()
    settings = load_settings(paths.params_file())
    contract = get_problem(args.problem).contract(problem_settings(settings, args.problem).process)
    docs = paths.data_docs_dir(args.problem)
    shutil.rmtree(docs, ignore_errors=True)
    reports = {
        split: validate_table(
            read_table(paths.raw_split(args.problem, split)), contract,
            suite_name=f"{args.problem}/{split}", docs_dir=docs / split,
        )
        for split in SPLITS
    }
    summary = {"success": all(r.success for r in reports.values())}
    summary |= {split: r.to_dict() for split, r in reports.items()}
    result = paths.validation_result(args.problem)
    result.parent.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    failed = [r.summary() for r in reports.values() if not r.success]
    if failed:
        print("\n".join(failed), file=sys.stderr)
        raise StageError(f"{args.problem}: data contract violated in {len(failed)} split(s); see {docs}")
    n = sum(len(r.results) for r in reports.values())
    print(f"validate {args.problem}: {n} expectations passed on {len(reports)} splits")


if __name__ == "__main__":
    run_main(main, "validate")
