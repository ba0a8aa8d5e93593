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
# # Scores over iterations, spread across seeds, and SPIN's paired tests
#
# Lines are means across seeds, bands their 95% Student-t confidence intervals (n = seeds; no band with one
# seed). The paired test compares SPIN's `average` with each baseline's at each one's last iteration, pairing the
# runs of a study that share a seed (hence a base model): it asks whether the per-seed differences are centred
# away from 0.
#
# Input: `SPIN_BENCH_RUNS` (default `runs`); figure: `$SPIN_BENCH_FIGURES/scores.png` (default `notebooks/figures`).

# %%
from IPython.display import Image

from spin_bench.analysis import (
    confidence_intervals,
    format_intervals,
    load_results,
    notebook_dirs,
    paired_test,
    plot_scores,
    save_png,
)

runs, figures = notebook_dirs()
results = load_results(runs)
fig = plot_scores(results)
Image(save_png(fig, figures / "scores.png"))

# %% [markdown]
# ## Mean ± 95% CI half-width across seeds (%)

# %%
format_intervals(confidence_intervals(results))

# %% [markdown]
# ## SPIN vs each baseline: paired t-test over seeds
#
# `mean_difference` = SPIN - baseline in points of `average`, its 95% CI, t and two-sided p; `note` says why a
# row has no statistics (fewer than 2 paired seeds, or differences that do not vary).

# %%
paired_test(results)
