"""The six architectures: shapes, one training step, save/load, direction, errors, mixture maths."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lstmops.modeling.architectures import (ARCHITECTURE_NAMES, ARCHITECTURES, ModelSpec, Task, build_model,
                                   custom_objects, resolve_loss)
from lstmops.problems import get_problem

keras = pytest.importorskip("keras")
generative = ARCHITECTURES["generative"]

TINY = {"cells": 4, "decoder_cells": 3, "filters": 2, "mixtures": 3}


def _task(problem: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> Task:
    module = get_problem(problem)
    return Task(input_shape, output_shape, module.HEAD, module.LOSS, steps_per_run=4)


# Each architecture on (a tiny version of) the problem it was designed for, with that
# problem's model-ready dtypes: uint8 one-hot codes, frames and labels; float32 values.
CASES = {
    "vanilla": (_task("echo", (5, 10), (10,)), {}, "onehot", "onehot"),
    "stacked": (_task("damped_sine", (12, 1), (3,)), {"layers": 2}, "float", "float"),
    "cnn_lstm": (_task("moving_square", (4, 6, 6, 1), (1,)), {}, "binary", "binary"),
    "encoder_decoder": (_task("addition", (8, 12), (2, 12)), {}, "onehot", "onehot"),
    "bidirectional": (_task("cumulative_sum", (6, 1), (6, 1)), {}, "float", "binary"),
    "generative": (_task("rectangles", (1, 2), (2,)), {}, "float", "float"),
}


def _data(kind: str, shape: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "float":
        return rng.random((n, *shape), dtype=np.float32)
    if kind == "binary":
        return (rng.random((n, *shape)) < 0.5).astype(np.uint8)
    codes = rng.integers(0, shape[-1], size=(n, *shape[:-1]))
    return np.eye(shape[-1], dtype=np.uint8)[codes]


def _case(name: str, n: int = 16, seed: int = 0, **spec):
    task, extra, x_kind, y_kind = CASES[name]
    rng = np.random.default_rng(seed)
    x, y = _data(x_kind, task.input_shape, n, rng), _data(y_kind, task.output_shape, n, rng)
    return ModelSpec(**(TINY | extra | spec)), task, x, y


def _expected_output_shape(name: str, task: Task) -> tuple[int | None, ...]:
    if name == "generative":
        return (None, TINY["mixtures"], 1 + 2 * task.output_shape[0])
    return (None, *task.output_shape)


@pytest.mark.parametrize("name", ARCHITECTURE_NAMES)
def test_builds_compiled_with_right_shape_and_trains_a_step(name):
    spec, task, x, y = _case(name)
    model = build_model(name, spec, task)
    assert model.compiled and model.optimizer is not None
    assert model.output_shape == _expected_output_shape(name, task)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_registry_is_lazy_and_complete():
    assert list(ARCHITECTURES) == list(ARCHITECTURE_NAMES)
    assert set(ARCHITECTURES) == {"vanilla", "stacked", "cnn_lstm", "encoder_decoder", "bidirectional",
                                  "generative"}
    assert all(callable(ARCHITECTURES[n].build) for n in ARCHITECTURES)
    with pytest.raises(KeyError, match="unknown architecture 'transformer'"):
        build_model("transformer", ModelSpec(), CASES["vanilla"][0])
    assert resolve_loss("mixture_nll") is generative.mixture_nll
    assert resolve_loss("mae") == "mae"


def test_importing_the_package_does_not_import_keras():
    code = ("import sys, lstmops.modeling.architectures as a; assert 'keras' not in sys.modules; "
            "assert len(a.ARCHITECTURES) == 6 and 'stacked' in a.ARCHITECTURES; assert 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name,problem", [
    ("vanilla", "damped_sine"), ("stacked", "echo"), ("vanilla", "cumulative_sum"),
    ("stacked", "cumulative_sum"), ("bidirectional", "echo"), ("cnn_lstm", "cumulative_sum"),
])
def test_other_architectures_fit_other_problems(name, problem):
    shapes = {"echo": ((5, 10), (10,)), "damped_sine": ((12, 1), (3,)), "cumulative_sum": ((6, 1), (6, 1))}
    input_shape, output_shape = shapes[problem]
    if name == "cnn_lstm":  # per-step head on video: one output per frame
        input_shape, output_shape = (6, 6, 6, 1), (6, 1)
    task = _task(problem, input_shape, output_shape)
    model = build_model(name, ModelSpec(**TINY), task)
    assert model.output_shape == (None, *output_shape)


def test_optimizer_schedule_clipnorm_and_l2_follow_the_spec():
    task = CASES["stacked"][0]
    spec = ModelSpec(**TINY, layers=2, optimizer="sgd", learning_rate=0.05, schedule="cosine", clipnorm=1.0,
                     l2=0.01, dropout=0.1)
    model = build_model("stacked", spec, task)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.clipnorm == 1.0
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert (schedule.initial_learning_rate, schedule.decay_steps) == (0.05, task.steps_per_run)
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    assert len(lstms) == 2 and all(layer.kernel_regularizer is not None for layer in lstms)
    assert all(layer.dropout == 0.1 for layer in lstms)
    assert build_model("stacked", ModelSpec(**TINY), task).optimizer.__class__ is keras.optimizers.Adam


def _same_model(copy, model, x, expected) -> None:
    """Bit-identical weights and the same predictions.

    Predictions are compared to float32 rounding: two compilations of the CNN-LSTM
    once differed by one unit in the last place (3e-8) in about 40 round trips under
    pytest (never in 56 outside it), which is XLA's doing, not the saved model's.
    """
    for got, want in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(copy.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)


ROUND_TRIPS = [
    ("vanilla", {}),
    ("vanilla", {"direction": "backward"}),  # per-step via the bidirectional case's task below
    ("stacked", {"schedule": "cosine", "clipnorm": 1.0, "l2": 0.01}),
    ("cnn_lstm", {}),
    ("cnn_lstm", {"binary_frames": True}),  # the looked-up convolution, the ProjectedLSTM
    ("encoder_decoder", {}),
    ("bidirectional", {}),
    ("generative", {}),
]


@pytest.mark.parametrize("name,extra", ROUND_TRIPS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ROUND_TRIPS)])
def test_save_and_load_give_identical_predictions(name, extra, tmp_path):
    spec, task, x, _ = _case(name, n=8, **extra)
    if extra.get("direction") == "backward":  # exercise the ReverseTime layer on a per-step task
        spec, task, x, _ = _case("bidirectional", n=8, **extra)
    model = build_model(name, spec, task)
    model.optimizer.build(model.trainable_variables)  # save optimizer slots as a trained model would
    expected = model.predict(x, verbose=0)

    architecture = model.to_json()
    model.save_weights(tmp_path / "model.weights.h5")
    rebuilt = keras.models.model_from_json(architecture, custom_objects=custom_objects())
    rebuilt.load_weights(tmp_path / "model.weights.h5")
    _same_model(rebuilt, model, x, expected)

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    _same_model(loaded, model, x, expected)
    assert type(loaded.optimizer) is type(model.optimizer)
    if name == "generative":  # the project loss comes back, and training can continue
        assert loaded.loss is generative.mixture_nll
        y = _case(name, n=8)[3]
        assert np.isfinite(loaded.fit(x, y, epochs=1, batch_size=8, verbose=0).history["loss"][0])


def _changed_steps(model, x: np.ndarray, steps: tuple[int, ...]) -> list[np.ndarray]:
    """For each input step in ``steps``: which output steps move when that input is perturbed."""
    batch = [x]
    for step in steps:
        bumped = x.copy()
        bumped[:, step] += 1.0
        batch.append(bumped)
    out = model.predict(np.concatenate(batch), verbose=0).reshape(len(batch), len(x), x.shape[1])
    return [np.abs(moved - out[0]).max(axis=0) > 1e-6 for moved in out[1:]]


@pytest.mark.parametrize("name,direction,layers", [
    ("vanilla", "forward", 1), ("vanilla", "backward", 1), ("stacked", "forward", 2), ("stacked", "backward", 2),
    ("bidirectional", "forward", 1),
])
def test_per_step_outputs_see_the_right_side_of_the_sequence(name, direction, layers):
    spec, task, x, _ = _case("bidirectional", n=2, direction=direction, layers=layers)
    model = build_model(name, spec, task)
    steps = task.input_shape[0]
    first, last = _changed_steps(model, x, (0, steps - 1))
    only = np.zeros(steps, dtype=bool)
    if name == "bidirectional":  # every output sees the whole sequence
        assert first.all() and last.all()
    elif direction == "forward":  # output t sees inputs 0..t
        assert first.all()
        only[-1] = True
        np.testing.assert_array_equal(last, only)
    else:  # read backwards and flipped back into time order: output t sees inputs t..T-1
        assert last.all()
        only[0] = True
        np.testing.assert_array_equal(first, only)


def _bad(task: Task, **changes) -> Task:
    return Task(**{**task.__dict__, **changes})


MISMATCHES = [
    ("cnn_lstm", CASES["vanilla"][0], {}, "needs (frames, height, width, channels)"),
    ("cnn_lstm", _bad(CASES["cnn_lstm"][0], input_shape=(4, 2, 2, 1)), {"kernel": 2, "pool": 2}, "too small"),
    ("cnn_lstm", CASES["cnn_lstm"][0], {"binary_frames": True, "kernel": 3, "pool": 3}, "16 pixels: kernel 3, pool 3"),
    ("vanilla", CASES["cnn_lstm"][0], {}, "needs (time, features) inputs"),
    ("encoder_decoder", CASES["vanilla"][0], {}, "head 'softmax' does not fit"),
    ("vanilla", CASES["encoder_decoder"][0], {}, "use 'encoder_decoder'"),
    ("stacked", CASES["generative"][0], {}, "use 'generative'"),
    ("generative", _bad(CASES["generative"][0], loss="mae"), {}, "loss 'mixture_nll'"),
    ("bidirectional", _bad(CASES["bidirectional"][0], output_shape=(5, 1)), {}, "match 6 input steps"),
    ("vanilla", _bad(CASES["vanilla"][0], output_shape=(2, 10)), {}, "1-D output_shape"),
    ("bidirectional", CASES["bidirectional"][0], {"direction": "backward"}, "only to 'vanilla' and 'stacked'"),
    ("vanilla", CASES["vanilla"][0], {"layers": 2}, "use 'stacked'"),
]


@pytest.mark.parametrize("name,task,extra,message", MISMATCHES)
def test_mismatches_raise_one_line_value_errors(name, task, extra, message):
    with pytest.raises(ValueError) as info:
        build_model(name, ModelSpec(**TINY | extra), task)
    text = str(info.value)
    assert text.startswith(f"architecture {name!r}: ") and message in text and "\n" not in text


# --- the mixture density head -------------------------------------------------------------

def _reference_nll(y: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Plain NumPy: -log sum_k w_k prod_d N(y_d; mu_kd, sigma_kd), with the loss's clamp."""
    dims = (params.shape[-1] - 1) // 2
    logits, means = params[..., 0], params[..., 1:1 + dims]
    sigmas = np.exp(np.clip(params[..., 1 + dims:], -7.0, 3.0))
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pdf = np.exp(-0.5 * ((y[:, None, :] - means) / sigmas) ** 2) / (sigmas * math.sqrt(2 * math.pi))
    return -np.log((weights * pdf.prod(axis=-1)).sum(axis=1))


