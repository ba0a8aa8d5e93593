"""Rank logic on one process (every helper is the identity), and what a signal does (spin_bench/preemption.py).
Several real processes: tests/scale."""

from __future__ import annotations

import os
import signal

import pytest

from spin_bench import preemption, ranks


def test_on_one_process_every_rank_helper_is_the_identity(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    ranks.init(timeout_s=1.0)  # no process group for one process
    assert ranks.is_main() and ranks.world_size() == 1 and ranks.describe() == "rank 0 of 1"
    assert ranks.broadcast({"a": 1}) == {"a": 1} and ranks.gather(3) == [3] and ranks.any_rank(True)
    built = []
    ranks.on_main(lambda: built.append(1))
    assert built == [1]


def test_slurm_tasks_become_ranks(monkeypatch):
    monkeypatch.setattr(os, "environ", {})  # what the mapping sets stays in this test
    slurm = {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
             "SLURM_STEP_ID": "0", "SLURM_JOB_NODELIST": "node1,node2"}  # fmt: skip
    os.environ.update(slurm)
    ranks.adopt_slurm_tasks()
    assert (ranks.rank(), ranks.world_size(), ranks.local_rank()) == (3, 4, 1)
    assert os.environ["MASTER_ADDR"] == "node1" and os.environ["MASTER_PORT"] == str(20000 + 42)


def test_the_log_names_the_rank(monkeypatch):
    import logging

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "message", None, None)
    assert ranks.RankFilter().filter(record) and record.rank == "1/4"


@pytest.fixture
def handlers():
    """preemption's handlers for the test, and this process's own handlers and state back afterwards."""
    saved = {s: signal.getsignal(s) for s in preemption.SIGNALS}
    state = dict(preemption._state, previous={})
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    preemption._state.clear()
    preemption._state.update(state)


def test_a_signal_outside_training_stops_at_once(handlers):
    preemption.install()
    with pytest.raises(preemption.Preempted, match="SIGUSR1 received"):
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.sigtimedwait([], 0.1)  # give the interpreter a chance to run the handler


def test_a_signal_inside_training_waits_for_the_step_and_is_agreed(handlers):
    preemption.install()
    with preemption.checkpointable():
        assert not preemption.stop_agreed()
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.1)
        assert preemption.requested() == signal.SIGTERM and preemption.stop_agreed()


def test_the_signal_is_handed_to_its_previous_owner(handlers):
    received = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))  # e.g. submitit's requeue
    preemption.install()
    with pytest.raises(SystemExit) as exit_:
        preemption.hand_over(signal.SIGUSR2)
    assert received == [signal.SIGUSR2] and exit_.value.code == 128 + signal.SIGUSR2


def test_each_rank_runs_inference_on_its_own_gpu_where_cuda_is_available(monkeypatch):
    import torch

    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ranks.device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert ranks.device() == "cuda:3"  # each rank its own GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert ranks.device() == "cuda:0"  # the one GPU SLURM binds to each task (gpus_per_task=1)
