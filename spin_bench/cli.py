"""`spin-bench`: the Hydra entry point. Composes conf/, sets up the environment, hands over to study.run."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

# conf/ sits beside the package in the checkout (the package is installed editable from it).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; return its `optimized_metric` (what a Hydra sweeper such as Optuna maximises)."""
    from spin_bench import environment
    from spin_bench.runs import axes_from_overrides

    # every key this job's command line or sweeper sets is an ablation axis: it names the run directory
    swept = [k for k in axes_from_overrides(list(HydraConfig.get().overrides.task)) if k not in cfg.axes]
    OmegaConf.update(cfg, "axes", [*cfg.axes, *swept])
    environment.configure(cfg)  # before torch/transformers/wandb are imported: they read it at import time
    from spin_bench.study import final_score, run

    rows = run(cfg)
    return final_score(rows, cfg.optimized_metric)


if __name__ == "__main__":
    main()
