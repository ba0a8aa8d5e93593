"""Every rank decision of a run, in one place: who is rank 0, how ranks agree, and how long any of them waits.

A run is one process, or N processes started by `torchrun --nproc_per_node N`, `accelerate launch --multi_gpu
--num_processes N`, or SLURM (`srun` with N tasks:
`adopt_slurm_tasks`, called by the entry point before the config is checked, maps SLURM's variables to
torch.distributed's). Every rank runs the same
pipeline, in the same order, so the same stages are reached in the same sequence; at each stage:

- rank 0 decides whether the stage is cached and every rank follows that one decision (`broadcast`);
- stages that need every rank (training, generation) build on all of them; the others (the world, evaluation)
  build on rank 0 while the rest wait for its verdict (`wait_for_main`), as long as rank 0 is alive;
- only rank 0 writes what a run keeps (stage directories, results, diagnostics, W&B, reports).

No wait is unbounded. Collectives (torch.distributed over gloo, which also carries the control messages on GPUs)
fail as soon as a peer's connection drops, and time out after `timeout_s` if a peer hangs alive. A rank waiting
for rank 0's one-rank work polls a counter rank 0 bumps every `HEARTBEAT_S` in the process group's store: if it
stops moving for `STALE_S`, rank 0 is gone and the waiter fails, naming rank 0 and the stage. Work of any length
(hours of evaluation at 7B) is waited for as long as rank 0 is alive.

On one process every helper here is the identity (no process group, no store): one code path for both.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_S = 2.0  # how often every rank bumps its counter in the store
STALE_S = 60.0  # a counter that has not moved for this long belongs to a dead rank (well inside 2 minutes)
_state: dict[str, Any] = {"stage": None, "waits": 0, "group": None}


class RankFailure(RuntimeError):
    """A rank died or stopped answering while others waited for it."""


def adopt_slurm_tasks() -> None:
    """Inside an `srun` step of N > 1 tasks without a launcher's variables, map SLURM's to torch.distributed's:
    RANK, WORLD_SIZE, LOCAL_RANK from SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR the allocation's
    first node; MASTER_PORT derived from the job id, so every task of the job (and its requeued restart) agrees.

    By hand because submitit's `TorchDistributedEnvironment` does this only inside submitit's own jobs, and a
    plain `sbatch` script's `srun spin-bench ...` must work too."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2 or "SLURM_STEP_ID" not in os.environ:
        return
    nodes = os.environ["SLURM_JOB_NODELIST"]
    if "[" in nodes:  # a compressed list (node[01-04]): SLURM's own tool expands it
        nodes = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               check=True).stdout  # fmt: skip
    os.environ.update(
        RANK=os.environ["SLURM_PROCID"],
        WORLD_SIZE=os.environ["SLURM_NTASKS"],
        LOCAL_RANK=os.environ["SLURM_LOCALID"],
        MASTER_ADDR=nodes.replace(",", " ").split()[0],
        MASTER_PORT=os.environ.get("MASTER_PORT", str(20000 + int(os.environ["SLURM_JOB_ID"]) % 40000)),
    )


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def device() -> str:
    """Where this rank runs inference (generation; on rank 0 also evaluation and probes): where CUDA is
    available the GPU `init` gives it, the local rank modulo the GPUs it sees (each rank's own GPU, or the one
    GPU SLURM binds to each task), else `cpu`. Training is placed by HF Trainer and DeepSpeed."""
    import torch  # here, as torch.distributed in `_dist`: importing this module stays cheap

    return f"cuda:{local_rank() % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"


def describe() -> str:
    return f"rank {rank()} of {world_size()}"


def init(timeout_s: float) -> None:
    """Join the process group of a multi-process run (once per process) and start this rank's heartbeat.

    gloo on CPUs; on GPUs NCCL for the tensors the training engine moves, plus a gloo group for this module's
    control messages, whose waits stay on the CPU and outlive NCCL's watchdog. HF Trainer and DeepSpeed find the
    group already made and use it, so `timeout_s` bounds their collectives too."""
    if world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(device())
        timeout = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
        _state["group"] = dist.new_group(backend="gloo", timeout=timeout) if cuda else None
        threading.Thread(target=_beat, args=(dist.distributed_c10d._get_default_store(),), daemon=True).start()
        log.info("joined the process group: %s (%s)", describe(), dist.get_backend())


