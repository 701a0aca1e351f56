"""Fit R independently seeded models as one batched computation (JAX ``vmap`` over replicas).

Small LSTMs on a CPU are bound by per-step dispatch and by XLA compiling each model's
train step, not by arithmetic. So R repeats of one training (robust evaluation, the
update gate's arms) are run side by side: one model is built per seed exactly as
:func:`lstmops.modeling.training.fit` builds it, their trainable, non-trainable (this
includes the dropout seed-generator states) and optimiser variables are stacked along
a new leading replica axis, and one jitted function runs a whole epoch for all
replicas (``lax.scan`` over the batches, ``jax.vmap`` over the replicas of Keras'
stateless forward pass, loss, gradient and ``optimizer.stateless_apply``).

Each replica keeps everything a sequential fit of its seed has:

* its initial weights (the model is built right after ``keras.utils.set_random_seed(seed)``);
* its data order: Keras shuffles with the global NumPy stream that ``set_random_seed``
  seeds, and draws one permutation while building the fit before the first epoch's;
  replica ``seed`` replays that stream (``np.random.RandomState(seed)``), so the
  batches are the very ones ``fit`` would use;
* its dropout masks (its own seed-generator state);
* early stopping on its own validation loss with Keras' ``EarlyStopping`` rule, and its
  best weights restored at the end.

Results are ordinary :class:`~lstmops.modeling.training.FitResult` objects whose
``model`` is the replica's own compiled Keras model holding its weights (and its
optimiser state), so saving, scoring and continued training work as after ``fit``.

A replica whose loss turns NaN does not touch the others (vmap keeps them apart); its
history shows the NaN, as a diverged sequential run's does.

Anything but the JAX backend, a single seed, or a model that cannot be traced under
``vmap`` falls back to one sequential ``fit`` per seed (the reason is logged once).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmops.config import TrainSpec
from lstmops.cores import usable_cores
from lstmops.errors import ConfigError
from lstmops.modeling.architectures import ModelSpec, Task, get_architecture
from lstmops.modeling.training import FitResult, device_info, fit, set_seed, use_default_backend

log = logging.getLogger(__name__)

_logged_reasons: set[str] = set()


class ReplicaUnsupported(RuntimeError):
    """The model cannot be trained as vmapped replicas (raised while tracing or compiling)."""


@dataclass(frozen=True)
class ReplicaProgress:
    """What a ``progress`` callback gets after each epoch.

    Attributes:
        epoch: the epoch just finished (1-based).
        epochs: the most epochs the run may take.
        replicas: R.
        done: replicas that have stopped early (or all of them after the last epoch).
        mean_loss: mean training loss of the replicas that ran this epoch (NaN ones left out).
        mean_val_loss: the same for validation loss, or None without validation data.
    """

    epoch: int
    epochs: int
    replicas: int
    done: int
    mean_loss: float
    mean_val_loss: float | None


Progress = Callable[[ReplicaProgress], Any]


def fallback_reason(n_seeds: int) -> str | None:
    """Why ``n_seeds`` fits would run one after another rather than as replicas, or None."""
    use_default_backend()
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        return f"the {backend!r} Keras backend has no vmap; replicas need 'jax'"
    if n_seeds < 2:
        return "a single seed gains nothing from batching"
    return None


def fit_replicas(
    architecture: str, spec: ModelSpec, task: Task, train_xy: tuple[np.ndarray, np.ndarray],
    val_xy: tuple[np.ndarray, np.ndarray] | None, train: TrainSpec, seeds: Sequence[int],
    epochs: int | None = None, progress: Progress | None = None, build: Callable[[int], Any] | None = None,
) -> list[FitResult]:
    """Fit one model per seed, all at once; the same contract as ``fit`` for each seed.

    Args:
        architecture, spec, task, train_xy, val_xy, train, epochs: as for
            :func:`lstmops.modeling.training.fit`.
        seeds: one seed per replica (a replica equals ``fit(..., seed=s)`` in its initial
            weights, data order and dropout stream; results differ only by float rounding).
        progress: called after every epoch with a :class:`ReplicaProgress`.
        build: makes replica ``seed``'s compiled model instead of building ``architecture``
            afresh (called right after ``keras.utils.set_random_seed(seed)``), e.g. the
            deployed model reloaded and recompiled, for the update flow's continued arms.
            Without JAX or with one seed, it is trained by Keras' own ``fit``.

    Returns:
        One :class:`FitResult` per seed, in the order of ``seeds``. Replicas share their
        wall time, so each result's ``seconds`` is the batched run's time divided by R
        (``device["replicas"]`` says R).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        return []
    reason = fallback_reason(len(seeds))
    if reason is None:
        try:
            return _fit_vmapped(architecture, spec, task, train_xy, val_xy, train, seeds, epochs, progress, build)
        except ReplicaUnsupported as err:
            reason = f"architecture {architecture!r} does not train under vmap ({err})"
    _log_once(reason)
    if build is not None:
        return [_fit_built(build, train_xy, val_xy, train, seed, epochs) for seed in seeds]
    return _fit_sequential(architecture, spec, task, train_xy, val_xy, train, seeds, epochs, progress)


