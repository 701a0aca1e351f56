"""Update step 1 (collect): dated batches in a real git + DVC repository, replayed as that day's
traffic; quarantine of batches the deployed model cannot take; the training window."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from lstmops import paths
from lstmops.config import parse_settings
from lstmops.errors import DataError, NoModelError
from lstmops.registry.versions import Registry
from lstmops.store.records import Store
from lstmops.update.collect import collect, draw_batch, prediction_ids, select_training_rows
from lstmops.update.records import load_record, save_record
from tiny_bundles import save_tiny_bundle

os.environ.setdefault("LSTMOPS_JAX_CACHE", "off")  # no compiled programs left in the home folder
DVC = str(Path(sys.executable).parent / "dvc")
BEFORE, AFTER = date(2027, 1, 11), date(2027, 1, 18)   # echo's out_index moves 2 -> 3 on 2027-01-15


def settings(drift: list | None = None, **update):
    """Tiny settings of echo (and rectangles) with echo's concept drift, or ``drift`` instead."""
    echo_drift = drift if drift is not None else [{"kind": "sudden", "start": "2027-01-15", "set": {"out_index": 3}}]
    sizes = {"train": 20, "validation": 10, "test": 10}
    return parse_settings({
        "seed": 5, "as_of": "2026-11-01",
        "problems": {"echo": {"architecture": "vanilla", "sizes": sizes, "drift": echo_drift},
                     "rectangles": {"architecture": "generative", "sizes": sizes}},
        "update": {"batch_size": 40, "eval_size": 20, **update}})


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def init_repo(root: Path) -> Path:
    """A git repository with DVC initialised and a local DVC remote."""
    root.mkdir(parents=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    git(root, "init", "-q")
    git(root, "config", "user.name", "test")
    git(root, "config", "user.email", "test@example.com")
    subprocess.run([DVC, "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([DVC, "remote", "add", "-d", "local", str(root.parent / "remote")], cwd=root, check=True, env=env)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repository, a registry with a tiny echo champion, and an empty store."""
    base = tmp_path_factory.mktemp("collect")
    root = init_repo(base / "repo")
    url = f"sqlite:///{base / 'lstmops.db'}"
    registry = Registry(url, base / "registry")
    registry.register("echo", save_tiny_bundle("echo", base / "echo-bundle"))
    registry.promote("echo", 1, reason="tiny test model")
    return root, registry, Store(url)


def stored(store: Store, problem: str) -> pd.DataFrame:
    return pd.DataFrame(store.joined(problem, observed_only=False))


def test_collect_versions_the_batch_and_replays_it_at_the_run_date(repo):
    root, registry, store = repo
    (root / "other.txt").write_text("someone else's staged work\n")
    git(root, "add", "other.txt")
    results = {day: collect(settings(), "echo", day, root=root, registry=registry, store=store)
               for day in (BEFORE, AFTER)}
    for day, result in results.items():
        folder = paths.batch_dir("echo", day.isoformat(), root)
        assert not result.quarantined and result.folder == f"data/batches/echo/{day}"
        assert {p.name for p in folder.iterdir()} == {"train.parquet", "eval.parquet", "validation.json"}
        assert result.committed and result.pushed and result.md5.endswith(".dir")
        assert result.predicted == result.observed == 60
        assert f"lstmops collect: echo batch {day}" in git(root, "log", "--format=%s")
        assert result.md5 in (root / f"data/batches/echo/{day}.dvc").read_text()
    assert pd.read_parquet(paths.batch_dir("echo", str(BEFORE), root) / "eval.parquet")["out_index"].eq(2).all()
    assert pd.read_parquet(paths.batch_dir("echo", str(AFTER), root) / "eval.parquet")["out_index"].eq(3).all()
    # the commits hold only the batches' .dvc files and .gitignore: other staged work stays staged
    assert git(root, "status", "--porcelain", "--", "other.txt").startswith("A ")
    assert "other.txt" not in git(root, "log", "--name-only", "--format=")
    rows = stored(store, "echo")
    assert len(rows) == 120 and rows["observed_at"].notna().all()
    days = {str(day) for day in (BEFORE, AFTER)}
    assert set(rows["predicted_at"].dt.date.astype(str)) == days == set(rows["observed_at"].dt.date.astype(str))
    assert set(prediction_ids("echo", str(BEFORE), "eval", 20)) <= set(rows["id"])


def test_recollecting_a_day_is_idempotent(repo):
    root, registry, store = repo
    first = collect(settings(), "echo", BEFORE, root=root, registry=registry, store=store)
    commits = git(root, "rev-list", "--count", "HEAD")
    again = collect(settings(), "echo", BEFORE, root=root, registry=registry, store=store)
    assert again.reused and again.md5 == first.md5 and not again.committed
    assert again.predicted == again.observed == 0
    assert git(root, "rev-list", "--count", "HEAD") == commits
    assert draw_batch(settings(), "echo", BEFORE)[0].equals(draw_batch(settings(), "echo", BEFORE)[0])
    saved = load_record(save_record(again, root / "updates" / "collect.json"))
    assert saved["md5"] == first.md5 and saved["reused"] is True


def test_a_day_collected_with_other_settings_is_not_replaced(repo):
    root, registry, store = repo
    collect(settings(), "echo", BEFORE, root=root, registry=registry, store=store)
    counts = store.counts("echo")
    with pytest.raises(DataError, match="other rows"):
        collect(settings(batch_size=41), "echo", BEFORE, root=root, registry=registry, store=store)
    assert store.counts("echo") == counts


@pytest.mark.parametrize("change, words", [({"length": 6}, "sequence length"),
                                           ({"n_features": 12}, "cannot take this batch")])
def test_a_batch_of_another_input_shape_is_quarantined(repo, change, words):
    root, registry, store = repo
    drifted = settings(drift=[{"kind": "sudden", "start": "2027-02-01", "set": change}])
    day = date(2027, 2, 1) if "length" in change else date(2027, 2, 2)
    head, counts = git(root, "rev-parse", "HEAD"), store.counts("echo")
    result = collect(drifted, "echo", day, root=root, registry=registry, store=store)
    assert result.quarantined and words in result.reason and result.md5 is None
    quarantine = paths.quarantine_dir("echo", str(day), root)
    assert {p.name for p in quarantine.iterdir()} == {"train.parquet", "eval.parquet", "validation.json"}
    assert not paths.batch_dir("echo", str(day), root).exists()
    assert git(root, "rev-parse", "HEAD") == head and store.counts("echo") == counts
    assert registry.aliases("echo") == {"champion": 1}


def test_no_champion_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(NoModelError, match="echo"):
        collect(settings(), "echo", BEFORE, root=tmp_path, registry=Registry(url, tmp_path / "registry"),
                store=Store(url), dvc=False)


def test_a_generative_champion_draws_shapes_at_the_run_date(tmp_path):
    url = f"sqlite:///{tmp_path / 'lstmops.db'}"
    registry, store = Registry(url, tmp_path / "registry"), Store(url)
    registry.register("rectangles", save_tiny_bundle("rectangles", tmp_path / "bundle"))
    registry.promote("rectangles", 1, reason="tiny test model")
    result = collect(settings(), "rectangles", BEFORE, root=tmp_path, registry=registry, store=store, dvc=False)
    assert not result.quarantined and result.predicted == 20 and result.observed == 0 and result.md5 is None
    rows = stored(store, "rectangles")
    assert len(rows) == 20 and set(rows["predicted_at"]) == {datetime(2027, 1, 11)}
    again = collect(settings(), "rectangles", BEFORE, root=tmp_path, registry=registry, store=store, dvc=False)
    assert again.reused and again.predicted == 0 and store.counts("rectangles")["predictions"] == 20


def write_batches(root: Path, days: list[date]) -> None:
    """Collected-looking batches whose training rows carry their day in ``x_0`` (for the window tests)."""
    for day in days:
        folder = paths.batch_dir("echo", day.isoformat(), root)
        folder.mkdir(parents=True)
        table = pd.DataFrame({"x_0": [day.toordinal()] * 10, "row": range(10)})
        table.to_parquet(folder / "train.parquet", index=False)
        table.head(2).to_parquet(folder / "eval.parquet", index=False)
    (paths.batches_dir("echo", root) / "2027-01-04.dvc").write_text("outs: []\n")  # not a batch folder


def test_window_of_days_takes_the_recent_batches_newest_first(tmp_path):
    days = [date(2027, 1, 4), date(2027, 1, 11), date(2027, 1, 18), date(2027, 1, 25)]
    write_batches(tmp_path, days)
    rows = select_training_rows(settings(window={"days": 14}), "echo", date(2027, 1, 18), tmp_path)
    assert list(dict.fromkeys(rows["x_0"])) == [date(2027, 1, 18).toordinal(), date(2027, 1, 11).toordinal()]
    assert len(rows) == 20  # training rows only; 2027-01-25 is after the run's date


def test_window_share_takes_that_share_of_every_batch(tmp_path):
    write_batches(tmp_path, [date(2027, 1, 4), date(2027, 1, 11), date(2027, 1, 18)])
    rows = select_training_rows(settings(window={"share": 0.3}), "echo", date(2027, 1, 18), tmp_path)
    assert len(rows) == 9 and rows.groupby("x_0").size().eq(3).all()
    assert rows["x_0"].iloc[0] == date(2027, 1, 18).toordinal() and rows["row"].iloc[:3].tolist() == [0, 1, 2]


def test_an_empty_window_is_a_clear_error(tmp_path):
    write_batches(tmp_path, [date(2026, 11, 2)])
    with pytest.raises(DataError, match="no collected batch"):
        select_training_rows(settings(window={"days": 7}), "echo", date(2027, 1, 18), tmp_path)