def _beat(store: Any) -> None:
    beats = 0
    while True:
        beats += 1
        try:
            store.set(f"spin_bench/heartbeat/{rank()}", str(beats))
        except Exception:  # noqa: BLE001 - the store's host is gone: the waits that need it fail on their own
            return
        time.sleep(HEARTBEAT_S)


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def broadcast(value: T) -> T:
    """Rank 0's `value` on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    with _collective("broadcast"):
        _dist().broadcast_object_list(box, src=0, group=_state["group"])
    return box[0]


def gather(value: T) -> list[T]:
    """Every rank's `value`, in rank order, on every rank."""
    if world_size() == 1:
        return [value]
    out: list[Any] = [None] * world_size()
    with _collective("gather"):
        _dist().all_gather_object(out, value, group=_state["group"])
    return out


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any: a decision all ranks take at the same step."""
    return any(gather(bool(flag)))


def barrier() -> None:
    if world_size() > 1:
        with _collective("barrier"):
            _dist().barrier(group=_state["group"])


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling a shared cache), then the other ranks (reading it)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def on_main(build: Callable[[], None]) -> None:
    """`build()` on rank 0 only; the other ranks wait for it to finish (while rank 0 is alive)."""
    if world_size() == 1:
        build()
        return
    _state["waits"] += 1  # every rank counts the same waits in the same order: the key is the same on all
    key = f"spin_bench/done/{_state['waits']}"
    store = _dist().distributed_c10d._get_default_store()
    if not is_main():
        wait_for_main(store, key)
        return
    try:
        build()
    except BaseException:
        store.set(key, "failed")
        raise
    store.set(key, "ok")


def wait_for_main(store: Any, key: str) -> None:
    """Poll `key` until rank 0 sets it; fail when rank 0 fails or its heartbeat stops."""
    heartbeat, last, moved = "spin_bench/heartbeat/0", None, time.monotonic()
    while True:
        try:
            if store.check([key]):
                if store.get(key) != b"ok":
                    raise RankFailure(f"{describe()}: rank 0 failed in stage {current_stage()}")
                return
            beat = store.get(heartbeat) if store.check([heartbeat]) else None
        except RankFailure:
            raise
        except Exception as err:  # noqa: BLE001 - the store lives with rank 0 (or its launcher)
            raise RankFailure(f"{describe()}: lost rank 0 in stage {current_stage()} (it failed or exited; its own "
                              f"log says which): {err}") from err  # fmt: skip
        if beat != last:
            last, moved = beat, time.monotonic()
        elif time.monotonic() - moved > STALE_S:
            raise RankFailure(f"{describe()}: rank 0 stopped answering for {STALE_S:.0f} s in stage "
                              f"{current_stage()}")  # fmt: skip
        time.sleep(0.5)


def leave() -> None:
    """Every rank's last step of a run: wait until all ranks are here.

    Under `srun` no launcher holds the process group's store: rank 0's process does. Had rank 0 exited just
    after setting the verdict of the run's last one-rank stage (`on_main`), a rank polling for that verdict up to
    half a second later would find the store gone and fail a run that succeeded."""
    barrier()


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        raise RankFailure(f"{describe()}: {what} failed in stage {current_stage()} (a rank has died or hangs): "
                          f"{err}") from err  # fmt: skip


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the stage this rank is in, for the messages of failed waits and for the log."""
    previous, _state["stage"] = _state["stage"], name
    try:
        yield
    except Exception as err:
        if world_size() > 1 and not isinstance(err, RankFailure):
            log.error("%s: stage %s failed: %s", describe(), name, err)
        raise
    finally:
        _state["stage"] = previous


def current_stage() -> str:
    return _state["stage"] or "(between stages)"


class RankFilter(logging.Filter):
    """Adds `%(rank)s` to every log record: `0` on one process, `1/4` on rank 1 of 4 (conf/hydra/default.yaml)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = f"{rank()}/{world_size()}" if world_size() > 1 else str(rank())
        return True