def _fit_built(build: Callable[[int], Any], train_xy, val_xy, train: TrainSpec, seed: int,
               epochs: int | None) -> FitResult:
    """One replica's model from ``build``, trained by Keras' own ``fit`` (the sequential path)."""
    import keras

    set_seed(seed)
    model = build(seed)
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if val_xy is not None and train.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience,
                                                       restore_best_weights=True))
    started = time.perf_counter()
    hist = model.fit(*train_xy, batch_size=train.batch_size, epochs=epochs or train.epochs, validation_data=val_xy,
                     callbacks=callbacks, shuffle=True, verbose=0).history
    history = {k: [float(v) for v in vals] for k, vals in hist.items()}
    best = int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else len(history["loss"])
    return FitResult(model=model, history=history, best_epoch=best, seconds=time.perf_counter() - started,
                     device=device_info())


def _log_once(reason: str) -> None:
    if reason not in _logged_reasons:
        _logged_reasons.add(reason)
        log.info("fit_replicas: fitting one seed at a time: %s", reason)


def _fit_sequential(architecture, spec, task, train_xy, val_xy, train, seeds, epochs, progress) -> list[FitResult]:
    results = []
    for done, seed in enumerate(seeds, start=1):
        result = fit(architecture, spec, task, train_xy, val_xy, train, seed, epochs=epochs)
        results.append(result)
        if progress is not None:
            val = result.history.get("val_loss")
            progress(ReplicaProgress(epoch=len(result.history["loss"]), epochs=epochs or train.epochs,
                                     replicas=len(seeds), done=done, mean_loss=result.history["loss"][-1],
                                     mean_val_loss=val[-1] if val else None))
    return results


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


THREADS_ENV = "LSTMOPS_REPLICA_THREADS"


