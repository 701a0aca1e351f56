"""The stakeholder report: plain words and numbers from real records, offline pages, clear missing-data sentences."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from report_world import REASON, build_world

NETWORK = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def built(world):
    from lstmops.monitoring.report import build_report

    index = build_report(world.settings, registry=world.registry, store=world.store, root=world.root)
    return index


def _text(path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_index_lists_every_problem_in_plain_words_with_links_newest_first(world, built):
    from lstmops import paths

    assert built == paths.reports_dir(world.root) / "index.html"
    index = _text(built)
    for problem in world.settings.problems:
        assert f'id="{problem}"' in index
    assert "v2 deployed; accuracy" in index and "awaiting approval: yes, #1" in index
    assert f'href="echo-{world.run_id}.html"' in index and "PROMOTE" in index
    assert 'href="addition.html"' in index and "no model deployed; no skill measured yet; not monitored yet" in index


def test_the_run_page_shows_verdict_rules_effect_command_ledger_and_charts(world, built):
    page = _text(built.parent / f"echo-{world.run_id}.html")
    assert '<span class="verdict PROMOTE">PROMOTE</span>' in page
    for rule in ("enough repeats", "P(better than deployed) significant", "P(better than baseline) significant",
                 "gain over deployed at least 0"):
        assert rule in page
    assert '<span class="pass">passed</span>' in page
    assert "more in 100 right" in page and "candidate a" in page
    assert f"lstmops approve echo {world.proposal_id} --reason &quot;...&quot;" in page
    assert f"lstmops reject echo {world.proposal_id} --reason" in page and "lstmops-update" in page
    assert "clearly better after the drift &lt;b&gt;&amp;&lt;/b&gt; checked by hand" in page  # escaped
    assert REASON not in page
    assert re.search(r'<svg class="chart" id="skill-chart"[^>]*>.*?<path', page, re.S)
    assert re.search(r'<svg class="chart" id="arms-chart"[^>]*>.*?<path', page, re.S)
    assert "fair baseline" in page and "c: fresh on new data" in page and "1 diverged" in page
    assert "input drift" in page and "Skill holds" in page  # monitoring findings in words
    # Evidently's own page (relative) of the finding the page leads with: the flagged day of the last week
    assert f'href="../html/echo/day-{world.days[3]}.html"' in page


def test_pages_are_offline_and_hold_no_absolute_paths(world, built):
    for page in built.parent.glob("*.html"):
        text = _text(page)
        assert not NETWORK.search(text), page.name
        assert "<script" not in text and "<link" not in text
        assert str(world.root) not in text and "/tmp/" not in text, page.name


def test_missing_data_renders_clear_sentences(world, built):
    page = _text(built.parent / "addition.html")
    for sentence in ("No model is deployed yet.", "No update run of addition yet.",
                     "No predictions have been scored yet, so there is no skill over time to show.",
                     "Monitoring has not checked addition yet.", "No promotion or rollback has been recorded yet.",
                     "Nothing awaits a decision: no proposal is pending."):
        assert sentence in page
    assert "<svg" not in page


def test_a_run_without_gate_or_arms_says_so(world, built, tmp_path):
    from lstmops import paths
    from lstmops.monitoring.report import run_page
    from lstmops.update.records import save_record

    folder = paths.update_run_dir("echo", "2020-01-01", world.root)
    save_record({"problem": "echo", "day": "2020-01-01", "quarantined": True, "reason": "x_0 out of range"},
                folder / "collect.json")
    try:
        page = _text(run_page(world.settings, "echo", "2020-01-01", registry=world.registry, store=world.store,
                              root=world.root))
    finally:
        import shutil

        shutil.rmtree(folder)
    assert "was quarantined, so nothing was trained: x_0 out of range" in page
    assert "No arm has finished training in this run" in page and 'id="arms-chart"' not in page


def test_unknown_problems_and_runs_are_one_line_errors(world):
    from lstmops.errors import InputError
    from lstmops.monitoring.report import build_report, run_page

    with pytest.raises(InputError, match="unknown problem 'nonsense'"):
        build_report(world.settings, registry=world.registry, store=world.store, root=world.root,
                     problems=["nonsense"])
    with pytest.raises(InputError, match="no update run '1999-01-01'"):
        run_page(world.settings, "echo", "1999-01-01", registry=world.registry, store=world.store, root=world.root)


def test_the_cli_prints_the_index_and_refuses_an_unknown_problem(world, built, monkeypatch):
    from lstmops import cli

    monkeypatch.setenv("LSTMOPS_ROOT", str(world.root))
    runner = CliRunner()
    done = runner.invoke(cli.app, ["--db", world.registry.url, "report", "echo"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == str(built)
    bad = runner.invoke(cli.app, ["--db", world.registry.url, "report", "nonsense"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == ["lstmops report: error: unknown problem 'nonsense' (known: "
                                               + ", ".join(cli.PROBLEM_NAMES) + ")"]


def test_the_saved_gate_evidence_is_read_back_as_the_same_decision(world):
    from lstmops import paths
    from lstmops.monitoring.pages import decision_of
    from lstmops.update.records import load_record

    saved = load_record(paths.update_run_dir("echo", world.run_id, world.root) / "gate.json")
    again = decision_of(saved).to_dict()
    assert {k: v for k, v in saved.items() if k in again} == _lists(again)


def _lists(value):
    """Tuples as lists, as JSON gives them back."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def test_one_problem_is_rebuilt_and_the_index_keeps_every_problem(world, built):
    from lstmops.monitoring.report import build_report

    page = built.parent / f"echo-{world.run_id}.html"
    before = page.stat().st_mtime_ns
    index = build_report(world.settings, registry=world.registry, store=world.store, root=world.root,
                         problems=["addition"])
    text = _text(index)
    assert all(f'id="{p}"' in text for p in world.settings.problems)
    assert f'href="echo-{world.run_id}.html"' in text and page.stat().st_mtime_ns == before


def test_the_lead_finding_is_yesterdays_alarm_not_todays_quiet_day_without_outcomes():
    from lstmops.monitoring.report import ProblemState

    checks = [{"period": "2027-01-15", "kind": "concept drift", "flagged": True, "words": "Skill loss"},
              {"period": "2027-01-16", "kind": "none", "flagged": False, "words": "No outcomes observed yet"}]
    state = ProblemState("echo", "accuracy", True, 1, None, [], [], [], checks, [])
    assert state.latest_finding()["period"] == "2027-01-15"
    quiet = ProblemState("echo", "accuracy", True, 1, None, [], [], [], checks[1:], [])
    assert quiet.latest_finding()["period"] == "2027-01-16"
