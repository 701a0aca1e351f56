"""Step 4's glue: the gate's rules from params.yaml and the verdict in the problem's own words."""

from __future__ import annotations

import numpy as np

from lstmops import paths
from lstmops.config import load_settings
from lstmops.update.compare import compare, effect_in_words, gate_rules, headline, needs_more_repeats
from lstmops.update.gate import Verdict

SETTINGS = load_settings(paths.params_file(paths.repo_root()))


def _rows(rng, accuracies, n=300):
    return (rng.random((len(accuracies), n)) < np.asarray(accuracies)[:, None]).astype(float)


def test_rules_follow_params_and_the_metrics_direction():
    assert gate_rules(SETTINGS, "echo").higher_is_better
    assert not gate_rules(SETTINGS, "damped_sine").higher_is_better
    assert gate_rules(SETTINGS, "echo").min_gain == SETTINGS.update.gate.min_gain["echo"]


def test_a_drifted_echo_champion_is_replaced_by_a_weights_only_update_and_said_in_words():
    rng = np.random.default_rng(0)
    arms = {"a": _rows(rng, [0.99] * 10), "b": _rows(rng, [0.97] * 10), "c": _rows(rng, [0.5] * 10),
            "d": _rows(rng, [0.6] * 10), "baseline": _rows(rng, [0.1] * 10)}
    decision = compare(SETTINGS, "echo", _rows(rng, [0.1])[0], arms)
    assert decision.verdict is Verdict.PROMOTE and decision.winner == "a"
    line = headline("echo", decision)
    assert line.startswith("echo: PROMOTE candidate (a), accuracy 0.9") and "P(better) 1.00" in line
    gain = decision.means["a"] - decision.means["deployed"]
    assert effect_in_words("echo", decision).startswith(f"gets {100 * gain:.0f} more in 100 right")
    assert not needs_more_repeats(decision, 10, 20)


def test_no_change_is_worded_and_never_adds_repeats():
    rng = np.random.default_rng(1)
    same = {name: _rows(rng, [0.9] * 10) for name in ("a", "b", "c", "d", "baseline")}
    decision = compare(SETTINGS, "echo", _rows(rng, [0.9])[0], same)
    assert decision.verdict is not Verdict.PROMOTE
    assert "no candidate" in effect_in_words("echo", decision)
    assert headline("echo", decision).startswith(f"echo: {decision.verdict.value}, best candidate")


def test_diverged_arms_are_left_out_and_a_diverged_baseline_is_a_clear_error():
    import pytest

    from lstmops.errors import DataError

    rng = np.random.default_rng(2)
    arms = {"a": _rows(rng, [0.99] * 6), "b": np.empty((0, 300)), "baseline": _rows(rng, [0.2] * 6)}
    decision = compare(SETTINGS, "echo", _rows(rng, [0.2])[0], arms)
    assert [r.name for r in decision.candidates] == ["a"]
    with pytest.raises(DataError, match="fair baseline diverged"):
        compare(SETTINGS, "echo", _rows(rng, [0.2])[0], {"a": arms["a"], "baseline": np.empty((0, 300))})


def test_the_update_command_refuses_bad_names_and_dates_before_starting_prefect():
    # in a process of its own: importing Prefect inside a test that captures output would bind
    # Prefect's log handler to a stream pytest closes later
    import subprocess
    import sys
    import time

    script = str(paths.repo_root() / "flows" / "update.py")
    for args, expected in ((["nonsense", "--no-wait"], "update: error: unknown problem 'nonsense'"),
                           (["echo", "--as-of", "2027-13-40"], "is not a date")):
        started = time.monotonic()
        done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert "temporary server" not in done.stdout + done.stderr  # refused before Prefect starts one
        assert time.monotonic() - started < 30