def test_mixture_nll_matches_numpy_reference():
    rng = np.random.default_rng(3)
    params = rng.normal(size=(6, 3, 5))  # 6 examples, K=3, D=2
    params[0, 1, 3:] = [-9.0, 4.0]  # outside the clamp: both ends
    y = rng.normal(size=(6, 2))
    got = np.asarray(generative.mixture_nll(keras.ops.convert_to_tensor(y, "float32"),
                                            keras.ops.convert_to_tensor(params, "float32")))
    np.testing.assert_allclose(got, _reference_nll(y, params), rtol=1e-5, atol=1e-5)


def test_mixture_nll_is_stable_at_extremes():
    params = np.zeros((2, 2, 3), dtype=np.float32)  # D=1
    params[:, 0, 0], params[:, 1, 0] = 500.0, -500.0  # huge logits
    params[:, :, 2] = -7.0  # tightest sigma
    y = np.array([[0.0], [50.0]], dtype=np.float32)  # on the mean; 50 / exp(-7) sigmas away
    got = np.asarray(generative.mixture_nll(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(params)))
    assert np.isfinite(got).all()
    assert got[0] == pytest.approx(-7.0 + 0.5 * math.log(2 * math.pi), abs=1e-4)
    with pytest.raises(ValueError, match="targets have 3 dims"):
        generative.mixture_nll(keras.ops.zeros((2, 3)), keras.ops.convert_to_tensor(params))


