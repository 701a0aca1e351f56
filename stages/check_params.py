"""DVC stage: validate the whole of params.yaml before any other stage may run.

Every data stage depends on this stage's output, so an invalid setting stops
`dvc repro` here, before DVC removes any earlier output to rebuild it. The output is
constant, so a valid edit re-runs only the stages whose own params changed.
"""

from __future__ import annotations

import json

from lstmops import paths
from lstmops.config import load_settings
from lstmops.entry import run_main


def main() -> None:
    """Parse params.yaml; write the constant marker."""
    settings = load_settings(paths.params_file())
    marker = paths.repo_root() / "data" / "params_ok.json"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"params_yaml": "valid"}) + "\n", encoding="utf-8")
    print(f"check_params: params.yaml is valid ({len(settings.problems)} problems)")


if __name__ == "__main__":
    run_main(main, "check_params")