def share_of_cores(processes: int) -> dict[str, str]:
    """Environment for ``processes`` training processes side by side: each gets its share of the cores.

    Empty when ``$LSTMOPS_REPLICA_THREADS`` is already set (the user's, or an outer
    division's: a rehearsal's workers each run update flows).
    """
    if os.environ.get(THREADS_ENV, "").strip():
        return {}
    return {THREADS_ENV: str(max(1, usable_cores() // max(1, processes)))}


def replica_threads(n_rep: int) -> int:
    """How many groups of replicas train side by side, one thread each (at most ``n_rep``).

    XLA runs one vmapped training step of small LSTMs on one CPU core: its batched
    products are too small for its intra-op threads. Groups of replicas driven from
    separate threads use the other cores (JAX releases the GIL while a program runs).
    ``$LSTMOPS_REPLICA_THREADS`` sets the number (the update flow and the rehearsal divide
    the cores among their processes this way, see :func:`share_of_cores`); otherwise it
    is the CPU cores this process may use, and 1 on a GPU, where one program already
    fills the device.
    """
    import jax

    wanted = os.environ.get(THREADS_ENV, "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise ConfigError(f"{THREADS_ENV} must be a whole number >= 1, not {wanted!r}")
        threads = int(wanted)
    elif jax.default_backend() != "cpu":
        threads = 1
    else:
        threads = usable_cores()
    return max(1, min(threads, n_rep))


@dataclass
class _Group:
    """Replicas ``rows`` of the run, trained by one thread with its own compiled programs."""

    rows: slice
    state: tuple
    programs: dict
    best_state: Any = None   # (trainable, non-trainable) weights at each replica's best epoch
    final_state: Any = None  # everything as it stood when each replica stopped


def _fit_vmapped(architecture, spec, task, train_xy, val_xy, train, seeds, epochs, progress,
                 build=None) -> list[FitResult]:
    import jax
    import jax.numpy as jnp

    started = time.perf_counter()  # like fit's seconds, the clock covers compiling
    n_rep = len(seeds)
    epochs = epochs or train.epochs
    x, y = train_xy
    if train.train_rows is not None:
        x, y = x[: train.train_rows], y[: train.train_rows]
    x, y = np.asarray(x), np.asarray(y)
    n, batch = len(x), train.batch_size
    full, rest = divmod(n, batch)

    # One model per seed, seeded and built as ``fit`` does; built for training like ``fit``
    # (Keras builds the loss and the optimiser on a first batch before training).
    models = []
    for seed in seeds:
        set_seed(seed)
        model = build(seed) if build is not None else get_architecture(architecture).build(spec, task)
        model._symbolic_build(data_batch=(x[:batch], y[:batch]))  # noqa: SLF001 - what fit() does first
        models.append(model)
    template = models[0]
    weight_ids = {id(w) for w in template.non_trainable_weights}
    restorable = [id(v) in weight_ids for v in template.non_trainable_variables]
    optimizer = template.optimizer
    metrics_vars = [v.value for v in template.metrics_variables]

    def stacked(members: list) -> tuple:
        def stack(get) -> list:
            return [jnp.stack(values) for values in zip(*(get(m) for m in members))]

        return (stack(lambda m: [v.value for v in m.trainable_variables]),
                stack(lambda m: [v.value for v in m.non_trainable_variables]),
                stack(lambda m: [v.value for v in m.optimizer.variables]))

    def replica_step(tv, ntv, ov, xb, yb):
        def loss_fn(tv, ntv):
            return template.compute_loss_and_updates(tv, ntv, metrics_vars, xb, yb, None, training=True,
                                                     optimizer_variables=ov)

        (_, (loss, _, ntv, _)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        return tv, ntv, ov, loss

    vstep = jax.vmap(replica_step)

    def gathered_step(state, x_all, y_all, idx):  # idx: (R, b) row numbers per replica
        tv, ntv, ov, loss = vstep(*state, x_all[idx], y_all[idx])
        return (tv, ntv, ov), loss

    def run_epoch(state, x_all, y_all, idx):  # idx: (steps, R, batch)
        return jax.lax.scan(lambda s, i: gathered_step(s, x_all, y_all, i), state, idx)

    # Validation as ``fit`` runs it: batches of ``batch_size`` in order, each batch's loss
    # weighted by its rows. Every LSTM call draws its dropout masks even when not
    # training, so each batch advances the seed-generator states, which are carried on.
    def replica_eval(tv, ntv, xb, yb):
        _, (loss, _, ntv, _) = template.compute_loss_and_updates(tv, ntv, metrics_vars, xb, yb, None, training=False)
        return ntv, loss

    veval = jax.vmap(replica_eval, in_axes=(0, 0, None, None))

    def eval_batches(tv, ntv, xs, ys):  # xs: (steps, batch, ...), shared by all replicas
        return jax.lax.scan(lambda ntv, xy: veval(tv, ntv, *xy), ntv, (xs, ys))

    @jax.jit
    def keep_where(mask, new, old):
        def pick(a, b):
            return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

        return jax.tree_util.tree_map(pick, new, old)

    x_dev, y_dev = jnp.asarray(x), jnp.asarray(y)
    if val_xy is not None:
        vx, vy = np.asarray(val_xy[0]), np.asarray(val_xy[1])
        n_val = len(vx)
        val_full, val_rest = divmod(n_val, batch)
        cut = val_full * batch
        vx_full = jnp.asarray(vx[:cut].reshape((val_full, batch) + vx.shape[1:]))
        vy_full = jnp.asarray(vy[:cut].reshape((val_full, batch) + vy.shape[1:]))
        vx_rest, vy_rest = jnp.asarray(vx[cut:]), jnp.asarray(vy[cut:])

    def compiled(state: tuple) -> dict:
        """The group's training and validation programs for its number of replicas."""
        size = len(state[0][0])
        out = {}
        if full:
            out["epoch"] = jax.jit(run_epoch, donate_argnums=0).lower(
                state, x_dev, y_dev, jnp.zeros((full, size, batch), jnp.int32)).compile()
        if rest:
            out["rest"] = jax.jit(gathered_step, donate_argnums=0).lower(
                state, x_dev, y_dev, jnp.zeros((size, rest), jnp.int32)).compile()
        if val_xy is not None:
            if val_full:
                out["eval"] = jax.jit(eval_batches).lower(state[0], state[1], vx_full, vy_full).compile()
            if val_rest:
                out["eval_rest"] = jax.jit(veval).lower(state[0], state[1], vx_rest, vy_rest).compile()
        return out

    # Groups as even as possible (sizes differ by at most one: at most two programs to compile).
    bounds = np.linspace(0, n_rep, replica_threads(n_rep) + 1).round().astype(int)
    rows = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    states = [stacked(models[r]) for r in rows]
    pool = ThreadPoolExecutor(max_workers=len(rows), thread_name_prefix="replicas")
    try:
        # Trace and compile before training: a model that cannot be vmapped fails here.
        by_size: dict[int, tuple] = {}
        for r, state in zip(rows, states):
            by_size.setdefault(r.stop - r.start, state)
        try:
            programs = dict(zip(by_size, pool.map(compiled, by_size.values())))
        except Exception as err:  # any tracing failure means: not vmappable here
            raise ReplicaUnsupported(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
        groups = [_Group(r, s, programs[r.stop - r.start]) for r, s in zip(rows, states)]
        history = _train(groups, pool, epochs, n_rep, train, seeds, x_dev, y_dev,
                         (vx_full, vy_full, vx_rest, vy_rest) if val_xy is not None else None, keep_where, progress)
    finally:
        pool.shutdown(wait=True)

    seconds = (time.perf_counter() - started) / n_rep
    device = device_info() | {"replicas": str(n_rep)}
    results = []
    for group in groups:
        tv, ntv, ov = group.final_state
        if group.best_state is not None:  # kept only when stopping early on validation loss
            # Keras restores the model's weights (``get_weights``): trainable and non-trainable
            # weights, but not seed-generator states, which stay as training left them.
            tv = group.best_state[0]
            ntv = [b if w else f for b, f, w in zip(group.best_state[1], ntv, restorable)]
        tv, ntv, ov = ([np.asarray(a) for a in part] for part in (tv, ntv, ov))
        for i, model in enumerate(models[group.rows]):
            for var, values in zip(model.trainable_variables, tv):
                var.assign(values[i])
            for var, values in zip(model.non_trainable_variables, ntv):
                var.assign(values[i])
            for var, values in zip(model.optimizer.variables, ov):
                var.assign(values[i])
            hist = history[group.rows.start + i]
            best_epoch = int(np.argmin(hist["val_loss"])) + 1 if "val_loss" in hist else len(hist["loss"])
            results.append(FitResult(model=model, history=hist, best_epoch=best_epoch, seconds=seconds,
                                     device=device))
    return results


def _train(groups: list[_Group], pool: ThreadPoolExecutor, epochs: int, n_rep: int, train: TrainSpec,
           seeds: list[int], x_dev: Any, y_dev: Any, val: tuple | None, keep_where: Callable,
           progress: Progress | None) -> list[dict[str, list[float]]]:
    """The epochs of every group, side by side on ``pool``, with per-replica early stopping.

    Leaves each group's ``final_state`` (and ``best_state`` when stopping early) set and
    returns each replica's history, in the order of ``seeds``.
    """
    import jax
    import jax.numpy as jnp

    n, batch = len(x_dev), train.batch_size
    full, rest = divmod(n, batch)
    if val is not None:
        vx_full, vy_full, vx_rest, vy_rest = val
        n_val = len(vx_full) * batch + len(vx_rest)
        val_full, val_rest = len(vx_full), len(vx_rest)

    # Keras draws one permutation from the seeded global NumPy stream while it builds the
    # fit, then one per epoch: replay exactly that stream per replica.
    orders = [np.random.RandomState(seed) for seed in seeds]
    for order in orders:
        order.permutation(n)

    def one_epoch(group: _Group, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One epoch of ``group``'s replicas (perm: their (r, n) row orders): mean losses, validation losses."""
        size, run = len(perm), group.programs
        losses = np.zeros(size)
        if full:
            idx = jnp.asarray(perm[:, : full * batch].reshape(size, full, batch).transpose(1, 0, 2))
            group.state, step_losses = run["epoch"](group.state, x_dev, y_dev, idx)
            losses += np.asarray(step_losses, np.float64).sum(axis=0) * batch
        if rest:
            group.state, rest_loss = run["rest"](group.state, x_dev, y_dev, jnp.asarray(perm[:, full * batch:]))
            losses += np.asarray(rest_loss, np.float64) * rest
        if val is None:
            return losses / n, None
        val_losses = np.zeros(size)
        tv, ntv, ov = group.state
        if val_full:
            ntv, batch_losses = run["eval"](tv, ntv, vx_full, vy_full)
            val_losses += np.asarray(batch_losses, np.float64).sum(axis=0) * batch
        if val_rest:
            ntv, rest_loss = run["eval_rest"](tv, ntv, vx_rest, vy_rest)
            val_losses += np.asarray(rest_loss, np.float64) * val_rest
        group.state = (tv, ntv, ov)
        return losses / n, val_losses / n_val

    stopping = val is not None and train.patience > 0
    history: list[dict[str, list[float]]] = [{"loss": []} | ({"val_loss": []} if val is not None else {})
                                              for _ in seeds]
    active = np.ones(n_rep, bool)
    best = np.full(n_rep, np.nan)
    have_best = np.zeros(n_rep, bool)
    wait = np.zeros(n_rep, int)

    for epoch in range(epochs):
        perm = np.stack([order.permutation(n) for order in orders]).astype(np.int32)  # (R, n)
        # A group whose replicas have all stopped has nothing left to train.
        running = [g for g in groups if active[g.rows].any()]
        losses, val_losses = np.full(n_rep, np.nan), None if val is None else np.full(n_rep, np.nan)
        for group, (group_losses, group_val) in zip(
                running, pool.map(lambda g: one_epoch(g, perm[g.rows]), running)):
            losses[group.rows] = group_losses
            if val_losses is not None:
                val_losses[group.rows] = group_val
        ran = active.copy()
        for r in np.flatnonzero(ran):
            history[r]["loss"].append(float(losses[r]))
            if val_losses is not None:
                history[r]["val_loss"].append(float(val_losses[r]))

        if stopping:  # keras.callbacks.EarlyStopping(patience, restore_best_weights=True), per replica
            wait[ran] += 1
            improved = ran & (~have_best | (val_losses < best))
            best[improved], wait[improved], have_best[improved] = val_losses[improved], 0, True
            for group in running:
                if improved[group.rows].any():
                    current = (group.state[0], group.state[1])
                    group.best_state = (jax.tree_util.tree_map(jnp.copy, current) if group.best_state is None
                                        else keep_where(jnp.asarray(improved[group.rows]), current, group.best_state))
            active &= ~(ran & ~improved & (wait >= train.patience) & (epoch > 0))
        for group in running:
            group.final_state = (jax.tree_util.tree_map(jnp.copy, group.state) if group.final_state is None
                                 else keep_where(jnp.asarray(ran[group.rows]), group.state, group.final_state))
        if progress is not None:
            progress(ReplicaProgress(
                epoch=epoch + 1, epochs=epochs, replicas=n_rep,
                done=n_rep if epoch + 1 == epochs else int((~active).sum()),
                mean_loss=_nanmean(losses[ran]),
                mean_val_loss=None if val_losses is None else _nanmean(val_losses[ran])))
        if not active.any():
            break
    return history
