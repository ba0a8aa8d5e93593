"""Process environment set before the heavy libraries are imported: caches under the project, offline flags.

HF, DeepSpeed, wandb, matplotlib and Jupyter each read their cache location from the environment at import
time, so this runs first, from the CLI, with values from `conf/paths`. Variables already set are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig


def cache_env(cache_dir: Path) -> dict[str, str]:
    cache_dir = Path(cache_dir).resolve()
    return {
        "HF_HOME": str(cache_dir / "hf"),
        "TORCH_EXTENSIONS_DIR": str(cache_dir / "torch_extensions"),  # DeepSpeed's JIT-built ops
        "WANDB_CACHE_DIR": str(cache_dir / "wandb" / "cache"),
        "WANDB_CONFIG_DIR": str(cache_dir / "wandb" / "config"),
        "WANDB_DATA_DIR": str(cache_dir / "wandb" / "data"),
        "MPLCONFIGDIR": str(cache_dir / "matplotlib"),
        "JUPYTER_CONFIG_DIR": str(cache_dir / "jupyter" / "config"),
        "JUPYTER_DATA_DIR": str(cache_dir / "jupyter" / "data"),
        "IPYTHONDIR": str(cache_dir / "ipython"),
    }


def needs_hub(cfg: DictConfig) -> bool:
    """Whether any stage of this config downloads from the HF hub (the embedded default never does)."""
    return cfg.data.source == "hub" or cfg.model.source == "pretrained" or cfg.eval.suite != "embedded"


def configure(cfg: DictConfig) -> None:
    for key, value in cache_env(cfg.paths.cache_dir).items():
        os.environ.setdefault(key, value)
    if not needs_hub(cfg):  # nothing to download: never let a library try the network and wait on it
        for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
