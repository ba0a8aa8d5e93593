"""The SPIN paper's own numbers, and ours in its table layout.

`paper_results.csv` (shipped with the package) holds the paper's Open LLM Leaderboard table for
zephyr-7b-sft-full and its SPIN iterations, plus the zephyr DPO model; its header comment gives the shots, metrics
and numbering (`iteration` counts completed iterations, as ours does: 0 is the SFT base model).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from spin_bench.analysis.stats import score_table


def paper_table() -> pd.DataFrame:
    """The paper's scores in %: rows (method, iteration), columns `model`, one per task, and `average`."""
    with resources.files(__package__).joinpath("paper_results.csv").open() as f:
        return pd.read_csv(f, comment="#").set_index(["method", "iteration"])


def method_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Our results in the paper's layout: one row per variant (method, and axes if any) and iteration, one column
    per task metric in %, and `average`; each cell the mean over seeds of `score_table`."""
    table = score_table(frame)
    return table.groupby(level=[k for k in table.index.names if k != "seed"], dropna=False).mean()
