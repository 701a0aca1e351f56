"""DVC stage: register the finalized model of one problem in the model registry.

A new version is added only when the bundle differs from the newest registered one
(same checksums: nothing to do). It becomes champion only when the problem has none:
replacing a champion is the update flow's job, with a person's approval.
Writes ``metrics/<problem>/registered.json`` ({problem, version, champion}) for DVC.
"""

from __future__ import annotations

import argparse
import json

from lstmops import paths
from lstmops.entry import run_main
from lstmops.registry.versions import PromotionConflict, Registry


def main() -> None:
    """Register models/<problem>; make it champion if there is none."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("problem")
    args = parser.parse_args()
    registry = Registry()
    done = registry.register(args.problem, paths.models_dir(args.problem), actor="dvc repro")
    version = done.version.version
    action = f"registered as v{version}" if done.created else f"unchanged (already v{version})"
    try:
        registry.promote(args.problem, version, reason=f"first registered model of {args.problem}",
                         actor="dvc repro", evidence=f"metrics/{args.problem}/final.json", expect_champion=None)
        action += ", champion (the problem had none)"
    except PromotionConflict:
        pass  # a champion exists: only the update flow replaces it
    champion = registry.aliases(args.problem).get("champion")
    out = paths.registered_file(args.problem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"problem": args.problem, "version": version, "champion": champion}, indent=1) + "\n",
                   encoding="utf-8")
    removed = f"; removed orphan folder(s) {', '.join(done.removed_orphans)}" if done.removed_orphans else ""
    print(f"register {args.problem}: {action}; champion v{champion}{removed}")


if __name__ == "__main__":
    run_main(main, "register")
