"""The scale tier (`make test-scale`): real processes under torchrun and a real SLURM cluster (scripts/slurm/up),
on the smoke study with one iteration.

- 2 ranks over gloo, ZeRO-2 and ZeRO-3, against 1 process: per-step losses within 1e-4, greedy generations
  identical, result rows equal; the same study under `accelerate launch`;
- a killed rank ends the job within 2 minutes, naming the stage, and a rerun completes;
- a run killed mid-stage (SIGKILL) or stopped by SIGTERM resumes from its checkpoint, with the same scores;
- rank 0, which hosts the process group's store under srun, ends only once every rank has read the verdict of
  the run's last one-rank stage;
- a study submitted through the SLURM launcher with 2 tasks ends with the local run's results; a requeued job
  resumes from its checkpoint, with no duplicate rows and one W&B run; a cancelled job fails the sweep without
  stopping the other job.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spin_bench.stages import read_json, read_jsonl
from tests.conftest import subprocess_env

pytestmark = pytest.mark.scale
BIN = Path(sys.executable).parent
# The base stage's 200 SFT rows in full batches of 20: an epoch's last, partial batch is the one step at which N
# ranks and one process differ (docs/scale.md), so the comparison is made on full batches.
STUDY = ["experiment=smoke", "method=spin", "method.iterations=1", "engine.logging_steps=1", "tracking=none",
         "model.base_sft.batch_size=20"]  # fmt: skip
BASE_CHECKPOINT = ".cache/train/.base-*.partial/resume/checkpoint-{step}/spin_bench_checkpoint.json"


def command(root: Path, *args: str, ranks: int = 1) -> list[str]:
    entry = [str(BIN / "torchrun"), "--nproc_per_node", str(ranks), "-m", "spin_bench.cli"] if ranks > 1 else [
        str(BIN / "spin-bench")]  # fmt: skip
    return [*entry, *STUDY, f"paths.root_dir={root}", *args]


def run(root: Path, *args: str, ranks: int = 1, timeout: int = 600) -> str:
    out = subprocess.run(command(root, *args, ranks=ranks), capture_output=True, text=True, timeout=timeout,
                         env=subprocess_env())  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def interrupt(root: Path, *args: str, when: str, sig: int, who: str = "all", ranks: int = 1,
              timeout: int = 600) -> tuple[int, float, str]:  # fmt: skip
    """Start the study, and once the file pattern `when` exists under `root` send `sig` to every process of the
    job (`all`, as SLURM and a terminal do) or to one rank's process; (exit status, seconds from the signal to
    the job's end, output)."""
    log = root.parent / f"{root.name}.log"
    with open(log, "w") as out:
        job = subprocess.Popen(command(root, *args, ranks=ranks), stdout=out, stderr=subprocess.STDOUT,
                               env=subprocess_env(), start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while not glob.glob(str(root / when)):
            assert job.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        if who == "all":
            os.killpg(job.pid, sig)
        else:
            os.kill(rank_pid(job.pid, int(who)), sig)
        signalled = time.monotonic()
        status = job.wait(timeout=300)
    return status, time.monotonic() - signalled, log.read_text()


def rank_pid(launcher: int, rank: int) -> int:
    """The process of `rank` among torchrun's workers (they carry RANK in their environment)."""
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != launcher):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and any(v.startswith(b"TORCHELASTIC_RUN_ID=") for v in environ):
            return pid
    raise LookupError(f"no process of rank {rank}")


def stages(root: Path, kind: str) -> dict[str, Path]:
    return {p.name: p for p in (root / ".cache" / kind).iterdir() if p.is_dir() and not p.name.startswith(".")}


def weights(stage: Path) -> dict[str, torch.Tensor]:
    return load_file(stage / "model" / "model.safetensors")


