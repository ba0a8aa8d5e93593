"""The paper's three questions, answered from a study's runs with paired tests over seeds.

- Q1: does SPIN improve on the base model? SPIN at each iteration k against the base model (iteration 0) of the
  same seed.
- Q2: does iterating beat training iteration 0 for longer? SPIN against the `epochs` arm at the same iteration,
  hence the same total optimizer steps (at iteration 1 the two arms are the same model).
- Q3: does SPIN, without preference data, match DPO with it? SPIN against DPO at the same iteration.

Each comparison is a paired t-test on the `average` score across seeds (a seed fixes the base model both arms
start from): the mean difference in points, its 95% CI and p. A verdict reads the CI: above zero, below zero, or
"no difference detected" when it spans zero (which is not evidence that the two are equal: the CI says how large
a difference the study could have missed). Verdicts never look at point estimates alone.

Beside them, a question each arm answers of itself: did it learn its own objective? At each scored
iteration, its held-out objective (the preference arms: held-out reward accuracy, against chance; the others:
the held-out real answers' log-probability against the base model's) is read two ways. Across seeds: mean and
CI, read the same way as the questions (does the arm learn, whichever base model it starts from?). Within each
seed: the trained model's own CI over its held-out items (does this model do better than learning nothing on
items it never saw?), and how many seeds' models learned. The first asks more: with 3 seeds its t quantile is
4.3, and the base models differ. Both are reported, neither replaces the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
from scipy import stats

from spin_bench.analysis.stats import (
    BASE_COLUMNS,
    ablation_axes,
    mean_ci,
    missing,
    score_table,
    ttest_paired,
    variant_keys,
    variant_label,
)

COLUMNS = ["question", "treatment", "baseline", "iteration", "n", "mean_difference", "ci_low", "ci_high", "t", "p",
           "verdict"]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Question:
    key: str
    text: str
    baseline: str  # the method compared against; "base" is the base model (iteration 0)
    first_iteration: int  # where the comparison starts meaning something


QUESTIONS = [
    Question("Q1", "does SPIN improve on the base model?", "base", 1),
    Question("Q2", "does iterating beat training iteration 0 for the same total steps (the epochs arm)?", "epochs", 2),
    Question("Q3", "does SPIN without preference data match DPO with it?", "dpo", 1),
]


@dataclasses.dataclass(frozen=True)
class Objective:
    key: str  # in diagnostics.jsonl
    text: str
    null: float  # the value of an arm that learned nothing
    unit: str
    items: str  # diagnostics key: how many held-out items one model's value is over
    se: str | None = None  # diagnostics key of its standard error over them; None: the value is a share of them


# An arm's own objective: the first of these it logged (the preference arms log both: theirs is the accuracy)
OBJECTIVES = [
    Objective("heldout/rewards/accuracies", "held-out reward accuracy", 0.5, " (chance: 0.5)",
              items="heldout/pairs/scored"),
    Objective("heldout_real/logp_vs_base", "held-out real answers' log p - the base model's", 0.0, " (nats)",
              items="heldout_real/answers", se="heldout_real/logp_vs_base_se"),
]  # fmt: skip
LEARNING_COLUMNS = ["variant", "iteration", "objective", "n", "mean", "ci_low", "ci_high", "verdict", "seeds_tested",
                    "seeds_learned", "seeds_wrong_way"]  # fmt: skip
SEED_COLUMNS = ["variant", "iteration", "seed", "objective", "value", "items", "ci_low", "ci_high", "verdict"]


def model_interval(objective: Objective, run: Mapping[str, Any], level: float = 0.95) -> tuple[float, float]:
    """The CI of one trained model's held-out objective over its own held-out items: for a share (the reward
    accuracy, k of n pairs) the exact binomial interval (Clopper-Pearson), for a mean change (log p) Student t
    from its standard error over the answers. NaN, NaN (untested) when the run did not log how many items (runs
    from before it was), scored fewer than 2, or its share is not k of n (below)."""
    value, n = run.get(objective.key, math.nan), run.get(objective.items, math.nan)
    if missing(value) or missing(n) or n < 2:
        return math.nan, math.nan
    if objective.se is None:
        # TRL's mean over the n pairs is k / n in float32 (n * 6e-8 off at most). On P processes accelerate
        # repeats up to P - 1 pairs to even the batches and TRL keeps them: then value * n is no whole number, k
        # is unknown, and the model is left untested rather than given an interval over the wrong pairs.
        k = round(value * n)
        if abs(value * n - k) > 1e-3:
            return math.nan, math.nan
        interval = stats.binomtest(k, int(n)).proportion_ci(level, method="exact")
        return float(interval.low), float(interval.high)
    se = run.get(objective.se, math.nan)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return value - half, value + half


def read(low: float, high: float, null: float) -> str:
    """A learning verdict from a CI: "learned" (above what learning nothing gives), "went the wrong way" (below
    it), "not detected" (it spans it), or "untested" (no CI)."""
    if math.isnan(low) or math.isnan(high):
        return "untested"
    return "learned" if low > null else "went the wrong way" if high < null else "not detected"


def _objectives(diagnostics: pd.DataFrame) -> Iterator[tuple[str, Objective, pd.DataFrame]]:
    """Per variant with a held-out objective: its label, that objective, and its scored runs after iteration 0
    (an iteration whose held-out pairs were all degenerate scored none)."""
    keys = variant_keys(diagnostics)
    for values, runs in diagnostics[diagnostics["iteration"] > 0].groupby(keys, dropna=False):
        objective = next((o for o in OBJECTIVES if o.key in runs and runs[o.key].notna().any()), None)
        if objective is not None:
            label = variant_label(keys, values if isinstance(values, tuple) else (values,))
            yield label, objective, runs.dropna(subset=[objective.key])


def seed_learning_table(diagnostics: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per variant, iteration and seed: its trained model's held-out objective, the items it is over, that
    model's own CI (`model_interval`) and its verdict (`read`) (SEED_COLUMNS)."""
    rows = []
    for label, objective, scored in _objectives(diagnostics):
        for run in scored.sort_values(["iteration", "seed"]).to_dict("records"):
            low, high = model_interval(objective, run, level)
            items = run.get(objective.items)
            rows.append({"variant": label, "iteration": int(run["iteration"]), "seed": run["seed"],
                         "objective": objective.key, "value": run[objective.key],
                         "items": math.nan if missing(items) else int(items), "ci_low": low, "ci_high": high,
                         "verdict": read(low, high, objective.null)})  # fmt: skip
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def learning_table(diagnostics: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per variant and iteration with a value: its own held-out objective (OBJECTIVES), mean and CI across seeds
    and the CI's verdict (`read`), and of its seeds' models how many could be tested on their own held-out items,
    learned, and went the wrong way (`seed_learning_table`) (LEARNING_COLUMNS). Every iteration, as the paper's
    questions are answered per iteration: each iteration of a preference arm learns from its own pairs against
    its own reference, and SPIN's theory expects the later ones to find less to learn."""
    seeds = seed_learning_table(diagnostics, level)
    rows = []
    for label, objective, scored in _objectives(diagnostics):
        for iteration, ci in mean_ci(scored, ["iteration"], objective.key, level).iterrows():
            low, high = ci.ci_low, ci.ci_high  # NaN with one seed: untested
            models = seeds[(seeds["variant"] == label) & (seeds["iteration"] == iteration)]["verdict"]
            rows.append({"variant": label, "iteration": int(iteration), "objective": objective.key, "n": int(ci.n),
                         "mean": ci["mean"], "ci_low": low, "ci_high": high, "verdict": read(low, high, objective.null),
                         "seeds_tested": int((models != "untested").sum()),
                         "seeds_learned": int((models == "learned").sum()),
                         "seeds_wrong_way": int((models == "went the wrong way").sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=LEARNING_COLUMNS)


def learning_sentences(learned: pd.DataFrame, level: float = 0.95) -> list[str]:
    """Whether each arm learned its own objective, one sentence per arm, its iterations in turn (`learning_table`):
    across seeds, then how many seeds' models learned it by their own CI."""
    out = []
    for variant, rows in learned.groupby("variant", sort=False):
        first = rows.iloc[0]
        objective = next(o for o in OBJECTIVES if o.key == first.objective)
        n = int(rows["n"].max())
        within = bool(rows["seeds_tested"].any())
        each = [f"iteration {r.iteration}: {r.mean:.3f}"
                + ("" if r.verdict == "untested" else f" [{r.ci_low:.3f}, {r.ci_high:.3f}]") + f", {r.verdict}"
                + (f" ({r.n} seed{'s' if r.n != 1 else ''})" if r.n != n else "")  # fewer: early stop, degenerate pairs
                + (f", {_models(r)}" if within else "")
                for r in rows.itertuples()]  # fmt: skip
        how = f", and how many seeds' models learned it by their own {level:.0%} CI over their held-out items" * within
        out.append(f"{variant} (did it learn its objective?): {objective.text}{objective.unit}, mean over {n} "
                   f"seed{'s' if n != 1 else ''} with {level:.0%} CI{how}: {'; '.join(each)}.")  # fmt: skip
    return out


def _models(row: Any) -> str:
    if not row.seeds_tested:
        return "no seed's model tested"
    said = f"{row.seeds_learned} of {row.seeds_tested} seeds' models learned"
    return said + (f", {row.seeds_wrong_way} went the wrong way" if row.seeds_wrong_way else "")


def base_sentence(bases: pd.DataFrame) -> str:
    """Whether the base models finished their SFT, and how far their held-out SFT loss fell (`base_table`)."""
    said = []
    for row in bases.to_dict("records"):
        axes = [f"{k}={v}" for k, v in row.items() if k not in BASE_COLUMNS and not pd.isna(v)]
        gain = "" if pd.isna(row["recent_gain"]) else f", the last epochs gaining {row['recent_gain']:.4f}"
        who = " ".join([*axes, f"seed {row['seed']}"])
        said.append(f"{who} {row['heldout_loss_first']:.3f} -> {row['heldout_loss_last']:.3f} in "
                    f"{row['epochs_trained']} epochs{gain}")  # fmt: skip
    return (
        f"base models (did each finish its SFT?): {int(bases['plateaued'].sum())} of {len(bases)} met the "
        "plateau criterion (model.plateau); held-out SFT loss in nats per token, after the first epoch -> the "
        f"last: {'; '.join(said)}."
    )


def answer_table(frame: pd.DataFrame, treatment: str = "spin", level: float = 0.95) -> pd.DataFrame:
    """One row per question and iteration that the study's runs can answer: the paired comparison of
    `treatment` against the question's baseline (COLUMNS). Studies with ablation axes are left out (empty frame):
    the questions are about the default arms."""
    if ablation_axes(frame):
        return pd.DataFrame(columns=COLUMNS)
    average = score_table(frame)["average"].reset_index()
    spin = average[average["method"] == treatment]
    rows = []
    for question in QUESTIONS:
        for iteration in sorted(i for i in spin["iteration"].unique() if i >= question.first_iteration):
            a = spin[spin["iteration"] == iteration].set_index("seed")["average"]
            if question.baseline == "base":
                b = spin[spin["iteration"] == 0].set_index("seed")["average"]
            else:
                runs = average[(average["method"] == question.baseline) & (average["iteration"] == iteration)]
                b = runs.set_index("seed")["average"]
            if b.empty:
                continue
            test = ttest_paired(a, b, level)
            rows.append({"question": question.key, "treatment": treatment, "baseline": question.baseline,
                         "iteration": int(iteration), **{k: test[k] for k in COLUMNS[4:-1]},
                         "verdict": verdict(test["ci_low"], test["ci_high"])})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _test(row: Any) -> str:
    if row.n < 2:
        return f"(untested: {row.n} seed)"
    if math.isnan(row.p):  # identical differences across seeds: the CI is that one value
        return f"[{row.ci_low:+.1f}, {row.ci_high:+.1f}] (every seed the same difference: no t-test), {row.verdict}"
    return f"[{row.ci_low:+.1f}, {row.ci_high:+.1f}], p = {row.p:.3f}, {row.verdict}"


def verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "untested"
    return "better" if low > 0 else "worse" if high < 0 else "no difference detected"


def sentences(answers: pd.DataFrame, level: float = 0.95) -> list[str]:
    """Each question answered in one sentence: per iteration, the effect (treatment - baseline, points of
    `average`) with its CI and paired test."""
    out = []
    for question in QUESTIONS:
        rows = answers[answers["question"] == question.key]
        if rows.empty:
            out.append(f"{question.key} ({question.text}): not answered: the study has no {question.baseline} runs.")
            continue
        n = int(rows["n"].min())
        parts = [f"iteration {r.iteration}: {r.mean_difference:+.1f} points {_test(r)}" for r in rows.itertuples()]
        against = "the base model" if question.baseline == "base" else question.baseline
        out.append(f"{question.key} ({question.text}) SPIN - {against}, average score, mean over {n} paired seeds "
                   f"with {level:.0%} CI and paired t-test: " + "; ".join(parts) + ".")  # fmt: skip
    return out
