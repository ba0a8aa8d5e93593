# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Ablations: final-iteration score vs each swept axis
#
# An axis is a config key a study varied (`method.beta` -> `beta`, `method.alpha`, `method.reference`,
# `method.history`, `method.iterations`, `data.prompts`, `method.loss_type`, ...), read from each run's
# `run_info.json`. For each axis present in the loaded runs: each run's score at its last iteration, mean and 95% CI
# across seeds, per value of the axis, one line per method (and value of the other axes). No axis, no figure.
#
# Input: `SPIN_BENCH_RUNS` (default `runs`); figures: `$SPIN_BENCH_FIGURES/ablation_<axis>.png`.

# %%
from IPython.display import Image, Markdown, display

from spin_bench.analysis import (
    ablation_axes,
    ablation_table,
    format_intervals,
    load_results,
    notebook_dirs,
    plot_ablation,
    save_png,
)

runs, figures = notebook_dirs()
results = load_results(runs)
axes = ablation_axes(results)
print("ablation axes in these runs:", ", ".join(axes) or "none")

# %%
for axis in axes:
    fig = plot_ablation(results, axis)
    path = save_png(fig, figures / f"ablation_{axis}.png")
    display(Markdown(f"## {axis}"), format_intervals(ablation_table(results, axis)), Image(path))
