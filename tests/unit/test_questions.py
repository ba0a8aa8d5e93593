"""The paper's three questions, answered from results with known effects: paired differences, CIs, verdicts
read from the CI, questions without their arm said to be unanswered, and what each arm learned."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from spin_bench.analysis.load import tidy
from spin_bench.analysis.questions import (
    OBJECTIVES,
    answer_table,
    base_sentence,
    learning_sentences,
    learning_table,
    model_interval,
    seed_learning_table,
    sentences,
    verdict,
)
from spin_bench.analysis.stats import BASE_COLUMNS, base_table, objective_table

HEADLINE = "arith_gen/exact_match,strict-match"


def frame(scores: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    """Results of one headline metric: {(method, iteration): [score of seed 0, 1, 2]} (fractions)."""
    rows = [{"study": "s", "method": m, "seed": seed, "iteration": t, "task": "arith_gen",
             "metric": "exact_match,strict-match", "value": v, "headline": True}
            for (m, t), values in scores.items() for seed, v in enumerate(values)]  # fmt: skip
    return tidy(rows)


BASE = [0.50, 0.40, 0.60]


def test_each_question_is_a_paired_test_of_its_arms():
    scores = {("spin", 0): BASE, ("spin", 1): [0.55, 0.46, 0.64], ("spin", 2): [0.40, 0.31, 0.52],
              ("epochs", 0): BASE, ("epochs", 1): [0.55, 0.46, 0.64], ("epochs", 2): [0.50, 0.40, 0.61],
              ("dpo", 0): BASE, ("dpo", 1): [0.58, 0.42, 0.66], ("dpo", 2): [0.50, 0.40, 0.60]}  # fmt: skip
    answers = answer_table(frame(scores)).set_index(["question", "iteration"])
    assert list(answers.index) == [("Q1", 1), ("Q1", 2), ("Q2", 2), ("Q3", 1), ("Q3", 2)]  # Q2 from iteration 2
    q1 = answers.loc[("Q1", 1)]
    differences = [5.0, 6.0, 4.0]  # points: spin at iteration 1 minus the base model, per seed
    expected = stats.ttest_rel([55, 46, 64], [50, 40, 60])
    assert q1["mean_difference"] == pytest.approx(5.0) and q1["n"] == 3
    assert q1["p"] == pytest.approx(expected.pvalue) and q1["ci_low"] > 0 and q1["verdict"] == "better"
    assert q1["ci_high"] - q1["mean_difference"] == pytest.approx(stats.t.ppf(0.975, 2) * pd.Series(differences).sem())
    assert answers.loc[("Q1", 2), "verdict"] == "worse" and answers.loc[("Q2", 2), "verdict"] == "worse"
    assert answers.loc[("Q3", 1), "verdict"] == "no difference detected"  # +5, +4, +4 vs ... spans zero? no:
    said = sentences(answer_table(frame(scores)))
    assert said[0].startswith("Q1 (does SPIN improve on the base model?) SPIN - the base model")
    assert "iteration 1: +5.0 points [" in said[0] and "better" in said[0]


def test_a_question_without_its_arm_is_said_to_be_unanswered_and_one_seed_is_untested():
    said = sentences(answer_table(frame({("spin", 0): BASE[:1], ("spin", 1): [0.6]})))
    assert "iteration 1: +10.0 points (untested: 1 seed)" in said[0]
    assert said[1] == ("Q2 (does iterating beat training iteration 0 for the same total steps (the epochs arm)?): not "
                       "answered: the study has no epochs runs.")  # fmt: skip


def test_the_verdict_reads_the_interval_never_the_point_estimate():
    assert verdict(0.1, 2.0) == "better" and verdict(-2.0, -0.1) == "worse"
    assert verdict(-0.1, 5.0) == "no difference detected" and verdict(float("nan"), 1.0) == "untested"


def test_what_each_arm_learned_is_a_mean_and_ci_across_seeds():
    diagnostics = pd.DataFrame([{"study": "s", "method": "dpo", "seed": s, "iteration": 1,
                                 "heldout/rewards/accuracies": a} for s, a in enumerate([0.7, 0.8, 0.9])])  # fmt: skip
    diagnostics.attrs["axes"] = []
    table = objective_table(diagnostics)
    row = table.loc[("dpo", 1, "heldout rewards/accuracies")]
    assert row["mean"] == pytest.approx(0.8) and row["n"] == 3 and row["ci_low"] > 0.5
    assert objective_table(diagnostics, keys=["generated_correct"]).empty


def test_each_arm_is_judged_on_its_own_objective_at_every_iteration():
    """Preference arms: held-out reward accuracy against chance (0.5); SFT: the held-out real answers' log p
    against the base model's (0); the verdict reads the CI across seeds, iteration by iteration."""
    rows = [
        {
            "study": "s",
            "method": "dpo",
            "seed": s,
            "iteration": t,
            "heldout/rewards/accuracies": a + 0.1 * t,
            "heldout_real/logp_vs_base": -1.0,
        }
        for s, a in enumerate([0.45, 0.5, 0.55])
        for t in (1, 2)
    ]
    rows += [
        {"study": "s", "method": "spin", "seed": s, "iteration": 1, "heldout/rewards/accuracies": a}
        for s, a in enumerate([0.3, 0.6, 0.5])
    ]
    rows += [{"study": "s", "method": "sft", "seed": s, "iteration": t, "heldout_real/logp_vs_base": -0.1 * t - d}
             for s, d in enumerate([0.0, 0.01, 0.02]) for t in (0, 1)]  # fmt: skip
    diagnostics = pd.DataFrame(rows)
    diagnostics.attrs["axes"] = []
    table = learning_table(diagnostics).set_index(["variant", "iteration"])
    assert list(table.index) == [("dpo", 1), ("dpo", 2), ("sft", 1), ("spin", 1)]  # iteration 0 is the base model
    assert set(table.loc["dpo", "objective"]) == {"heldout/rewards/accuracies"}
    assert table.loc[("dpo", 2), "mean"] == pytest.approx(0.7) and table.loc[("dpo", 2), "verdict"] == "learned"
    assert table.loc[("dpo", 1), "verdict"] == "not detected"  # 0.55, 0.6, 0.65: the CI reaches under 0.5
    assert table.loc[("sft", 1), "objective"] == "heldout_real/logp_vs_base"
    assert table.loc[("sft", 1), "verdict"] == "went the wrong way"
    assert table.loc[("spin", 1), "verdict"] == "not detected"
    half = stats.t.ppf(0.975, 2) * pd.Series([0.65, 0.7, 0.75]).sem()
    assert table.loc[("dpo", 2), "ci_low"] == pytest.approx(0.7 - half)
    said = learning_sentences(learning_table(diagnostics))
    assert said[0].startswith("dpo (did it learn its objective?): held-out reward accuracy (chance: 0.5), mean over 3")
    assert "iteration 1: 0.600 [" in said[0] and ", not detected; iteration 2: 0.700 [" in said[0]
    assert said[0].endswith(", learned.") and len(said) == 3
    one = learning_table(diagnostics[diagnostics["seed"] == 0])
    assert set(one["verdict"]) == {"untested"} and "mean over 1 seed with" in learning_sentences(one)[0]
    assert "iteration 1: 0.550, untested" in learning_sentences(one)[0]
    fewer = diagnostics.copy()  # seed 2's second DPO iteration scored nothing: that iteration has 2 seeds
    fewer.loc[(fewer["method"] == "dpo") & (fewer["seed"] == 2) & (fewer["iteration"] == 2),
              "heldout/rewards/accuracies"] = None  # fmt: skip
    fewer.attrs["axes"] = []
    said = learning_sentences(learning_table(fewer))[0]
    assert "mean over 3 seeds" in said and said.endswith(", not detected (2 seeds).")
    # an iteration that scored nothing (every held-out pair degenerate) is left out, the others stay
    stopped = pd.concat([diagnostics, pd.DataFrame([{"study": "s", "method": "spin", "seed": s, "iteration": 2}
                                                     for s in range(3)])])  # fmt: skip
    stopped.attrs["axes"] = []
    assert learning_table(stopped).set_index("variant").loc["spin", "iteration"] == 1