def max_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def results(root: Path) -> list[dict]:
    (path,) = (root / "runs" / "smoke").glob("spin-*/results.jsonl")
    return [{k: v for k, v in row.items() if k != "checkpoint"} for row in read_jsonl(path)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The uninterrupted one-process runs the others are compared with, per ZeRO preset."""
    roots = {}
    for preset in ("zero2", "zero3"):
        roots[preset] = tmp_path_factory.mktemp(f"one-{preset}")
        run(roots[preset], f"engine={preset}")
    return roots


@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_two_ranks_train_generate_and_score_as_one_process(one_process, tmp_path, preset):
    output = run(tmp_path, f"engine={preset}", ranks=2)
    assert "[rank 1/2]" in output and "[rank 0/2]" in output  # every line names its rank
    single = one_process[preset]
    trained = stages(tmp_path, "train")
    assert trained.keys() == stages(single, "train").keys()  # the process count is not part of any stage key
    for name, stage in trained.items():
        mine, theirs = (
            read_json(stage / "train_stats.json"),
            read_json(single / ".cache/train" / name / "train_stats.json"),
        )
        assert mine["zero_stage"] == int(preset[-1]) and mine["steps"] == theirs["steps"] > 1
        losses = [e["loss"] for e in mine["log_history"]]
        assert losses == pytest.approx([e["loss"] for e in theirs["log_history"]], abs=1e-4)
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)
    generated = stages(tmp_path, "generations")
    assert generated and generated.keys() == stages(single, "generations").keys()
    for name, stage in generated.items():
        assert (stage / "generations.jsonl").read_text() == (
            single / ".cache/generations" / name / "generations.jsonl"
        ).read_text()
    assert results(tmp_path) == results(single)
    assert len(list((tmp_path / "runs" / "smoke").glob("spin-*/results.jsonl"))) == 1  # rank 0 alone writes


def test_a_partial_last_batch_on_several_ranks_is_named(tmp_path):
    """200 SFT rows in batches of 16: the last step of the epoch is where N ranks and one process differ."""
    output = run(tmp_path, "model.base_sft.batch_size=16", "method.iterations=0", ranks=2)
    assert "200 rows are not a multiple of the batch 16: on 2 ranks accelerate tops" in output


def test_accelerate_launch_runs_the_study_on_two_ranks_as_one_process(one_process, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (accelerate's multi-process launcher, also on CPU; its
    `--cpu` mode would need MPI for more than one process)."""
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "-m", "spin_bench.cli"]
    out = subprocess.run([*launch, *STUDY, "engine=zero3", f"paths.root_dir={tmp_path}"], capture_output=True,
                         text=True, timeout=600, env=subprocess_env())  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "joined the process group: rank 1 of 2" in out.stdout + out.stderr
    assert results(tmp_path) == results(one_process["zero3"])


def test_a_killed_rank_ends_the_job_and_a_rerun_completes(one_process, tmp_path):
    at = BASE_CHECKPOINT.format(step=4)
    status, seconds, output = interrupt(tmp_path, "engine=zero3", "engine.checkpoint_steps=2", when=at,
                                        sig=signal.SIGKILL, who="1", ranks=2)  # fmt: skip
    assert status != 0 and seconds < 120, output[-3000:]
    # the survivor names the stage: its collective fails on the dropped connection, or torchrun's SIGTERM (sent on
    # seeing rank 1 die) reaches it first, outside a collective
    assert re.search(r"rank 0 of 2: (stage|SIGTERM received: stopped in stage) train/base-\w+", output)
    assert re.search(r"rank\s+: 1 \(local_rank: 1\)", output)  # torchrun names the rank that died
    rerun = run(tmp_path, "engine=zero3", "engine.checkpoint_steps=2", ranks=2)
    assert "resuming from" in rerun
    assert results(tmp_path) == results(one_process["zero3"])


