"""The analysis layer: runs -> one tidy DataFrame -> tables, statistics across seeds, and figures.

docs/analysis.md describes the frame's columns and what each statistic means; the notebooks in `analysis/` and
`spin-bench-report` (spin_bench/cli/report.py) are thin callers of these functions.
"""

from spin_bench.analysis.load import load_diagnostics, load_results, load_wandb, notebook_dirs, wandb_rows
from spin_bench.analysis.paper import method_table, paper_table
from spin_bench.analysis.plots import plot_ablation, plot_diagnostics, plot_scores, png_bytes, save_png
from spin_bench.analysis.questions import answer_table, sentences
from spin_bench.analysis.stats import (
    ablation_axes,
    ablation_table,
    against_base,
    best_by_method,
    confidence_intervals,
    final_scores,
    format_intervals,
    mean_ci,
    objective_table,
    paired_test,
    score_table,
    variant_keys,
)

__all__ = [
    "ablation_axes",
    "ablation_table",
    "against_base",
    "answer_table",
    "best_by_method",
    "confidence_intervals",
    "final_scores",
    "format_intervals",
    "load_diagnostics",
    "load_results",
    "load_wandb",
    "mean_ci",
    "method_table",
    "notebook_dirs",
    "objective_table",
    "paired_test",
    "paper_table",
    "plot_ablation",
    "plot_diagnostics",
    "plot_scores",
    "png_bytes",
    "save_png",
    "score_table",
    "sentences",
    "variant_keys",
    "wandb_rows",
]