def test_each_seeds_model_is_also_tested_on_its_own_heldout_items():
    """Within a seed, a preference arm's accuracy is k of n held-out pairs: its exact binomial CI (checked against
    the Beta quantiles that define it); SFT's change in log p has a Student t CI over the answers from its paired
    standard error. The across-seed CI can span chance while every seed's model clears it."""
    accuracies = [(0.612500011920929, 400), (float(np.float32(194 / 349)), 349), (0.52, 100)]  # TRL's float32 means
    rows = [{"study": "s", "method": "spin", "seed": s, "iteration": 1, "heldout/rewards/accuracies": a,
             "heldout/pairs/scored": n} for s, (a, n) in enumerate(accuracies)]  # fmt: skip
    rows += [{"study": "s", "method": "sft", "seed": s, "iteration": 1, "heldout_real/logp_vs_base": change,
              "heldout_real/logp_vs_base_se": 0.005, "heldout_real/answers": 200}
             for s, change in enumerate([0.02, 0.003, -0.02])]  # fmt: skip
    rows += [{"study": "s", "method": "dpo", "seed": s, "iteration": 1, "heldout/rewards/accuracies": 0.7}
             for s in range(3)]  # runs from before the counts were logged: no test within a seed  # fmt: skip
    diagnostics = pd.DataFrame(rows)
    diagnostics.attrs["axes"] = []
    seeds = seed_learning_table(diagnostics).set_index(["variant", "seed"])
    k, n = 245, 400
    low, high = stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)
    assert seeds.loc[("spin", 0), ["ci_low", "ci_high"]].tolist() == pytest.approx([low, high])
    assert list(seeds.loc["spin", "verdict"]) == ["learned", "learned", "not detected"]  # 194 of 349; 52 of 100
    half = stats.t.ppf(0.975, 199) * 0.005
    assert seeds.loc[("sft", 0), "ci_low"] == pytest.approx(0.02 - half)
    assert list(seeds.loc["sft", "verdict"]) == ["learned", "not detected", "went the wrong way"]
    assert set(seeds.loc["dpo", "verdict"]) == {"untested"}
    table = learning_table(diagnostics).set_index("variant")
    assert table.loc["spin", "verdict"] == "not detected"  # across seeds: 0.56 to 0.61, t with 2 df
    assert table.loc["spin", ["seeds_tested", "seeds_learned", "seeds_wrong_way"]].tolist() == [3, 2, 0]
    assert table.loc["sft", ["seeds_tested", "seeds_learned", "seeds_wrong_way"]].tolist() == [3, 1, 1]
    assert table.loc["dpo", ["seeds_tested", "seeds_learned", "verdict"]].tolist() == [0, 0, "learned"]
    said = dict(zip(["dpo", "sft", "spin"], learning_sentences(learning_table(diagnostics)), strict=True))
    assert said["sft"].endswith(", not detected, 1 of 3 seeds' models learned, 1 went the wrong way.")
    assert "how many seeds' models learned it by their own 95% CI" in said["spin"]
    assert said["spin"].endswith(", 2 of 3 seeds' models learned.")
    assert "seeds' models" not in said["dpo"]