def test_a_run_killed_mid_stage_resumes_from_its_checkpoint(one_process, tmp_path):
    status, _, output = interrupt(tmp_path, "engine=zero3", "engine.checkpoint_steps=2",
                                  when=BASE_CHECKPOINT.format(step=4), sig=signal.SIGKILL)  # fmt: skip
    assert status == -signal.SIGKILL
    (partial,) = (tmp_path / ".cache" / "train").glob(".base-*.partial")
    kept = sorted(p.name for p in (partial / "resume").glob("checkpoint-*"))
    assert "checkpoint-4" in kept and len(kept) <= 2, kept  # older checkpoints pruned (checkpoints_kept=2)
    rerun = run(tmp_path, "engine=zero3", "engine.checkpoint_steps=2")
    assert re.search(r"resuming from \S+/checkpoint-[46]\b", rerun)
    for name, stage in stages(tmp_path, "train").items():
        assert max_difference(stage, one_process["zero3"] / ".cache/train" / name) < 1e-6
    assert results(tmp_path) == results(one_process["zero3"])


def test_sigterm_checkpoints_every_rank_at_one_step_and_the_rerun_resumes(one_process, tmp_path):
    status, seconds, output = interrupt(tmp_path, "engine=zero3", "engine.checkpoint_steps=5",
                                        when=BASE_CHECKPOINT.format(step=5), sig=signal.SIGTERM, ranks=2)  # fmt: skip
    assert status != 0 and seconds < 60, output[-3000:]
    steps = {int(s) for s in re.findall(r"stopped in stage train/base-\w+, checkpointed at step (\d+)", output)}
    assert len(steps) == 1 and len(re.findall(r"checkpointed at step", output)) == 2  # both ranks, one step
    (step,) = steps
    (partial,) = (tmp_path / ".cache" / "train").glob(".base-*.partial")
    assert read_json(partial / "resume" / f"checkpoint-{step}" / "spin_bench_checkpoint.json")["world_size"] == 2
    rerun = run(tmp_path, "engine=zero3", ranks=2)
    assert f"checkpoint-{step}" in rerun
    assert results(tmp_path) == results(one_process["zero3"])


# Two ranks as srun starts them: no launcher, so rank 0's process hosts the process group's store. Rank 1 reaches
# the run's last one-rank stage late, after rank 0 has set its verdict; `leave` is what the pipeline ends with.
LAST_STAGE = """
import sys, time
from spin_bench import ranks
ranks.init(timeout_s=60)
if ranks.rank() == 1:
    time.sleep(5)
ranks.on_main(lambda: None)
if sys.argv[1] == "leave":
    ranks.leave()
"""


@pytest.mark.parametrize("ending", ["leave", "exit"])
def test_rank_0_hosting_the_store_outlasts_the_ranks_reading_its_last_verdict(ending):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {k: v for k, v in subprocess_env().items() if not k.startswith(("TORCHELASTIC", "SLURM"))}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    jobs = [subprocess.Popen([sys.executable, "-c", LAST_STAGE, ending], env=env | {"RANK": r, "LOCAL_RANK": r},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            for r in ("0", "1")]  # fmt: skip
    try:
        outputs = [job.communicate(timeout=120)[0] for job in jobs]
    finally:
        for job in jobs:
            job.kill()
    assert jobs[0].returncode == 0, outputs[0][-3000:]
    if ending == "leave":
        assert jobs[1].returncode == 0, outputs[1][-3000:]
    else:  # how a run without `leave` ended under srun: rank 1 fails, naming what it lost
        assert jobs[1].returncode != 0 and "rank 1 of 2: lost rank 0" in outputs[1]


# --- SLURM: the one-node cluster of scripts/slurm/up ----------------------------------------------------------

SLURM = ["hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2", "engine=zero3"]


def squeue() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="module")
def cluster():
    assert shutil.which("sbatch"), "the SLURM tier needs the cluster of scripts/slurm/up (make test-scale starts it)"
    assert subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0, "slurmctld is not answering"


def test_a_slurm_job_of_two_tasks_ends_with_the_local_results(cluster, one_process, tmp_path):
    run(tmp_path, *SLURM)
    (job_log,) = (tmp_path / "runs/smoke/multirun/.submitit").glob("*/*_1_log.out")
    assert "joined the process group: rank 1 of 2" in job_log.read_text()
    assert results(tmp_path) == results(one_process["zero3"])


