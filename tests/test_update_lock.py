"""One update run per problem: the lock in the registry database, held through pauses."""

from __future__ import annotations

import threading
import time

import pytest

from lstmops.registry import Registry
from lstmops.update import lock


@pytest.fixture
def engine(tmp_path):
    return Registry(f"sqlite:///{tmp_path / 'db.sqlite'}", folder=tmp_path / "registry").engine


def test_a_second_run_is_refused_while_the_first_lives(engine):
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    with pytest.raises(lock.UpdateBusy, match="update run run-1 .ann@host. has held the update lock"):
        lock.acquire(engine, "echo", "run-2", "bob@host", is_alive=lambda run: True)
    lock.acquire(engine, "damped_sine", "run-2", "bob@host", is_alive=lambda run: True)  # other problems proceed
    assert lock.holder(engine, "echo").run_id == "run-1"


def test_the_same_run_may_take_its_lock_again_after_a_restart(engine):
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    assert lock.holder(engine, "echo").run_id == "run-1"


def test_a_dead_holders_lock_is_taken_over(engine):
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    lock.acquire(engine, "echo", "run-2", "bob@host", is_alive=lambda run: run != "run-1")
    assert lock.holder(engine, "echo").run_id == "run-2"


def test_a_waiting_run_starts_once_the_first_releases(engine):
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    threading.Timer(0.5, lock.release, args=(engine, "echo", "run-1")).start()
    started = time.monotonic()
    lock.acquire(engine, "echo", "run-2", "bob@host", is_alive=lambda run: True, wait_s=10, poll_s=0.1)
    assert 0.4 < time.monotonic() - started < 10
    assert lock.holder(engine, "echo").run_id == "run-2"


def test_release_only_frees_the_holders_own_lock(engine):
    lock.acquire(engine, "echo", "run-1", "ann@host", is_alive=lambda run: True)
    assert not lock.release(engine, "echo", "run-2")
    assert lock.release(engine, "echo", "run-1")
    assert lock.holder(engine, "echo") is None