def test_a_share_that_is_no_whole_count_of_its_pairs_is_left_untested():
    """float32's 7 of 10 reads 0.69999999 and is still 7; an accuracy over repeated pairs (accelerate's padding on
    several processes: 245 of 401 against 400 pairs) is no k of n, so no interval is made up for it."""
    spin = OBJECTIVES[0]
    seven = model_interval(spin, {spin.key: float(np.float32(0.7)), spin.items: 10})
    expected = stats.binomtest(7, 10).proportion_ci(0.95, method="exact")
    assert seven == pytest.approx((expected.low, expected.high))
    assert all(math.isnan(v) for v in model_interval(spin, {spin.key: 245 / 401, spin.items: 400}))
    assert all(math.isnan(v) for v in model_interval(spin, {spin.key: 0.6, spin.items: 1}))  # one pair: no test
    sft = OBJECTIVES[1]
    assert all(math.isnan(v) for v in model_interval(sft, {sft.key: 0.1, sft.items: 200}))  # no standard error


def test_each_base_model_is_listed_once_with_its_plateau():
    """Two arms per seed share a base model; a size axis gives each size its own; a learning-rate axis, which only
    the arms see, is not shown as the base model's."""
    curves = {("tiny", 0): [2.0, 1.0, 0.995, 0.993], ("tiny", 1): [2.1, 1.1, 1.0], ("tiny_l", 0): [1.9, 0.8, 0.7]}
    rows = [
        {"study": "s", "method": method, "seed": seed, "iteration": 0, "model": model, "learning_rate": rate,
         "base/heldout_curve": curve, "base/recent_gain": round(min(curve[:-2]) - min(curve[-2:]), 6),
         "base/plateaued": model == "tiny" and seed == 0}
        for (model, seed), curve in curves.items() for method, rate in (("spin", 1e-5), ("sft", 3e-6))
    ]  # fmt: skip
    rows.append({"study": "s", "method": "spin", "seed": 0, "iteration": 1, "model": "tiny", "learning_rate": 1e-5})
    diagnostics = pd.DataFrame(rows)
    diagnostics.attrs["axes"] = ["model", "learning_rate"]
    table = base_table(diagnostics)
    assert list(table.columns) == ["model", *BASE_COLUMNS]
    assert table[["model", "seed", "epochs_trained", "plateaued", "runs"]].values.tolist() == [
        ["tiny", 0, 4, True, 2], ["tiny", 1, 3, False, 2], ["tiny_l", 0, 3, False, 2]
    ]  # fmt: skip
    assert table["heldout_loss_first"].tolist() == [2.0, 2.1, 1.9]
    assert table["heldout_loss_last"].tolist() == [0.993, 1.0, 0.7]
    said = base_sentence(table)
    assert said.startswith("base models (did each finish its SFT?): 1 of 3 met the plateau criterion")
    assert "model=tiny seed 0 2.000 -> 0.993 in 4 epochs, the last epochs gaining 0.0070" in said
    no_base = diagnostics.drop(columns=[c for c in diagnostics if c.startswith("base/")])
    assert base_table(no_base).empty
    # runs from before `recent_gain` and `plateaued` were logged: the curve alone, the flag not taken as true
    old = diagnostics.drop(columns=["base/recent_gain", "base/plateaued"])
    assert base_table(old)["recent_gain"].isna().all() and not base_table(old)["plateaued"].any()
    assert base_sentence(base_table(old)).endswith("model=tiny_l seed 0 1.900 -> 0.700 in 3 epochs.")  # no gain


def test_a_base_epoch_cap_axis_is_the_base_models_own_column():
    """`model.base_sft.epochs` swept (experiment=ablate_base_epochs) is labelled `epochs`, like no column the base
    table makes: each base model shows its cap beside the epochs it took."""
    curves = {(4, 0): [2.0, 1.0, 0.8, 0.7], (16, 0): [2.0, 1.0, 0.8, 0.7, 0.69, 0.688]}
    rows = [{"study": "s", "method": method, "seed": seed, "iteration": 0, "epochs": cap,
             "base/heldout_curve": curve, "base/plateaued": cap == 16}
            for (cap, seed), curve in curves.items() for method in ("spin", "sft")]  # fmt: skip
    diagnostics = pd.DataFrame(rows)
    diagnostics.attrs["axes"] = ["epochs"]
    table = base_table(diagnostics)
    assert table[["epochs", "seed", "epochs_trained", "plateaued", "runs"]].values.tolist() == [
        [4, 0, 4, False, 2], [16, 0, 6, True, 2]
    ]  # fmt: skip
    assert "epochs=4 seed 0 2.000 -> 0.700 in 4 epochs" in base_sentence(table)