def test_a_requeued_slurm_job_resumes_with_no_duplicate_rows_and_one_wandb_run(cluster, one_process, tmp_path):
    log = tmp_path.parent / "requeue.log"
    with open(log, "w") as out:
        sweep = subprocess.Popen(command(tmp_path, *SLURM, "engine.checkpoint_steps=2", "tracking=wandb_offline"),
                                 stdout=out, stderr=subprocess.STDOUT, env=subprocess_env())  # fmt: skip
        while not glob.glob(str(tmp_path / BASE_CHECKPOINT.format(step=4))):
            assert sweep.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        (job,) = squeue()
        subprocess.run(["scontrol", "requeue", job], check=True)
        assert sweep.wait(timeout=600) == 0, log.read_text()[-3000:]
    accounting = subprocess.run(["sacct", "-j", job, "--duplicates", "-n", "-X", "-o", "State"], capture_output=True,
                                text=True).stdout.split()  # fmt: skip
    assert accounting[0] == "REQUEUED" and accounting[-1] == "COMPLETED"
    job_logs = "".join(p.read_text() for p in (tmp_path / "runs/smoke/multirun/.submitit").glob("*/*_0_log.*"))
    assert "SIGTERM received: checkpointing" in job_logs and "resuming from" in job_logs
    rows = read_jsonl(next((tmp_path / "runs/smoke").glob("spin-*/results.jsonl")))
    assert len(rows) == len({(r["iteration"], r["task"], r["metric"]) for r in rows})
    assert results(tmp_path) == results(one_process["zero3"])
    runs = {p.name.rsplit("-", 1)[1] for p in (tmp_path / "runs/smoke").glob("spin-*/wandb/offline-run-*")}
    assert len(runs) == 1  # the requeued job resumed the same W&B run


def test_a_cancelled_slurm_job_fails_the_sweep_and_the_other_job_completes(cluster, tmp_path):
    log = tmp_path.parent / "cancel.log"
    with open(log, "w") as out:
        sweep = subprocess.Popen(command(tmp_path, *SLURM, "method=spin,sft", "hydra.launcher.cpus_per_task=1",
                                         "hydra.launcher.tasks_per_node=1"),
                                 stdout=out, stderr=subprocess.STDOUT, env=subprocess_env())  # fmt: skip
        while len(squeue()) < 2:
            assert sweep.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        first, second = sorted(squeue())
        subprocess.run(["scancel", first], check=True)
        cancelled = time.monotonic()
        status = sweep.wait(timeout=600)
        assert status != 0 and time.monotonic() - cancelled < 120, log.read_text()[-3000:]
    assert "UncompletedJobError" in log.read_text() or "has not produced any output" in log.read_text()
    deadline = time.monotonic() + 600
    while second in squeue():  # the other job goes on to its end
        assert time.monotonic() < deadline
        time.sleep(1)
    (sft,) = (tmp_path / "runs/smoke").glob("sft-*/results.jsonl")
    assert {row["iteration"] for row in read_jsonl(sft)} == {0, 1}
    assert json.loads((tmp_path / "runs/smoke").glob("sft-*/run_info.json").__next__().read_text())["processes"] == 1


@pytest.mark.gpu
def test_two_gpus_train_over_nccl_in_bf16_as_one_gpu(tmp_path):
    """The GPU variant (2 GPUs, NCCL for the engine, gloo for the control messages, bf16): `pytest -m gpu
    tests/scale`. bf16 sums in another order on 2 ranks, so losses agree to bf16's precision, not 1e-4."""
    assert torch.cuda.device_count() >= 2, "needs 2 CUDA devices"
    run(tmp_path / "one", "engine=zero3", "engine.precision=bf16")
    output = run(tmp_path / "two", "engine=zero3", "engine.precision=bf16", ranks=2)
    assert "(nccl)" in output
    for name, stage in stages(tmp_path / "two", "train").items():
        mine = [e["loss"] for e in read_json(stage / "train_stats.json")["log_history"]]
        theirs = [
            e["loss"] for e in read_json(tmp_path / "one/.cache/train" / name / "train_stats.json")["log_history"]
        ]
        assert mine == pytest.approx(theirs, rel=2e-2)
