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
# # Self-play diagnostics over iterations
#
# From `diagnostics.jsonl` (docs/results.md): the implicit reward beta * (log p - log p_ref) of the real (chosen)
# and generated (rejected) answers. Reward accuracy is the fraction of pairs where the real answer's reward beats
# the generated one's, the margin their mean difference; both on the held-out pairs (scored after training: SPIN's
# convergence signal, which falls towards 50% as the model's answers become indistinguishable from the real ones)
# and on the training pairs. Log-probs of real vs generated answers, and their lengths. Means across seeds, 95% CI
# bands. SFT logs none of these (no pairs).
#
# Input: `SPIN_BENCH_RUNS` (default `runs`); figure: `$SPIN_BENCH_FIGURES/diagnostics.png`.

# %%
from IPython.display import Image

from spin_bench.analysis import load_diagnostics, notebook_dirs, plot_diagnostics, save_png, variant_keys

runs, figures = notebook_dirs()
diagnostics = load_diagnostics(runs)
fig = plot_diagnostics(diagnostics)
Image(save_png(fig, figures / "diagnostics.png"))

# %% [markdown]
# ## Means over seeds

# %%
shown = [c for c in diagnostics if c.startswith(("heldout/", "train/rewards", "train/logps")) or c.endswith("_chars")]
diagnostics.groupby([*variant_keys(diagnostics), "iteration"], dropna=False)[shown].mean().round(3)
