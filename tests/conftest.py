"""Shared fixtures: the real config tree composed and shrunk (lightning-hydra-template style), and one
smoke study run end to end, shared by the tests that inspect its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def make_cfg(root: Path, *overrides: str) -> DictConfig:
    """Compose conf/ as the CLI does, with every output under `root`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"paths.root_dir={root}", *overrides])


@pytest.fixture(scope="session", autouse=True)
def _project_local_caches():
    """Library caches (HF, DeepSpeed's JIT ops, wandb) in the checkout's .cache/, as the CLI keeps them: never in
    $HOME, and DeepSpeed's op is built once rather than every session. Test outputs all go to tmp_path."""
    from spin_bench.environment import cache_env

    for key, value in cache_env(CONF_DIR.parent / ".cache").items():
        os.environ.setdefault(key, value)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "WANDB_SILENT"):
        os.environ.setdefault(key, "1")
    os.environ.pop("WANDB_API_KEY", None)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """One shrunk end-to-end study (experiment=smoke): its config, returned rows and root directory."""
    from spin_bench.study import run

    root = tmp_path_factory.mktemp("smoke")
    cfg = make_cfg(root, "experiment=smoke")
    rows = run(cfg)
    return cfg, rows, root


@pytest.fixture(scope="session")
def small_sweep(smoke):
    """A small real sweep on the smoke world, two studies under one `runs/` directory: `methods` (spin, sft, dpo
    x seeds 0, 1) and `beta` (SPIN with method.beta 0.05 and 0.5 as an ablation axis, x seeds 0, 1). Shares the
    smoke fixture's world and seed-0 base model; seed 1 trains its own base model. Returns the `runs/` dir."""
    from spin_bench.study import run

    _, _, root = smoke
    for seed in (0, 1):
        for method in ("spin", "sft", "dpo"):
            run(make_cfg(root, "experiment=smoke", "study=methods", f"method={method}", f"seed={seed}"))
        for beta in (0.05, 0.5):
            run(make_cfg(root, "experiment=smoke", "study=beta", "axes=[method.beta]", f"method.beta={beta}",
                         f"seed={seed}"))  # fmt: skip
    return root / "runs"


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, less the process-group variables that training set here
    (a child must start as its own one-process job), plus `extra`."""
    launcher = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
    return {**{k: v for k, v in os.environ.items() if k not in launcher}, **extra}


def run_cli(root: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`spin-bench <overrides>` as a user runs it, with every output under `root`; fails the test on an error."""
    command = [sys.executable, "-m", "spin_bench.cli", *overrides]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=subprocess_env(SPIN_BENCH_ROOT=str(root))
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out
