"""The four arms on the smoke world, 2 iterations each: rows for iterations 0..2, checkpoints that reload and
differ in every tensor, a shared iteration 0, the same step budget, the epochs arm sharing SPIN's first
iteration, the base model's and every iteration's diagnostics, early stop, and alpha-SPIN's reference."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import spin_bench.pipeline as pipeline
from spin_bench.engine.checkpoint import load_checkpoint
from spin_bench.stages import read_json, read_jsonl

METHODS = ("spin", "sft", "dpo", "epochs")


def diagnostics(root: Path, method: str, study: str = "smoke", base: bool = False) -> list[dict]:
    """The run's diagnostics rows of iterations 1.. (with `base`, from iteration 0, the base model's)."""
    rows = read_jsonl(root / "runs" / study / f"{method}-seed0" / "diagnostics.jsonl")
    return [r for r in rows if base or r["iteration"] > 0]


@pytest.mark.parametrize("method", METHODS)
def test_each_arm_logs_iterations_0_to_2_with_checkpoints_that_reload_and_differ(smoke, method):
    rows = smoke.rows(method)
    assert {r["method"] for r in rows} == {method}
    checkpoints = {r["iteration"]: r["checkpoint"] for r in rows}
    assert sorted(checkpoints) == [0, 1, 2]
    models = {t: load_checkpoint(c)[0] for t, c in checkpoints.items()}
    for t in (1, 2):
        before, after = dict(models[t - 1].named_parameters()), dict(models[t].named_parameters())
        assert before.keys() == after.keys()
        assert all(not torch.equal(before[k], after[k]) for k in before)  # every tensor trained


def test_the_arms_share_iteration_0_and_train_the_same_number_of_steps_with_deepspeed(smoke):
    base = {m: sorted((r["task"], r["metric"], r["value"], r["checkpoint"]) for r in smoke.rows(m)
                      if r["iteration"] == 0) for m in METHODS}  # fmt: skip
    assert base["spin"] == base["sft"] == base["dpo"] == base["epochs"]
    # smoke: 32 SPIN prompts, 8 held out, batch 8, history 2: ceil(24 / 8) = 3 steps, then ceil(48 / 8) = 6
    expected = [math.ceil(24 * min(t + 1, 2) / 8) for t in range(2)]
    for m in METHODS:
        assert [d["train/steps"] for d in diagnostics(smoke.root, m)] == expected, m
        assert {d["zero_stage"] for d in diagnostics(smoke.root, m)} == {2}  # DeepSpeed ZeRO-2 really ran


def test_spin_pairs_mix_two_iterations_of_its_own_answers(smoke):
    first, second = diagnostics(smoke.root, "spin")
    assert (first["pairs"], second["pairs"]) == (24, 48)  # history 2: iteration 1 adds the base model's pairs
    assert 0 <= first["degenerate"] <= first["pairs"] and first["generated_chars"] >= 0
    assert 0.0 <= second["heldout/rewards/accuracies"] <= 1.0


def test_the_epochs_arm_trains_longer_on_the_base_models_answers_against_the_base_model(smoke):
    epochs = {r["iteration"]: r["checkpoint"] for r in smoke.rows("epochs")}
    marker = read_json(Path(epochs[2]).parent / "_COMPLETE.json")
    assert marker["reference"]["alpha"] == 1.0 and marker["kind"] == "spin"  # the base model stays the reference
    first, second = diagnostics(smoke.root, "epochs")
    assert first["pairs"] == second["pairs"] == 24 and second["train/steps"] == 6  # its pairs cycle: SPIN's budget
    assert first["generated_correct"] == second["generated_correct"]  # the same (base model's) answers


def test_the_base_model_and_every_iteration_are_diagnosed(smoke):
    for method in METHODS:
        base, *iterations = diagnostics(smoke.root, method, base=True)
        assert base["iteration"] == 0 and base["heldout_real/logp_vs_base"] == 0.0
        assert base["heldout_real/logp_vs_base_se"] == 0.0 and base["heldout_real/answers"] > 1
        assert base["base/epochs"] == len(base["base/heldout_curve"]) == 1  # smoke: a one-epoch cap
        assert base["base/plateaued"] is False  # one epoch cannot show a plateau
        for row in iterations:
            assert row["heldout_real/logp"] < 0 and row["heldout_real/logp_vs_base"] != 0.0
            assert 0.0 <= row["heldout_real/answer_p"] <= 1.0 and row["heldout_real/answer_entropy"] >= 0.0
            # a per-answer change, paired with the base model's: answers move by different amounts
            assert row["heldout_real/logp_vs_base_se"] > 0
            assert row["heldout_real/answers"] == base["heldout_real/answers"]
            if method != "sft":
                assert isinstance(row["heldout/pairs/ches"], float)
                # the held-out accuracy is a share of exactly the scored pairs (what the per-seed binomial test reads)
                scored = row["heldout/pairs/scored"]
                assert scored == 8 - row.get("heldout/pairs/degenerate", 0)  # smoke: 8 held-out prompts
                assert row["heldout/rewards/accuracies"] * scored == pytest.approx(
                    round(row["heldout/rewards/accuracies"] * scored), abs=1e-4
                )
            if method in ("spin", "epochs"):
                assert 0.0 <= row["generated_correct"] <= 1.0


def test_early_stop_on_heldout_reward_accuracy(smoke):
    """A threshold above any accuracy stops after the first iteration, logged as such (stages reused)."""
    result = pipeline.run(smoke.config("method=spin", "study=early", "method.early_stop_below=1.01"))
    assert sorted({r["iteration"] for r in result.rows}) == [0, 1]
    (_, only) = read_jsonl(smoke.root / "runs" / "early" / "spin-early_stop_below=1.01-seed0" / "diagnostics.jsonl")
    assert only["early_stop"] is True and only["heldout/rewards/accuracies"] < 1.01


def test_the_mixture_reference_runs_end_to_end(smoke):
    """alpha-SPIN: the iteration-2 stage records the mixture and trains against a reference other than plain
    SPIN's; iteration 1's stage is plain SPIN's own (p_0 is both the base and the previous iterate)."""
    mixed = pipeline.run(smoke.config("method=spin", "study=mixture", "method.reference=mixture", "method.alpha=0.5"))
    plain = smoke.rows("spin")
    first = {next(r["checkpoint"] for r in rows if r["iteration"] == 1) for rows in (mixed.rows, plain)}
    assert len(first) == 1
    stage = Path(next(r["checkpoint"] for r in mixed.rows if r["iteration"] == 2)).parent
    reference = Path(next(r["checkpoint"] for r in plain if r["iteration"] == 2)).parent
    marker = read_json(stage / "_COMPLETE.json")
    assert marker["reference"]["alpha"] == 0.5 and marker["reference"]["base"] is not None
    mixed_ref = read_json(stage / "train_stats.json")["reference_logps"]["chosen"]
    plain_ref = read_json(reference / "train_stats.json")["reference_logps"]["chosen"]
    assert len(mixed_ref) == len(plain_ref) and mixed_ref != pytest.approx(plain_ref, abs=1e-3)
