"""Method configs: per-iteration overrides, the shared step budget, the reference weight, and bad method
settings named before any stage runs."""

from __future__ import annotations

import pytest

from spin_bench.iteration import check_method, method_at, reference_alpha, split_heldout, step_budget
from tests.conftest import make_cfg


def method(tmp_path, *overrides):
    return make_cfg(tmp_path, *overrides).method


def test_by_iteration_overrides_only_its_iteration(tmp_path):
    m = method(tmp_path, "+method.by_iteration={3: {beta: 5.0, recipe: {learning_rate: 1e-7}}}", "method.iterations=4")
    assert [method_at(m, t).beta for t in range(4)] == [0.1, 0.1, 0.1, 5.0]
    assert method_at(m, 3).recipe.learning_rate == 1e-7
    assert method_at(m, 2).recipe.learning_rate == m.recipe.learning_rate != 1e-7
    assert method_at(m, 3).recipe.batch_size == m.recipe.batch_size


def test_step_budget_follows_spins_history(tmp_path):
    m = method(tmp_path, "method=sft", "method.recipe.batch_size=32", "method.recipe.epochs=2")
    # 450 training prompts: iteration 0 trains on one iteration's pairs, later ones on two (history 2)
    assert [step_budget(m, t, 450) for t in range(3)] == [2 * 15, 2 * 29, 2 * 29]
    m = method(tmp_path, "method.history=null")
    assert [step_budget(m, t, 64) for t in range(3)] == [2, 4, 6]
    assert [step_budget(m, t, 64, processes=2) for t in range(3)] == [1, 2, 3]  # global batch 2 x 32


REFERENCES = [((), 0.0), (("method.reference=base",), 1.0), (("method.reference=mixture", "method.alpha=0.3"), 0.3)]


@pytest.mark.parametrize(("overrides", "alpha"), REFERENCES)
def test_reference_weight_of_the_base_model(tmp_path, overrides, alpha):
    assert reference_alpha(method(tmp_path, *overrides)) == alpha


def test_heldout_rows_are_the_last_ones():
    rows = [{"id": i} for i in range(5)]
    assert split_heldout(rows, 2, "x") == (rows[:3], rows[3:])
    assert split_heldout(rows, 0, "x") == (rows, [])
    with pytest.raises(ValueError, match="method.heldout=5 leaves no training rows in x"):
        split_heldout(rows, 5, "x")


def test_data_size_takes_the_first_training_rows_and_keeps_the_heldout_ones():
    rows = [{"id": i} for i in range(6)]
    assert split_heldout(rows, 2, "x", prompts=3) == (rows[:3], rows[4:])
    assert split_heldout(rows, 2, "x", prompts=1)[1] == split_heldout(rows, 2, "x")[1]
    with pytest.raises(ValueError, match=r"method.prompts=5: x has 4 training rows"):
        split_heldout(rows, 2, "x", prompts=5)


def test_paper_overlay_composes_the_official_recipe(tmp_path):
    m = method(tmp_path, "experiment=paper", "+method.by_iteration.3.beta=5.0")
    schedule = [(method_at(m, t).recipe.learning_rate, method_at(m, t).beta) for t in range(4)]
    assert schedule == [(5e-7, 0.1), (5e-7, 0.1), (1e-7, 0.1), (1e-7, 5.0)]
    check_method(m)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("method.kind=ppo",), "method.kind must be one of"),
        (("method.reference=ema",), "method.reference must be previous, base or mixture"),
        (("method.reference=mixture", "method.alpha=1.5"), r"method.alpha must lie in \[0, 1\]"),
        (("method.loss_type=kto",), "method.loss_type at iteration 0 must be one of"),
        (("method.beta=0",), "method.beta at iteration 0 must be > 0"),
        (("method.history=0",), "method.history must be >= 1 or null"),
        (("method.iterations=-1",), "method.iterations must be a whole number >= 0"),
        (("method.prompts=0",), "method.prompts must be a number of prompts >= 1 or null"),
        (("+method.by_iteration={5: {beta: 1.0}}",), r"keys must be iterations 0..2, got \[5\]"),
        (("+method.by_iteration={2: {beta: -1.0}}",), "method.beta at iteration 2 must be > 0"),
        (("method=sft", "method.early_stop_below=0.5"), "early_stop_below needs held-out pairs"),
        (("method=sft", "+method.by_iteration={1: {beta: 5.0}}"), r"method.by_iteration.1 sets keys this method lacks"),
    ],
)
def test_bad_method_settings_are_named(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        check_method(method(tmp_path, *overrides))
