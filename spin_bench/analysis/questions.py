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
the held-out real answers' log-probability against the base model's), mean and CI across seeds, read the same
way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from spin_bench.analysis.stats import (
    BASE_COLUMNS,
    ablation_axes,
    mean_ci,
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


# An arm's own objective: the first of these it logged (the preference arms log both: theirs is the accuracy)
OBJECTIVES = [
    Objective("heldout/rewards/accuracies", "held-out reward accuracy", 0.5, " (chance: 0.5)"),
    Objective("heldout_real/logp_vs_base", "held-out real answers' log p - the base model's", 0.0, " (nats)"),
]
LEARNING_COLUMNS = ["variant", "iteration", "objective", "n", "mean", "ci_low", "ci_high", "verdict"]


def learning_table(diagnostics: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per variant and iteration with a value: its own held-out objective (OBJECTIVES), mean and CI across seeds,
    and the CI's verdict: "learned" (above what learning nothing gives), "went the wrong way" (below it), or "not
    detected" (LEARNING_COLUMNS). Every iteration, as the paper's questions are answered per iteration: each
    iteration of a preference arm learns from its own pairs against its own reference, and SPIN's theory expects
    the later ones to find less to learn."""
    keys = variant_keys(diagnostics)
    rows = []
    for values, runs in diagnostics[diagnostics["iteration"] > 0].groupby(keys, dropna=False):
        objective = next((o for o in OBJECTIVES if o.key in runs and runs[o.key].notna().any()), None)
        if objective is None:
            continue
        scored = runs.dropna(subset=[objective.key])  # an iteration whose held-out pairs were all degenerate: none
        label = variant_label(keys, values if isinstance(values, tuple) else (values,))
        for iteration, ci in mean_ci(scored, ["iteration"], objective.key, level).iterrows():
            tested = ci.n >= 2 and not math.isnan(ci.ci_low)
            low, high = (ci.ci_low, ci.ci_high) if tested else (math.nan, math.nan)
            said = (
                "learned" if low > objective.null else "went the wrong way" if high < objective.null else "not detected"
            )
            rows.append({"variant": label, "iteration": int(iteration), "objective": objective.key, "n": int(ci.n),
                         "mean": ci["mean"], "ci_low": low, "ci_high": high,
                         "verdict": said if tested else "untested"})  # fmt: skip
    return pd.DataFrame(rows, columns=LEARNING_COLUMNS)


def learning_sentences(learned: pd.DataFrame, level: float = 0.95) -> list[str]:
    """Whether each arm learned its own objective, one sentence per arm, its iterations in turn (`learning_table`)."""
    out = []
    for variant, rows in learned.groupby("variant", sort=False):
        first = rows.iloc[0]
        objective = next(o for o in OBJECTIVES if o.key == first.objective)
        n = int(rows["n"].max())
        each = [f"iteration {r.iteration}: {r.mean:.3f}"
                + ("" if r.verdict == "untested" else f" [{r.ci_low:.3f}, {r.ci_high:.3f}]") + f", {r.verdict}"
                + (f" ({r.n} seed{'s' if r.n != 1 else ''})" if r.n != n else "")  # fewer: early stop, degenerate pairs
                for r in rows.itertuples()]  # fmt: skip
        out.append(f"{variant} (did it learn its objective?): {objective.text}{objective.unit}, mean over {n} "
                   f"seed{'s' if n != 1 else ''} with {level:.0%} CI: {'; '.join(each)}.")  # fmt: skip
    return out


def base_sentence(bases: pd.DataFrame) -> str:
    """Whether the base models finished their SFT, and how far their held-out SFT loss fell (`base_table`)."""
    said = []
    for row in bases.to_dict("records"):
        axes = [f"{k}={v}" for k, v in row.items() if k not in BASE_COLUMNS and not pd.isna(v)]
        gain = "" if pd.isna(row["recent_gain"]) else f", the last epochs gaining {row['recent_gain']:.4f}"
        who = " ".join([*axes, f"seed {row['seed']}"])
        said.append(f"{who} {row['heldout_loss_first']:.3f} -> {row['heldout_loss_last']:.3f} in {row['epochs']} "
                    f"epochs{gain}")  # fmt: skip
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
