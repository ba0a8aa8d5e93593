"""Helpers shared by both tiers: the real config tree composed and shrunk (lightning-hydra-template style), the
libraries' caches kept in the checkout, and the CLI run as a user runs it.

Tiers: tests/unit trains nothing (about 3 minutes); tests/integration runs the tiny model end to end. Tests never
share mutable state across modules: each integration module works on its own copy of the smoke run
(tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from spin_bench.config import RunConfig, load
from spin_bench.paths import library_env

CHECKOUT = Path(__file__).resolve().parents[1]


def make_cfg(root: Path, *overrides: str) -> DictConfig:
    """Compose spin_bench/conf as the CLI does, with every output under `root`."""
    with initialize_config_module("spin_bench.conf", version_base="1.3"):
        return compose("config", overrides=[f"paths.root_dir={root}", *overrides])


def make_config(root: Path, *overrides: str) -> RunConfig:
    """The typed run config of those overrides; every key they set is an axis, as on the command line."""
    return load(make_cfg(root, *overrides), overrides=list(overrides))


def _project_local_caches() -> None:
    """Library caches (HF, DeepSpeed's JIT ops, wandb, matplotlib) in the checkout's .cache/, as the CLI keeps
    them: never in $HOME, and DeepSpeed's op is built once per checkout rather than every session. Test outputs
    all go to tmp_path."""
    for key, value in library_env(CHECKOUT / ".cache", offline=True).items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("WANDB_SILENT", "1")
    os.environ.pop("WANDB_API_KEY", None)


# At import, before anything imports the libraries, which read these variables once, as they are imported: this
# conftest loads before the tier conftests and test modules, and tests/integration/conftest.py imports the
# pipeline (and with it `datasets`) as it loads, before any pytest hook or fixture could set them.
_project_local_caches()


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, less the process-group variables that training set here
    (a child must start as its own one-process job), plus `extra`."""
    launcher = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
    return {**{k: v for k, v in os.environ.items() if k not in launcher}, **extra}


def spin_bench(root: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: int = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`spin-bench <args>` as a user runs it (the console script), with every output under `root`."""
    command = [str(Path(sys.executable).parent / "spin-bench"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd or root,
                          env=subprocess_env(SPIN_BENCH_ROOT=str(root), **(env or {})))  # fmt: skip


def run_cli(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`spin-bench <args>`, failing the test (with the end of its stderr) unless it exits 0."""
    out = spin_bench(root, *args, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out
