"""Fitted transformers and per-problem preparers: round trips, policies, errors, shapes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from lstmops.features.preparers import PREPARERS, Preparer, load_preparer, make_preparer
from lstmops.problems.moving_square import render_frames
from lstmops.features.transformers import (
    CharVocabulary,
    MinMaxScaler,
    OneHotEncoder,
    OutOfRangeError,
    UnknownCategoryError,
    load_json,
    save_json,
)
from lstmops.problems import PROBLEMS


def _json_copy(obj):
    """Restore ``obj`` from its state after a real trip through JSON text."""
    data = json.loads(json.dumps(obj.to_dict(), allow_nan=False))
    return type(obj).from_dict(data) if not isinstance(obj, Preparer) else Preparer.from_dict(data)


# --- MinMaxScaler -----------------------------------------------------------------------


@pytest.fixture
def shared() -> MinMaxScaler:
    return MinMaxScaler(per_feature=False).fit(np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]))


def test_shared_scaler_round_trip_and_json_restore(shared):
    values = np.random.default_rng(0).uniform(0, 5, size=(6, 3))
    scaled = shared.transform(values)
    assert scaled.min() >= 0 and scaled.max() <= 1
    np.testing.assert_allclose(shared.inverse_transform(scaled), values, rtol=0, atol=1e-12)
    restored = _json_copy(shared)
    assert np.array_equal(restored.transform(values), scaled)
    assert np.array_equal(restored.inverse_transform(scaled), shared.inverse_transform(scaled))
    assert restored.to_dict() == shared.to_dict()
    for attr in ("min_", "scale_", "data_min_", "data_max_", "data_range_"):  # the wrapped sklearn state
        assert np.array_equal(getattr(restored._sk, attr), getattr(shared._sk, attr))


def test_per_feature_scaler_keeps_each_feature_range():
    points = np.random.default_rng(1).uniform([0, 10], [1, 30], size=(5, 4, 2))
    scaler = MinMaxScaler(feature_names=["x", "y"]).fit(points)
    scaled = scaler.transform(points)
    np.testing.assert_allclose(scaled.reshape(-1, 2).min(axis=0), [0, 0])
    np.testing.assert_allclose(scaled.reshape(-1, 2).max(axis=0), [1, 1])
    np.testing.assert_allclose(scaler.inverse_transform(scaled), points, atol=1e-12)
    assert np.array_equal(_json_copy(scaler).transform(points), scaled)


def test_reject_names_column_first_row_value_and_range(shared):
    with pytest.raises(OutOfRangeError) as err:
        shared.transform([[1.0, 2.0, 3.0], [4.0, -1.0, 7.0]], columns=["a", "b", "c"])
    assert str(err.value) == (
        "column 'b': row 1 has value -1.0, outside the fitted range [0.0, 5.0] (2 value(s) outside; policy 'reject')"
    )
    assert isinstance(err.value, ValueError)


def test_reject_names_feature_without_columns():
    scaler = MinMaxScaler(feature_names=["x", "y"]).fit(np.array([[0.0, 0.0], [1.0, 2.0]]))
    with pytest.raises(OutOfRangeError, match=r"^feature 'y': row 0 has value 3\.0, outside the fitted range \[0\.0, 2\.0\]"):
        scaler.transform([[0.5, 3.0]])


def test_clip_clips_and_counts():
    scaler = MinMaxScaler(policy="clip", per_feature=False).fit(np.array([[0.0, 10.0]]))
    values = np.array([[-5.0, 5.0], [20.0, 10.0]])
    assert scaler.count_out_of_range(values) == 2
    assert np.array_equal(scaler.transform(values), [[0.0, 0.5], [1.0, 1.0]])


def test_tiny_overshoot_is_tolerated_and_unchecked_mode_extrapolates(shared):
    assert shared.transform([[5.0 + 1e-9]])[0, 0] == 1.0
    assert shared.count_out_of_range([[5.0 + 1e-9]]) == 0
    assert shared.transform([[10.0]], enforce_range=False)[0, 0] == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_always_raise_naming_the_row(shared, bad):
    clip = MinMaxScaler(policy="clip", per_feature=False).fit([[0.0, 1.0]])
    for scaler in (shared, clip):
        with pytest.raises(ValueError, match=r"column 'c': row 1 is (nan|inf); NaN and inf are not allowed"):
            scaler.transform([[1.0, 1.0, 1.0], [1.0, 1.0, bad]], columns=["a", "b", "c"])
    with pytest.raises(ValueError, match="row 0 is"):
        MinMaxScaler(per_feature=False).fit([[bad, 1.0]])


def test_scaler_rejects_unknown_policy_and_unfitted_use():
    with pytest.raises(ValueError, match="policy must be one of"):
        MinMaxScaler(policy="ignore")
    with pytest.raises(NotFittedError):
        MinMaxScaler().transform([[1.0]])


# --- OneHotEncoder ----------------------------------------------------------------------


def test_one_hot_round_trip_from_probabilities_and_json():
    encoder = OneHotEncoder().fit(np.array([[3, 1], [5, 3]]))
    encoded = encoder.transform([[1, 5, 3]])
    assert encoded.dtype == np.uint8 and encoded.shape == (1, 3, 3)
    assert np.array_equal(encoded[0], np.eye(3, dtype=np.uint8)[[0, 2, 1]])
    probs = encoded * 0.7 + 0.1
    assert encoder.inverse_transform(probs).tolist() == [[1, 5, 3]]
    assert np.array_equal(_json_copy(encoder).transform([[1, 5, 3]]), encoded)


def test_unknown_category_names_value_and_row():
    encoder = OneHotEncoder().fit([0, 1, 2])
    with pytest.raises(UnknownCategoryError) as err:
        encoder.transform([[0, 1], [2, 7]], columns=["x_0", "x_1"])
    assert str(err.value) == "column 'x_1': row 1 has unknown category 7 (known: [0, 1, 2])"
    with pytest.raises(UnknownCategoryError, match="unknown category 2.5"):
        encoder.transform([2.5])
    with pytest.raises(ValueError, match="row 0 is nan"):
        encoder.transform([np.nan])


def test_declared_categories_fix_the_width_and_check_training_data():
    encoder = OneHotEncoder(categories=range(4)).fit([1, 1, 2])
    assert encoder.transform([3]).shape == (1, 4)
    with pytest.raises(UnknownCategoryError, match="unknown category 9"):
        OneHotEncoder(categories=range(4)).fit([1, 9])


# --- CharVocabulary ---------------------------------------------------------------------


def test_vocabulary_left_pads_and_decodes_back():
    vocab = CharVocabulary().fit(["1+2", "10+3"])
    assert vocab.width_ == 4 and vocab.chars_ == [" ", "+", "0", "1", "2", "3"]
    encoded = vocab.transform(["1+2", "3"])
    assert encoded.shape == (2, 4, 6) and encoded.dtype == np.uint8
    assert vocab.indices(["3"]).tolist() == [[0, 0, 0, 5]]
    assert vocab.decode(encoded * 0.9) == ["1+2", "3"]
    assert np.array_equal(_json_copy(vocab).transform(["1+2", "3"]), encoded)


def test_vocabulary_errors_name_row_and_offender():
    vocab = CharVocabulary(width=4).fit(["1+2"])
    with pytest.raises(UnknownCategoryError) as err:
        vocab.transform(["1+1", "1+9"])
    assert str(err.value) == "row 1: character '9' in '1+9' is not in the vocabulary ' +12'"
    with pytest.raises(ValueError) as err:
        vocab.transform(["1", "11+22"])
    assert str(err.value) == "row 1: string '11+22' has 5 characters, more than the fitted width 4"
    with pytest.raises(ValueError, match="row 0: expected a string, got nan"):
        vocab.transform([np.nan])
    with pytest.raises(ValueError, match="more than the fitted width 2"):
        CharVocabulary(width=2).fit(["123"])


# --- save_json / load_json ----------------------------------------------------------------


def test_save_and_load_json_restores_each_type(tmp_path, shared):
    objects = [shared, OneHotEncoder().fit([1, 2]), CharVocabulary().fit(["ab"])]
    for i, obj in enumerate(objects):
        path = tmp_path / f"{i}.json"
        save_json(obj, path)
        saved = json.loads(path.read_text())
        assert saved["type"] == type(obj).__name__ and saved["version"] == 1
        assert load_json(path).to_dict() == obj.to_dict()
    (tmp_path / "bad.json").write_text(json.dumps({"type": "Pickle", "version": 1}))
    with pytest.raises(ValueError, match="unknown saved type 'Pickle'"):
        load_json(tmp_path / "bad.json")


# --- preparers ------------------------------------------------------------------------------

TINY = {
    "echo": {"length": 4, "n_features": 5, "out_index": 1},
    "damped_sine": {"length": 6, "n_out": 5},
    "moving_square": {"size": 4},
    "addition": {"n_terms": 2, "largest": 10},
    "cumulative_sum": {"n_timesteps": 6},
    "rectangles": {},
}
INPUT_DTYPES = {"echo": np.uint8, "damped_sine": np.float32, "moving_square": np.uint8,
                "addition": np.uint8, "cumulative_sum": np.float32, "rectangles": np.float32}
TARGET_DTYPES = {**INPUT_DTYPES, "moving_square": np.uint8, "cumulative_sum": np.uint8}


def _tables(name: str, n_train: int = 40, n_later: int = 9):
    problem = PROBLEMS[name]
    params = problem.Params(**TINY[name])
    rng = np.random.default_rng(7)
    return params, problem.generate(params, n_train, rng), problem.generate(params, n_later, rng)


def _raw_targets(name: str, table: pd.DataFrame) -> list:
    if name == "moving_square":
        return ["right" if d == 1 else "left" for d in table["direction"]]
    if name == "rectangles":
        return table[[f"{a}_{i}" for i in (1, 2, 3) for a in "xy"]].to_numpy().reshape(-1, 2).tolist()
    if name in ("damped_sine", "cumulative_sum"):
        return table.filter(regex=r"^y_\d+$").to_numpy().tolist()
    return table[{"echo": "target", "addition": "answer"}[name]].tolist()


def test_registry_covers_the_six_problems():
    assert set(PREPARERS) == set(PROBLEMS)
    with pytest.raises(KeyError, match="unknown problem 'nope'"):
        make_preparer("nope", None)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_shapes_and_dtypes(name):
    params, train, later = _tables(name)
    prep = make_preparer(name, params, "clip").fit(train)
    x, y = prep.inputs(later), prep.targets(later)
    per_table = 3 * len(later) if name == "rectangles" else len(later)
    assert x.shape == (per_table, *prep.input_shape) and x.dtype == INPUT_DTYPES[name]
    assert y.shape == (per_table, *prep.target_shape) and y.dtype == TARGET_DTYPES[name]


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_decode_of_targets_gives_back_the_raw_targets(name):
    params, train, later = _tables(name)
    prep = make_preparer(name, params).fit(train)
    decoded, expected = prep.decode(prep.targets(train)), _raw_targets(name, train)
    if name in ("damped_sine", "rectangles"):  # float32 model targets: equal to float32 precision
        np.testing.assert_allclose(np.asarray(decoded), np.asarray(expected), atol=1e-6)
    else:
        assert decoded == expected


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_save_load_round_trip(name, tmp_path):
    params, train, later = _tables(name)
    prep = make_preparer(name, params, "clip").fit(train)
    save_json(prep, tmp_path / "preparer.json")
    restored = load_preparer(tmp_path / "preparer.json")
    assert type(restored) is type(prep) and restored.params == params and restored.policy == "clip"
    assert np.array_equal(restored.inputs(later), prep.inputs(later))
    assert np.array_equal(restored.targets(later), prep.targets(later))
    assert restored.to_dict() == prep.to_dict()


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_missing_columns_and_unfitted_use_raise(name):
    params, train, _ = _tables(name)
    prep = make_preparer(name, params)
    with pytest.raises(NotFittedError, match="call fit"):
        prep.inputs(train)
    prep.fit(train)
    dropped = [PROBLEMS[name].input_columns(params)[-1]]
    with pytest.raises(ValueError, match=f"lacks column\\(s\\) {dropped[0]}"):
        prep.inputs(train.drop(columns=dropped))


def test_longer_sequences_are_rejected_not_truncated():
    params, train, later = _tables("echo")
    prep = make_preparer("echo", params).fit(train)
    with pytest.raises(ValueError, match="has column\\(s\\) x_4 beyond the fitted layout"):
        prep.inputs(later.assign(x_4=0))


@pytest.mark.parametrize("name", ["damped_sine", "cumulative_sum", "rectangles"])
def test_scalers_fit_on_train_only_and_apply_the_policy(name):
    params, train, later = _tables(name)
    column = {"damped_sine": "x_2", "cumulative_sum": "x_2", "rectangles": "x_1"}[name]
    fitted_on = {"damped_sine": r"^[xy]_\d+$", "cumulative_sum": r"^x_\d+$", "rectangles": r"^x_\d+$"}[name]
    fitted_max = train.filter(regex=fitted_on).to_numpy().max()  # shared scale, or the x feature
    later = later.copy()
    later.loc[3, column] = fitted_max + 0.5  # a value seen only in the later table
    fitted = make_preparer(name, params).fit(train)
    scaler = next(iter(fitted.transformers.values()))
    assert scaler.extremes()[1][0] == fitted_max  # learned from the training table alone
    with pytest.raises(OutOfRangeError, match=f"^column '{column}': row 3 has value "):
        make_preparer(name, params, "reject").fit(train).inputs(later)
    clipped = make_preparer(name, params, "clip").fit(train).inputs(later)
    assert clipped.max() == pytest.approx(1.0)


def test_a_wider_tolerance_lets_slight_overshoot_through():
    params, train, later = _tables("cumulative_sum")
    later = later.copy()
    later.loc[0, "x_0"] = train.filter(regex=r"^x_").to_numpy().max() + 0.004  # 0.4% past a range near 1
    with pytest.raises(OutOfRangeError):
        make_preparer("cumulative_sum", params).fit(train).inputs(later)
    prep = make_preparer("cumulative_sum", params, "reject", tolerance=0.01).fit(train)
    assert prep.inputs(later)[0, 0, 0] == 1.0
    assert Preparer.from_dict(prep.to_dict()).transformers["values"].tolerance == 0.01


def test_clip_policy_still_rejects_unknown_symbols():
    params, train, later = _tables("echo")
    later = later.copy()
    later.loc[2, "x_3"] = params.n_features
    with pytest.raises(UnknownCategoryError, match="column 'x_3': row 2 has unknown category 5"):
        make_preparer("echo", params, "clip").fit(train).inputs(later)
    params, train, later = _tables("addition")
    with pytest.raises(UnknownCategoryError, match="row 0: character '-'"):
        make_preparer("addition", params, "clip").fit(train).inputs(pd.DataFrame({"expression": ["1-2"]}))


def test_addition_decodes_non_numbers_to_none():
    params, train, _ = _tables("addition")
    prep = make_preparer("addition", params).fit(train)
    vocab = prep.transformers["answer"]
    assert prep.decode(vocab.transform(["+1", "", "7"])) == [None, None, 7]


def test_rectangles_encode_the_origin_like_the_inputs():
    params, train, _ = _tables("rectangles")
    prep = make_preparer("rectangles", params).fit(train)
    assert np.array_equal(prep.encode_points([[0.0, 0.0]]), prep.inputs(train)[:1])


def _square(size: int, pixels: list[tuple[int, int]]) -> np.ndarray:
    image = np.zeros((size, size), dtype=np.uint8)
    for r, c in pixels:
        image[r, c] = 1
    return image


def test_moving_square_frames_match_a_hand_drawn_example():
    right = [(1, 0), (2, 1), (2, 2), (3, 3)]  # rows 1,2,2,3 drawn left to right
    left = [(0, 3), (1, 2), (1, 1), (2, 0)]  # rows 0,1,1,2 drawn right to left
    expected = np.stack([[_square(4, path[: t + 1]) for t in range(4)] for path in (right, left)])[..., None]
    table = pd.DataFrame({"direction": [1, 0], "r_0": [1, 0], "r_1": [2, 1], "r_2": [2, 1], "r_3": [3, 2],
                          "c_0": [0, 3], "c_1": [1, 2], "c_2": [2, 1], "c_3": [3, 0]})
    prep = make_preparer("moving_square", PROBLEMS["moving_square"].Params(size=4)).fit(table)
    frames = prep.inputs(table)
    assert frames.dtype == np.uint8 and np.array_equal(frames, expected)
    assert prep.targets(table).tolist() == [[1], [0]]


def test_moving_square_chunks_equal_one_shot_and_fill_a_memmap(tmp_path):
    params, train, later = _tables("moving_square", n_later=11)
    prep = make_preparer("moving_square", params).fit(train)
    whole = prep.inputs(later)
    out = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=whole.shape)
    start = 0
    for chunk in prep.inputs_chunks(later, chunk_rows=4):
        out[start:start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    assert start == len(later) and np.array_equal(np.load(tmp_path / "x.npy"), whole)
    assert whole.sum() == len(later) * sum(range(1, params.size + 1))  # frame t has t+1 lit pixels


def test_moving_square_rejects_rows_outside_the_image():
    params, train, later = _tables("moving_square")
    prep = make_preparer("moving_square", params).fit(train)
    bad = later.copy()
    bad.loc[1, "r_2"] = 4
    with pytest.raises(ValueError) as err:
        prep.inputs(bad)
    assert str(err.value) == "column 'r_2': row 1 is 4, outside the image [0, 4)"
    twice = later.copy()
    twice.loc[2, "c_1"] = twice.loc[2, "c_0"]
    with pytest.raises(ValueError, match="row 2: the c_. columns must light each image column exactly once"):
        prep.inputs(twice)
    with pytest.raises(ValueError, match="column 'direction': row 0 is 2, not 0 or 1"):
        prep.targets(later.assign(direction=2))


def test_render_frames_has_no_more_pixels_than_steps():
    rows = np.random.default_rng(3).integers(0, 6, size=(5, 6))
    step = np.arange(6)
    cols = np.where(np.array([1, 0, 1, 0, 1])[:, None] == 1, step, 5 - step)
    frames = render_frames(rows, cols)
    assert frames.shape == (5, 6, 6, 6, 1)
    assert frames.sum(axis=(2, 3, 4)).tolist() == [list(range(1, 7))] * 5