def _two_bumps() -> np.ndarray:
    """One example, K=2, D=2: equal weights, x at 0.2 or 0.8 (sigma 0.01), y always 0 (sigma e^-7)."""
    return np.array([[0.0, 0.2, 0.0, math.log(0.01), -7.0],
                     [0.0, 0.8, 0.0, math.log(0.01), -7.0]])


def test_sample_has_the_right_shape_and_spread():
    rng = np.random.default_rng(0)
    batch = np.repeat(_two_bumps()[None], 4000, axis=0)
    points = generative.sample(batch, rng)
    assert points.shape == (4000, 2)
    assert generative.sample(_two_bumps(), rng).shape == (2,)
    near_low = np.abs(points[:, 0] - 0.2) < 0.05
    near_high = np.abs(points[:, 0] - 0.8) < 0.05
    assert (near_low | near_high).all() and 0.45 < near_low.mean() < 0.55
    assert points[near_low, 0].std() == pytest.approx(0.01, rel=0.1)
    assert np.abs(points[:, 1]).max() < 10 * math.exp(-7)  # the fixed coordinate stays put
    np.testing.assert_array_equal(generative.sample(batch, np.random.default_rng(1)),
                                  generative.sample(batch, np.random.default_rng(1)))


def test_temperature_and_mean_prediction():
    favoured = _two_bumps()
    favoured[1, 0] = 2.0  # the 0.8 component is now the most likely
    np.testing.assert_allclose(generative.mean_prediction(favoured), [0.8, 0.0])
    np.testing.assert_allclose(generative.mean_prediction(np.stack([favoured, _two_bumps()])),
                               [[0.8, 0.0], [0.2, 0.0]])
    np.testing.assert_array_equal(generative.sample(favoured, np.random.default_rng(0), temperature=0),
                                  generative.mean_prediction(favoured))
    cold = generative.sample(np.repeat(favoured[None], 2000, axis=0), np.random.default_rng(0), temperature=0.1)
    assert (np.abs(cold[:, 0] - 0.8) < 0.05).mean() > 0.99  # low temperature: the favoured component
    with pytest.raises(ValueError, match="temperature"):
        generative.sample(favoured, np.random.default_rng(0), temperature=-1)


