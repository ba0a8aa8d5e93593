"""Shared fixtures: the real config tree composed and shrunk (lightning-hydra-template style), and one
smoke study run end to end, shared by the tests that inspect its outputs."""

from __future__ import annotations

import os
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
