"""The methods without training: the plug-in registry, per-iteration configs, the shared step budget, held-out
rows, SPIN's pairs, and one iteration of each arm against stand-in stages that record what they are asked."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from spin_bench.data.world import World
from spin_bench.engine.config import PreferenceLoss, Recipe, Trained
from spin_bench.methods import builtin_kinds, method_for
from spin_bench.methods.base import IterationInputs, history_iterations, split_heldout, step_budget
from spin_bench.methods.spin import spin_pairs
from spin_bench.pipeline import early_stop
from spin_bench.stages import write_jsonl
from tests.conftest import make_config


def method(tmp_path, *overrides):
    return make_config(tmp_path, *overrides).method


def test_the_registry_finds_each_builtin_arm_and_names_the_others():
    assert builtin_kinds() == ["dpo", "epochs", "sft", "spin"]
    assert {kind: method_for(kind).splits for kind in builtin_kinds()} == {
        "dpo": ("spin_prompts", "dpo_pairs"), "epochs": ("spin_prompts",), "sft": ("spin_prompts",),
        "spin": ("spin_prompts",)}  # fmt: skip
    with pytest.raises(LookupError, match="no module spin_bench.methods.ppo; the methods here are dpo, epochs, sft"):
        method_for("ppo")
    with pytest.raises(LookupError, match="no module my_lab.arm"):
        method_for("my_lab.arm")
    with pytest.raises(LookupError, match="module json.decoder defines no METHOD"):
        method_for("json.decoder")


def test_by_iteration_overrides_only_its_iteration(tmp_path):
    m = method(
        tmp_path,
        "method=spin",
        "method.iterations=4",
        "+method.by_iteration={3: {beta: 5.0, recipe: {learning_rate: 1e-7}}}",
    )
    assert [m.at(t).beta for t in range(4)] == [0.1, 0.1, 0.1, 5.0]
    assert m.at(3).recipe.learning_rate == 1e-7 and m.at(2).recipe.learning_rate == m.recipe.learning_rate != 1e-7
    assert m.at(3).recipe.batch_size == m.recipe.batch_size
    command_line = method(tmp_path, "method=spin", "method.iterations=4", "+method.by_iteration.3.beta=5.0")
    assert command_line.at(3).beta == 5.0  # a digit string key from the command line counts as the iteration


def test_step_budget_follows_spins_history(tmp_path):
    m = method(tmp_path, "method=sft", "method.recipe.batch_size=32", "method.recipe.epochs=2")
    # 450 training prompts: iteration 0 trains on one iteration's pairs, later ones on two (history 2)
    assert [step_budget(m, t, 450) for t in range(3)] == [2 * 15, 2 * 29, 2 * 29]
    m = method(tmp_path, "method.history=null", "method=spin")
    assert [step_budget(m, t, 64) for t in range(3)] == [2, 4, 6]


@pytest.mark.parametrize(
    ("overrides", "alpha"),
    [((), 0.0), (("method.reference=base",), 1.0), (("method.reference=mixture", "method.alpha=0.3"), 0.3)],
)
def test_the_reference_weight_of_the_base_model(tmp_path, overrides, alpha):
    assert method(tmp_path, "method=spin", *overrides).loss() == PreferenceLoss(0.1, "sigmoid", alpha)


def test_the_regularised_arms_are_spin_with_another_loss(tmp_path):
    assert method(tmp_path, "method=spin_nll").loss() == PreferenceLoss(0.1, "sigmoid", 0.0, nll_weight=1.0)
    assert method(tmp_path, "method=sppo").loss() == PreferenceLoss(0.1, "sppo_hard", 0.0)
    assert method(tmp_path, "method=spin_dpop").loss() == PreferenceLoss(0.1, "sigmoid", 0.0, dpop_lambda=50.0)
    assert {method(tmp_path, f"method={m}").kind for m in ("spin_nll", "sppo", "spin_dpop")} == {"spin"}


def test_heldout_rows_are_the_last_ones_and_stay_whatever_the_data_size():
    rows = [{"id": i} for i in range(6)]
    assert split_heldout(rows, 2, None, "x") == (rows[:4], rows[4:])
    assert split_heldout(rows, 0, None, "x") == (rows, [])
    assert split_heldout(rows, 2, 3, "x") == (rows[:3], rows[4:])
    with pytest.raises(ValueError, match="method.heldout=6 leaves no training rows in x"):
        split_heldout(rows, 6, None, "x")
    with pytest.raises(ValueError, match="method.prompts=5: x has 4 training rows"):
        split_heldout(rows, 2, 5, "x")


@pytest.mark.parametrize(
    ("iteration", "history", "expected"),
    [(0, 1, [0]), (0, 2, [0]), (1, 2, [0, 1]), (3, 2, [2, 3]), (3, 1, [3]), (3, None, [0, 1, 2, 3]), (2, 5, [0, 1, 2])],
)
def test_history_iterations(iteration, history, expected):
    assert history_iterations(iteration, history) == expected


def test_pairs_mix_history_and_keep_degenerate_ones():
    real = [{"id": "a", "prompt": "qa", "response": "ya"}, {"id": "b", "prompt": "qb", "response": "yb"}]
    generations = {t: [{"id": "a", "prompt": "qa", "generated": f"a{t}"},
                       {"id": "b", "prompt": "qb", "generated": "yb"}] for t in range(3)}  # fmt: skip
    pairs = spin_pairs(generations, real, 2, 2)
    assert [(p["iteration"], p["id"], p["chosen"], p["rejected"]) for p in pairs] == [
        (1, "a", "ya", "a1"), (1, "b", "yb", "yb"), (2, "a", "ya", "a2"), (2, "b", "yb", "yb"),
    ]  # fmt: skip


def test_missing_generations_are_named():
    with pytest.raises(KeyError, match="generations of iteration 0, which are missing"):
        spin_pairs({1: []}, [], 1, 2)
    with pytest.raises(KeyError, match="'b' has no generation at iteration 0"):
        spin_pairs({0: [{"id": "a", "prompt": "qa", "generated": "g"}]}, [{"id": "b", "prompt": "qb", "response": "y"}],
                   0, 1)  # fmt: skip


@dataclasses.dataclass
class RecordingStages:
    """Stand-in stages: answers that say which checkpoint gave them, and a "training" that records its call."""

    generated: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    trained: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    compared: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    answer: str = "says"

    def generate(self, checkpoint: str, prompts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        self.generated.append((checkpoint, len(prompts)))
        return [{"id": p["id"], "prompt": p["prompt"], "generated": f"{checkpoint} {self.answer}"} for p in prompts]

    def train(self, label: str, start: str, rows: Sequence[Mapping[str, Any]], recipe: Recipe,
              loss: PreferenceLoss | None = None, heldout: Sequence[Mapping[str, Any]] = ()) -> Trained:  # fmt: skip
        self.trained.append({"label": label, "start": start, "rows": list(rows), "recipe": recipe, "loss": loss,
                             "heldout": list(heldout)})  # fmt: skip
        history = [{"loss": 0.5, "step": 1, "rewards/margins": 0.2}, {"loss": 0.4, "step": 2, "rewards/margins": 0.6}]
        stats = {"train_loss": 0.5, "steps": recipe.max_steps, "zero_stage": 2, "log_history": history,
                 "heldout": {"rewards/accuracies": 0.75}}  # fmt: skip
        return Trained(f"{start}+{label}", stats)

    def similarity(self, checkpoint: str, pairs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        self.compared.append((checkpoint, len(pairs)))
        return {"ches": 1.5}


@pytest.fixture
def world(tmp_path) -> World:
    data = tmp_path / "world" / "data"
    write_jsonl(
        data / "spin_prompts.jsonl", [{"id": f"s{i}", "prompt": f"q{i}", "response": f"a{i}"} for i in range(10)]
    )
    write_jsonl(data / "dpo_pairs.jsonl", [{"id": f"d{i}", "prompt": f"p{i}", "chosen": "c", "rejected": "r"}
                                           for i in range(10)])  # fmt: skip
    return World(Path(tmp_path / "world"))


ITERATION = ("method.heldout=2", "method.recipe.batch_size=4")  # 10 prompts: 8 trained on, 2 held out


def test_a_spin_iteration_generates_with_every_model_of_its_history_and_trains_on_their_pairs(tmp_path, world):
    config = method(tmp_path, "method=spin", *ITERATION)
    stages = RecordingStages()
    result = method_for("spin").iterate(config.at(1), IterationInputs(world, ("p0", "p1")), stages)
    assert stages.generated == [("p0", 10), ("p1", 10)]  # every prompt, held-out ones too, by p_0 and p_1
    (call,) = stages.trained
    assert (call["label"], call["start"], call["loss"]) == ("spin", "p1", PreferenceLoss(0.1, "sigmoid", 0.0))
    assert [(p["iteration"], p["rejected"]) for p in call["rows"]] == [(0, "p0 says")] * 8 + [(1, "p1 says")] * 8
    assert [p["rejected"] for p in call["heldout"]] == ["p1 says"] * 2  # scored against the current model's answers
    assert call["recipe"].max_steps == math.ceil(16 / 4)
    assert (
        result.checkpoint == "p1+spin" and result.diagnostics["pairs"] == 16 and result.diagnostics["degenerate"] == 0
    )
    assert result.diagnostics["heldout/rewards/accuracies"] == 0.75 and len(result.samples) == 8
    # training metrics over the whole stage and at its last logging window; CHES of the held-out pairs under p_1
    assert result.diagnostics["train/rewards/margins"] == pytest.approx(0.4)
    assert result.diagnostics["train_last/rewards/margins"] == 0.6
    assert stages.compared == [("p1", 2)] and result.diagnostics["heldout/pairs/ches"] == 1.5
    assert result.diagnostics["heldout/pairs/degenerate"] == 0 and result.diagnostics["heldout/pairs/scored"] == 2


@pytest.mark.parametrize("kind", ["spin", "epochs"])
def test_heldout_pairs_whose_answers_are_equal_are_counted_and_not_scored(tmp_path, kind):
    """A degenerate held-out pair (the model gives the real answer) has equal rewards under any model: scored, it
    would be a miss, so it is left out of the held-out reward accuracy and counted instead."""
    data = tmp_path / "world" / "data"
    write_jsonl(data / "spin_prompts.jsonl", [{"id": f"s{i}", "prompt": f"q{i}", "response": "p0 says" if i == 9 else
                                               f"a{i}"} for i in range(10)])  # fmt: skip
    stages = RecordingStages()  # p0 answers "p0 says" everywhere: the real answer of s9, a held-out prompt
    config = method(tmp_path, f"method={kind}", *ITERATION)
    result = method_for(kind).iterate(config.at(0), IterationInputs(World(tmp_path / "world"), ("p0",)), stages)
    (call,) = stages.trained
    assert [p["id"] for p in call["heldout"]] == ["s8"]
    assert result.diagnostics["heldout/pairs/degenerate"] == 1 and result.diagnostics["heldout/pairs/scored"] == 1
    assert stages.compared == [("p0", 2)]  # CHES over every held-out pair


def test_the_share_of_correct_self_play_answers(tmp_path):
    data = tmp_path / "world" / "data"
    write_jsonl(data / "spin_prompts.jsonl", [{"id": f"s{i}", "prompt": f"q{i}", "response": f"#### {i}", "answer": i}
                                              for i in range(10)])  # fmt: skip
    stages = RecordingStages(answer="x\n#### 3")  # every answer says 3: right for s3 only
    config = method(tmp_path, "method=spin", *ITERATION)
    result = method_for("spin").iterate(config.at(0), IterationInputs(World(tmp_path / "world"), ("p0",)), stages)
    assert result.diagnostics["generated_correct"] == pytest.approx(1 / 8)  # of the 8 training prompts
    assert 0 < result.diagnostics["pair_text_similarity"] < 1


def test_the_epochs_arm_trains_longer_on_the_base_models_answers_against_the_base_model(tmp_path, world):
    config = method(tmp_path, "method=epochs", *ITERATION)  # at SPIN's rate (the tuning rule gave both 3e-6)
    spin, epochs = RecordingStages(), RecordingStages()
    method_for("spin").iterate(
        method(tmp_path, "method=spin", *ITERATION).at(2), IterationInputs(world, ("p0", "p1", "p2")), spin
    )
    method_for("epochs").iterate(config.at(2), IterationInputs(world, ("p0", "p1", "p2")), epochs)
    assert epochs.generated == [("p0", 10)]  # only the base model answers, at every iteration
    (call,) = epochs.trained
    assert call["label"] == "spin" and call["start"] == "p2"  # SPIN's stage kind: iteration 0 is SPIN's own
    assert call["loss"] == PreferenceLoss(0.1, "sigmoid", 1.0)  # the reference stays the base model
    assert {p["rejected"] for p in call["rows"]} == {"p0 says"} and len(call["rows"]) == 8
    assert call["recipe"].max_steps == spin.trained[0]["recipe"].max_steps == 4  # SPIN's budget: same total steps
    first_spin, first_epochs = RecordingStages(), RecordingStages()
    method_for("spin").iterate(
        method(tmp_path, "method=spin", *ITERATION).at(0), IterationInputs(world, ("p0",)), first_spin
    )
    method_for("epochs").iterate(config.at(0), IterationInputs(world, ("p0",)), first_epochs)
    same = ("label", "start", "rows", "recipe", "heldout")
    assert [first_spin.trained[0][k] for k in same] == [first_epochs.trained[0][k] for k in same]


def test_the_baselines_train_as_many_steps_on_their_own_data(tmp_path, world):
    budgets = {}
    for kind in ("sft", "dpo"):
        stages = RecordingStages()
        config = method(tmp_path, f"method={kind}", *ITERATION)
        result = method_for(kind).iterate(config.at(1), IterationInputs(world, ("p0", "p1")), stages)
        (call,) = stages.trained
        budgets[kind] = call["recipe"].max_steps
        assert stages.generated == [] and call["start"] == "p1"
        if kind == "sft":
            assert call["loss"] is None and [r["response"] for r in call["rows"]] == [f"a{i}" for i in range(8)]
        else:
            assert call["loss"].beta == 0.1 and [r["id"] for r in call["heldout"]] == ["d8", "d9"]
            assert stages.compared == [("p1", 2)] and result.diagnostics["heldout/pairs/scored"] == 2
    assert budgets == {"sft": 4, "dpo": 4}  # SPIN's: 8 prompts x 2 iterations of history / batch 4


def test_each_dpo_round_trains_on_the_pairs_after_the_last_rounds_and_cycles_when_they_run_out(tmp_path, world):
    """28 training pairs, SPIN's budget of 8, 16 and 16 rows (8 prompts, history 2, batch 4): round 0 takes
    d0-d7, round 1 the next 16 (d8-d23), round 2 the 4 left and then from the start again; no held-out pair."""
    write_jsonl(world.root / "data" / "dpo_pairs.jsonl",
                [{"id": f"d{i}", "prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(30)])  # fmt: skip
    config = method(tmp_path, "method=dpo", *ITERATION)
    rounds = []
    for t in range(3):
        stages = RecordingStages()
        method_for("dpo").iterate(config.at(t), IterationInputs(world, tuple(f"p{i}" for i in range(t + 1))), stages)
        (call,) = stages.trained
        assert len(call["rows"]) == call["recipe"].max_steps * 4  # exactly the budget's rows
        assert [r["id"] for r in call["heldout"]] == ["d28", "d29"]
        rounds.append([int(r["id"][1:]) for r in call["rows"]])
    assert rounds == [list(range(8)), list(range(8, 24)), [24, 25, 26, 27, *range(12)]]
    # a round that trains longer (by_iteration: 2 epochs at iteration 1) moves the next round's start with it
    longer = method(tmp_path, "method=dpo", *ITERATION, "+method.by_iteration.1.recipe.epochs=2")
    stages = RecordingStages()
    method_for("dpo").iterate(longer.at(2), IterationInputs(world, ("p0", "p1", "p2")), stages)
    assert [int(r["id"][1:]) for r in stages.trained[0]["rows"]] == list(range(12, 28))  # 8 + 32 rows before it


def test_early_stop_reads_the_heldout_accuracy_and_stops_when_no_pair_is_left_to_score(tmp_path):
    """SPIN's convergence signal: under the threshold, stop; every held-out pair degenerate (no accuracy: the model
    gives every held-out real answer itself), stop; no threshold, or an arm without one, never."""
    config = method(tmp_path, "method=spin", "method.early_stop_below=0.6")
    assert early_stop(config, {"heldout/rewards/accuracies": 0.55}) is True
    assert early_stop(config, {"heldout/rewards/accuracies": 0.65}) is False
    assert early_stop(config, {"heldout/pairs/degenerate": 50}) is True
    assert early_stop(method(tmp_path, "method=spin"), {"heldout/rewards/accuracies": 0.0}) is False
    assert early_stop(method(tmp_path, "method=sft"), {}) is False