# --- determinism ---------------------------------------------------------------------------

def _seeded_fit(seed: int, fit: bool = True) -> list[np.ndarray]:
    spec, task, x, y = _case("stacked", dropout=0.2, recurrent_dropout=0.1)
    keras.utils.set_random_seed(seed)
    model = build_model("stacked", spec, task)
    if fit:
        model.fit(x, y, epochs=1, batch_size=8, shuffle=True, verbose=0)
    return model.get_weights()


def test_same_seed_gives_identical_weights():
    first, second = _seeded_fit(11), _seeded_fit(11)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _seeded_fit(12, fit=False)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_frame_layers_equal_time_distributed_conv_and_pool():
    """The fused per-frame layers compute what TimeDistributed(Conv2D/MaxPooling2D) computes."""
    import keras
    import numpy as np

    from lstmops.modeling.architectures.frames import FrameConv2D, FramePool2D

    x = np.random.default_rng(0).random((2, 3, 7, 6, 2)).astype("float32")
    conv = FrameConv2D(4, 3, activation="relu")
    fused = np.asarray(FramePool2D(2)(conv(x)))
    reference_conv = keras.layers.Conv2D(4, 3, activation="relu")
    reference_conv.build((None, 7, 6, 2))
    reference_conv.set_weights([np.asarray(w) for w in conv.get_weights()])
    pooled = keras.layers.TimeDistributed(keras.layers.MaxPooling2D(2))(
        keras.layers.TimeDistributed(reference_conv)(x))
    np.testing.assert_allclose(fused, np.asarray(pooled), rtol=1e-5, atol=1e-6)
    assert fused.shape == (2, 3, 2, 2, 4)


@pytest.mark.parametrize("kernel,pool,activation", [(2, 2, "relu"), (3, 2, "tanh"), (2, 3, "relu"), (1, 2, None)])
def test_the_one_pass_conv_pool_layer_equals_the_two_layers(kernel, pool, activation):
    """FrameConvPool2D gives FramePool2D(FrameConv2D(x)) with the same weights, odd sizes included
    (edges the pooling drops), and the same gradients."""
    import jax
    import keras
    import numpy as np

    from lstmops.modeling.architectures.frames import FrameConv2D, FrameConvPool2D, FramePool2D

    x = np.random.default_rng(kernel * 10 + pool).random((2, 3, 9, 8, 2)).astype("float32")
    one = FrameConvPool2D(3, kernel, pool, activation=activation)
    out = np.asarray(one(x))
    two = FrameConv2D(3, kernel, activation=activation)
    two.build(x.shape)
    two.set_weights(one.get_weights())
    pool_layer = FramePool2D(pool)
    expected = np.asarray(pool_layer(two(x)))
    assert out.shape == expected.shape == tuple(one.compute_output_shape(x.shape))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    if keras.backend.backend() == "jax":
        def loss(layer_call, w, b):
            return (layer_call(w, b) ** 2).sum()

        grads_one = jax.grad(lambda w, b: loss(lambda w, b: one.stateless_call([w, b], [], x)[0], w, b),
                             argnums=(0, 1))(*[v.value for v in one.weights])
        grads_two = jax.grad(lambda w, b: loss(lambda w, b: pool_layer(two.stateless_call([w, b], [], x)[0]), w, b),
                             argnums=(0, 1))(*[v.value for v in two.weights])
        for ga, gb in zip(grads_one, grads_two):
            np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=1e-5, atol=1e-5)


