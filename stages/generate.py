"""DVC stage: draw the train/validation/test raw tables of one problem as Parquet."""

from __future__ import annotations

from lstmops import paths
from lstmops.data.io import write_table
from lstmops.data.drift import generate_at
from lstmops.entry import run_main, stage_args
from lstmops.problems import get_problem
from lstmops.seeding import rng_for

SPLITS = ("train", "validation", "test")


def main() -> None:
    """Parse the problem name, generate its three splits, write them."""
    ctx = stage_args(__doc__)
    settings, cfg, problem = ctx.settings, ctx.cfg, ctx.problem
    module = get_problem(problem)
    tables = {
        split: generate_at(
            module, cfg.process, cfg.drift, getattr(cfg.sizes, split),
            rng_for(settings.seed, problem, split), settings.as_of,
        )
        for split in SPLITS
    }
    for split, table in tables.items():
        write_table(table, paths.raw_split(problem, split))
    print(f"generate {problem}: " + ", ".join(f"{s} {len(t)} rows" for s, t in tables.items()))


if __name__ == "__main__":
    run_main(main, "generate")
