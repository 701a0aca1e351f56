"""DVC stage: register the finalized model of one problem in the model registry.

A new version is added only when the bundle differs from the newest registered one
(same checksums: nothing to do). It becomes champion only when the problem has none:
replacing a champion is the update flow's job, with a person's approval.
The stage has no DVC outputs: the registry is machine-local state (v2 on one machine is
v1 on a fresh one), so what it did is recorded in the git-ignored
``metrics/<problem>/registered.json`` ({problem, version, champion}), never in git.
DVC still skips the stage while its dependencies are unchanged.
"""

from __future__ import annotations

import json

from lstmops import paths
from lstmops.entry import problem_arg, run_main
from lstmops.registry.versions import PromotionConflict, Registry


def main() -> None:
    """Register models/<problem>; make it champion if there is none."""
    problem = problem_arg(__doc__)  # no settings needed: the bundle carries its own
    registry = Registry()
    done = registry.register(problem, paths.models_dir(problem), actor="dvc repro")
    version = done.version.version
    action = f"registered as v{version}" if done.created else f"unchanged (already v{version})"
    try:
        registry.promote(problem, version, reason=f"first registered model of {problem}",
                         actor="dvc repro", evidence=f"metrics/{problem}/final.json", expect_champion=None)
        action += ", champion (the problem had none)"
    except PromotionConflict:
        pass  # a champion exists: only the update flow replaces it
    champion = registry.aliases(problem).get("champion")
    out = paths.registered_file(problem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"problem": problem, "version": version, "champion": champion}, indent=1) + "\n",
                   encoding="utf-8")
    removed = f"; removed orphan folder(s) {', '.join(done.removed_orphans)}" if done.removed_orphans else ""
    print(f"register {problem}: {action}; champion v{champion}{removed}")


if __name__ == "__main__":
    run_main(main, "register")
