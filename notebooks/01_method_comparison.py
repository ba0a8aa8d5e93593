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
# # Method comparison: SPIN vs SFT vs DPO, in the paper's table layout
#
# Our table: one row per method (and ablation variant, and study when several are loaded) and iteration; one
# column per task metric in %, and `average`, their unweighted mean; each cell the mean over seeds. Iteration 0 is
# the shared base model, k the model after k iterations. Below it, the SPIN paper's own table (zephyr-7b-sft-full,
# Open LLM Leaderboard v1 tasks, numbered the same way) for reference: other tasks, another scale, so compare the
# shape (does `average` rise with iterations, does SPIN end above SFT and DPO?), not the numbers. The spread across
# seeds and the tests are in `02_iterations_and_significance`.
#
# Input: `SPIN_BENCH_RUNS`, runs/, study or run directories joined by `:` (default `runs`).

# %%
from spin_bench.analysis import load_results, method_table, notebook_dirs, paper_table

runs, figures = notebook_dirs()
results = load_results(runs)
results.groupby(["study", "method"])[["run", "seed"]].nunique().rename(columns={"run": "runs", "seed": "seeds"})

# %% [markdown]
# ## Ours (mean over seeds, %)

# %%
method_table(results).round(1)

# %% [markdown]
# ## The paper's (Chen et al., ICML 2024, %)

# %%
paper_table()