def _layer_grads(layer, x):
    """d sum(layer(x)^2) / d(each trainable weight), through Keras' stateless call (JAX)."""
    import jax

    values = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]

    def loss(*ws):
        return (layer.stateless_call(list(ws), fixed, x)[0] ** 2).sum()

    return [np.asarray(g) for g in jax.grad(loss, argnums=tuple(range(len(values))))(*values)]


@pytest.mark.parametrize("kernel,pool,channels", [(2, 2, 1), (1, 2, 2), (3, 2, 1), (2, 3, 1), (1, 1, 3)])
def test_binary_frames_are_looked_up_to_the_computed_values(kernel, pool, channels):
    """On 0/1 frames the table path gives the arithmetic path's outputs bit for bit, and the
    same gradients up to float rounding (ties of the maximum included: sparse frames make
    most windows all-off)."""
    from lstmops.modeling.architectures.frames import FrameConvPool2D

    rng = np.random.default_rng(kernel * 100 + pool * 10 + channels)
    x = (rng.random((3, 4, 11, 10, channels)) < 0.15).astype("float32")
    computed = FrameConvPool2D(3, kernel, pool)
    expected = np.asarray(computed(x))
    looked_up = FrameConvPool2D(3, kernel, pool, binary=True)
    looked_up.build(x.shape)
    weights = [w + 0.1 for w in computed.get_weights()]  # a positive bias: gradients through all-off windows
    computed.set_weights(weights)
    looked_up.set_weights(weights)
    expected = np.asarray(computed(x))
    out = np.asarray(looked_up(x))
    assert out.shape == expected.shape == tuple(looked_up.compute_output_shape(x.shape))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.asarray(looked_up(x * 3)), out)  # any non-zero pixel is on
    if keras.backend.backend() == "jax":
        for got, want in zip(_layer_grads(looked_up, x), _layer_grads(computed, x), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # sums of ~10^3 float32 terms


def test_binary_frames_refuse_windows_too_large_for_a_table():
    from lstmops.modeling.architectures.frames import FrameConvPool2D

    with pytest.raises(ValueError, match="at most 16 pixels: kernel 2, pool 2 and 5 channel"):
        FrameConvPool2D(2, 2, 2, binary=True).build((None, 3, 8, 8, 5))


@pytest.mark.parametrize("return_sequences,go_backwards", [(False, False), (True, False), (True, True)])
def test_projected_lstm_equals_keras_lstm(return_sequences, go_backwards):
    """The LSTM with its input product taken out of the loop: Keras' values and gradients."""
    from lstmops.modeling.architectures._common import ProjectedLSTM

    x = np.random.default_rng(3).normal(size=(4, 7, 30)).astype("float32")
    plain = keras.layers.LSTM(5, return_sequences=return_sequences, go_backwards=go_backwards, use_cudnn=False)
    projected = ProjectedLSTM(5, return_sequences=return_sequences, go_backwards=go_backwards, use_cudnn=False)
    assert type(projected).inner_loop is not keras.layers.LSTM.inner_loop
    plain.build(x.shape)
    projected.build(x.shape)
    projected.set_weights(plain.get_weights())
    np.testing.assert_allclose(np.asarray(projected(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-6)
    if keras.backend.backend() == "jax":
        for got, want in zip(_layer_grads(projected, x), _layer_grads(plain, x), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_projected_lstm_with_dropout_is_keras_lstm():
    """With dropout the layer runs Keras' own loop, which draws and applies the masks."""
    from lstmops.modeling.architectures._common import ProjectedLSTM

    x = np.random.default_rng(4).normal(size=(3, 6, 8)).astype("float32")
    outs = []
    for cls in (keras.layers.LSTM, ProjectedLSTM):
        keras.utils.set_random_seed(9)
        layer = cls(4, dropout=0.3, seed=5, use_cudnn=False)
        layer.build(x.shape)
        outs.append((layer, np.asarray(layer(x, training=True))))
    outs[1][0].set_weights(outs[0][0].get_weights())
    keras.utils.set_random_seed(9)
    np.testing.assert_array_equal(np.asarray(outs[1][0](x, training=True)), np.asarray(outs[0][0](x, training=True)))
