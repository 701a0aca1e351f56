"""Prediction and observation store: all-or-nothing writes, joins, skill per day, week and month."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from lstmops.problems import PROBLEMS
from lstmops.store.records import Store, StoreError, score_outputs

MONDAY = datetime(2027, 1, 4, 9, 30)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


def _log(store: Store, ids: list[str], outputs: list, version: int = 1, at: datetime = MONDAY) -> None:
    store.log_predictions("echo", version, ids, [{"x_0": 1}] * len(ids), outputs, at=at)


def test_sqlite_runs_in_wal_mode_and_the_url_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMOPS_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    store = Store()
    assert store.url.endswith("env.db")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_predictions_and_observations_join(store):
    _log(store, ["a", "b", "c"], [3, 4, 5])
    store.record_observations("echo", ["a", "c"], [{"target": 3}, {"target": 1}],
                              observed_at=[datetime(2027, 1, 5), None])
    rows = store.joined("echo")
    assert [(r["id"], r["output"], r["target"]) for r in rows] == [("a", 3, {"target": 3}), ("c", 5, {"target": 1})]
    assert rows[0]["observed_at"] == datetime(2027, 1, 5) and rows[0]["predicted_at"] == MONDAY
    assert [r["id"] for r in store.joined("echo", observed_only=False)] == ["a", "b", "c"]
    assert store.counts("echo") == {"predictions": 3, "observations": 2}
    assert store.versions_of("echo", ["a", "zz"]) == {"a": 1}
    assert store.observed_ids("echo", ["a", "b"]) == {"a"}


def test_writes_are_all_or_nothing(store):
    _log(store, ["a"], [1])
    with pytest.raises(StoreError, match="prediction id 'a' is already logged; nothing was logged"):
        _log(store, ["b", "a"], [1, 2])
    assert store.counts("echo")["predictions"] == 1
    with pytest.raises(StoreError, match="nothing was recorded"):
        store.record_observations("echo", ["a", "nope"], [{"target": 1}, {"target": 2}])
    assert store.counts("echo")["observations"] == 0
    store.record_observations("echo", ["a"], [{"target": 1}])
    with pytest.raises(StoreError, match="already observed"):
        store.record_observations("echo", ["a"], [{"target": 2}])
    store.record_observations("echo", ["a"], [{"target": 2}], replace=True)
    assert store.joined("echo")[0]["target"] == {"target": 2}


def test_many_ids_are_queried_in_chunks(store):
    ids = [f"id{i}" for i in range(1234)]
    _log(store, ids, list(range(1234)))
    assert store.known_ids("echo", ids[::-1] + ["other"]) == set(ids)


def test_skill_per_day_week_and_month_per_model_version(store):
    # Monday 4 Jan: v1 right 2 of 2; Tuesday 5 Jan: v1 right 1 of 2, v2 right 1 of 1; Monday 11 Jan: v1 0 of 1.
    batches = [("d1", MONDAY, 1, [(1, 1), (2, 2)]), ("d2", datetime(2027, 1, 5, 23), 1, [(3, 3), (4, 0)]),
               ("d2b", datetime(2027, 1, 5, 1), 2, [(5, 5)]), ("d3", datetime(2027, 1, 11), 1, [(6, 0)])]
    for name, at, version, pairs in batches:
        ids = [f"{name}-{i}" for i in range(len(pairs))]
        _log(store, ids, [p for p, _ in pairs], version, at)
        store.record_observations("echo", ids, [{"target": t} for _, t in pairs], [datetime(2027, 2, 1)] * len(ids))
    _log(store, ["unobserved"], [9], 1, MONDAY)
    days = store.skill("echo", "day")
    assert [(r["period"], r["model_version"], r["n"], r["accuracy"]) for r in days] == [
        ("2027-01-04", 1, 2, 1.0), ("2027-01-05", 1, 2, 0.5), ("2027-01-05", 2, 1, 1.0), ("2027-01-11", 1, 1, 0.0)]
    weeks = store.skill("echo", "week")
    assert [(r["period"], r["model_version"], r["n"], r["accuracy"]) for r in weeks] == [
        ("2027-01-04", 1, 4, 0.75), ("2027-01-04", 2, 1, 1.0), ("2027-01-11", 1, 1, 0.0)]
    assert [(r["period"], r["n"]) for r in store.skill("echo", "month", model_version=1)] == [("2027-01-01", 5)]
    assert [(r["period"], r["n"]) for r in store.skill("echo", "week", by="observed")] == [
        ("2027-02-01", 5), ("2027-02-01", 1)]
    assert store.skill("echo", "day", since=datetime(2027, 1, 6)) == [
        {"period": "2027-01-11", "model_version": 1, "role": "served", "n": 1, "accuracy": 0.0}]
    assert store.skill("addition") == []
    with pytest.raises(StoreError, match="interval must be one of"):
        store.skill("echo", "hour")


def test_generative_skill_needs_no_observations(store):
    square = [[0, 0], [1, 0], [1, 1], [0, 1]]
    skewed = [[0, 0], [1, 0.2], [1, 1], [0, 1]]
    store.log_predictions("rectangles", 1, ["a", "b"], [{}, {}], [square, skewed], at=MONDAY)
    (row,) = store.skill("rectangles", "day")
    assert row["n"] == 2 and row["geometric_error"] == pytest.approx(0.2 / 4 / 2)
    with pytest.raises(StoreError, match="no true outcome"):
        store.record_observations("rectangles", ["a"], [{}])


@pytest.mark.parametrize("name", sorted(n for n in PROBLEMS if n != "rectangles"))
def test_perfect_outputs_score_perfectly_with_each_problems_own_metric(name):
    from lstmops.serving.readable import as_targets

    module = PROBLEMS[name]
    params = module.Params(**({"size": 8} if name == "moving_square" else {}))
    table = module.generate(params, 20, np.random.default_rng(3))
    targets = table[module.target_columns(params)].to_dict("records")
    decode = {"echo": lambda r: r["target"], "moving_square": lambda r: "right" if r["direction"] else "left",
              "addition": lambda r: r["answer"]}
    outputs = [decode[name](r) if name in decode else [r[c] for c in module.target_columns(params)] for r in targets]
    metrics = score_outputs(name, outputs, targets)
    assert metrics[module.PRIMARY_METRIC] == (1.0 if module.HIGHER_IS_BETTER else 0.0)
    assert all(as_targets(name, o) == {k: v for k, v in t.items()} for o, t in zip(outputs[:3], targets[:3]))
