"""Stopping on a signal without losing work: SIGTERM (what SLURM, torchrun and `scancel` send first), SIGUSR1 and
SIGUSR2 (what `sbatch --signal` and submitit's launcher send before a time limit or a preemption).

- Inside a training stage the signal only sets a flag. At the end of the current optimizer step every rank asks
  whether any rank got one (`stop_agreed`, one tiny collective per step, so all ranks stop at the same step),
  the stage writes a checkpoint and the job leaves with `Preempted`. A rerun, or SLURM's requeue, resumes from it.
- Anywhere else (generation, evaluation, waiting) `Preempted` is raised at once: those stages publish their
  directory only when complete, so an interrupted one is simply redone.
- At the top (spin_bench/cli/app.py) `hand_over` gives the signal to whoever had it before: submitit's handler,
  which requeues the job and exits; otherwise the process exits with 128 + the signal's number, as a process
  killed by it would, and SLURM requeues it when the job was preempted or `scontrol requeue`d.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, NoReturn

from spin_bench import ranks

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
_state: dict[str, Any] = {"signal": None, "checkpointable": False, "previous": {}}


class Preempted(BaseException):  # noqa: N818 - like KeyboardInterrupt: not an error, and no `except Exception` eats it
    """The job was asked to stop by `signum`; what it had done is saved."""

    def __init__(self, signum: int, where: str):
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received: stopped in stage {where}")


def install() -> None:
    """Handle SIGNALS in this process (once; the handlers they replace are kept for `hand_over`). Only the main
    thread may set handlers: a job a launcher runs in another thread keeps the process's own."""
    if threading.current_thread() is not threading.main_thread():
        log.warning("not the main thread: signals keep their handlers, a training stage is not checkpointed on one")
        return
    for signum in SIGNALS:
        previous = signal.signal(signum, _handle)
        if previous is not _handle:
            _state["previous"][signum] = previous


def _handle(signum: int, frame: FrameType | None) -> None:
    _state["signal"] = signum
    if not _state["checkpointable"]:
        raise Preempted(signum, ranks.current_stage())
    log.warning("%s: %s received: checkpointing at the end of this step", ranks.describe(), signal.Signals(signum).name)


def requested() -> int | None:
    """The signal this process received, if any."""
    return _state["signal"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def checkpointable() -> Iterator[None]:
    """A block (the training loop) that checks `stop_agreed` at each step instead of being interrupted."""
    _state["checkpointable"] = True
    try:
        yield
    finally:
        _state["checkpointable"] = False


def stop_agreed() -> bool:
    """Whether any rank received a signal: the same answer on every rank, at the same step."""
    return ranks.any_rank(_state["signal"] is not None)


def hand_over(signum: int) -> NoReturn:
    """Leave as the signal's previous owner would have us leave (see the module's docstring)."""
    previous = _state["previous"].get(signum)
    if callable(previous):
        previous(signum, None)  # submitit: requeue on rank 0 and exit; on the other ranks it returns
    sys.exit(128 + signum)
