"""On a machine with a CUDA device (`pytest -m gpu tests/integration/test_gpu.py`): the default launcher runs a
multirun's jobs one at a time, since they would share the GPU, and every stage of a run uses the GPU, with the
same answers and scores as the CPU gives for the same checkpoint.

The smoke study (two arms) runs once for the module, as a user starts it: `python -m spin_bench.cli`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from spin_bench import ranks
from spin_bench.data.world import build_world
from spin_bench.engine.checkpoint import load_for_inference
from spin_bench.evaluation.harness import run_lm_eval, task_dir
from spin_bench.evaluation.probe import answer_probe
from spin_bench.generation.generate import hf_generate
from spin_bench.paths import local_jobs
from tests.conftest import make_config, subprocess_env

pytestmark = pytest.mark.gpu
METHODS = ("spin", "sft")
T = TypeVar("T")


@pytest.fixture(scope="module")
def gpu_study(tmp_path_factory) -> tuple[Path, str]:
    assert torch.cuda.is_available(), "needs a CUDA device"
    root = tmp_path_factory.mktemp("gpu")
    command = [sys.executable, "-m", "spin_bench.cli", "experiment=smoke", f"method={','.join(METHODS)}",
               "tracking=none"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=root,
                         env=subprocess_env(SPIN_BENCH_ROOT=str(root)))  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    return root, out.stdout + out.stderr


def rows(root: Path, method: str) -> list[dict]:
    return [json.loads(line) for line in (root / "runs/smoke" / f"{method}-seed0/results.jsonl").open()]


def test_the_default_launcher_runs_a_gpu_machines_jobs_one_at_a_time_on_its_gpu(gpu_study):
    root, output = gpu_study
    assert local_jobs() == 1
    assert "Joblib.Parallel(n_jobs=1," in output and "is launching 2 jobs" in output
    for method in METHODS:
        info = json.loads((root / "runs/smoke" / f"{method}-seed0/run_info.json").read_text())
        assert info["hardware"] == f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        assert {r["iteration"] for r in rows(root, method)} == {0, 1, 2}


def test_inference_runs_on_the_gpu_and_answers_and_scores_as_the_cpu_does(gpu_study, monkeypatch):
    root, _ = gpu_study
    config = make_config(root, "experiment=smoke")
    checkpoint = rows(root, "spin")[-1]["checkpoint"]  # the last iterate, trained on the GPU
    world = build_world(config.data, config.paths.cache_dir)
    model, _ = load_for_inference(checkpoint, config.model.loading)
    assert ranks.device() == "cuda:0" and {p.device.type for p in model.parameters()} == {"cuda"}
    del model
    used: dict[str, list[int]] = {}

    def on_device(name: str, work: Callable[[], T]) -> T:
        """`work()`, noting how much GPU memory it took at its peak beyond what was held before."""
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = work()
        used.setdefault(name, []).append(torch.cuda.max_memory_allocated() - before)
        return out

    def inference() -> tuple[list[str], dict[str, Any], dict[tuple[str, str], float]]:
        prompts = [r["question"] for r in world.rows("test")]
        held_out = [{"prompt": r["question"], "response": r["solution"]} for r in world.rows("valid")]
        tasks = task_dir(config.evaluation, world, config.paths.cache_dir)
        loading, cache = config.model.loading, root / f"probe-{ranks.device()}"
        answers = on_device("generate", lambda: hf_generate(checkpoint, prompts, config.generation, loading))
        probed = on_device("probe", lambda: answer_probe(checkpoint, held_out, loading, cache))
        scores = on_device("evaluate", lambda: run_lm_eval(checkpoint, config.evaluation, tasks, loading))
        return answers, probed, {(m["task"], m["metric"]): m["value"] for m in scores}

    on_gpu = inference()
    monkeypatch.setattr(ranks, "device", lambda: "cpu")
    on_cpu = inference()
    assert all(gpu > 0 and cpu == 0 for gpu, cpu in used.values()), used  # each ran on the GPU, then on the CPU
    # the same weights in fp32 on two devices: greedy answers and scores agree but for a near-tie argmax, which a
    # different kernel may break the other way (at most one answer in 16 here), and log-probs to float rounding
    same = sum(a == b for a, b in zip(on_gpu[0], on_cpu[0], strict=True))
    assert same >= len(on_cpu[0]) - 1, (on_gpu[0], on_cpu[0])
    rows_gpu, rows_cpu = on_gpu[1].pop("logp_rows"), on_cpu[1].pop("logp_rows")  # approx takes no nesting
    assert on_gpu[1] == pytest.approx(on_cpu[1], rel=1e-4, abs=1e-4)
    assert rows_gpu == pytest.approx(rows_cpu, rel=1e-4, abs=1e-4)
    assert on_gpu[2].keys() == on_cpu[2].keys()
    for key, value in on_cpu[2].items():
        assert abs(on_gpu[2][key] - value) <= 1 / 16 + 1e-9, key
