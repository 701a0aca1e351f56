"""DVC stage: draw the train/validation/test raw tables of one problem as Parquet."""

from __future__ import annotations

import argparse

from lstmops import paths
from lstmops.config import load_settings, problem_settings
from lstmops.data.io import write_table
from lstmops.data.drift import generate_at
from lstmops.entry import run_main
from lstmops.problems import get_problem
from lstmops.seeding import rng_for

SPLITS = ("train", "validation", "test")


def main() -> None:
    """Parse the problem name, generate its three splits, write them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("problem")
    args = parser.parse_args()
    settings = load_settings(paths.params_file())
    cfg = problem_settings(settings, args.problem)
    module = get_problem(args.problem)
    tables = {
        split: generate_at(
            module, cfg.process, cfg.drift, getattr(cfg.sizes, split),
            rng_for(settings.seed, args.problem, split), settings.as_of,
        )
        for split in SPLITS
    }
    for split, table in tables.items():
        write_table(table, paths.raw_split(args.problem, split))
    print(f"generate {args.problem}: " + ", ".join(f"{s} {len(t)} rows" for s, t in tables.items()))


if __name__ == "__main__":
    run_main(main, "generate")
