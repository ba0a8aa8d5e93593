"""`spin-bench`: the Hydra entry point. Composes conf/, sets up the environment, hands over to study.run."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

# conf/ sits beside the package in the checkout (the package is installed editable from it).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from spin_bench import environment

    environment.configure(cfg)  # before torch/transformers/wandb are imported: they read it at import time
    from spin_bench.study import run

    run(cfg)


if __name__ == "__main__":
    main()
