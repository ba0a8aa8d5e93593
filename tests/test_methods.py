"""The three arms on the smoke world, 2 iterations each: rows for iterations 0..2, checkpoints that reload and
differ, the same step budget, a shared iteration 0, early stop, resume after a crash, and the CLI's multirun."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spin_bench.cache import read_json, read_jsonl
from spin_bench.report import results_table, score_frame, study_rows
from spin_bench.study import run
from spin_bench.world.model import load_checkpoint
from tests.conftest import make_cfg, run_cli
from tests.wandb_file import records

METHODS = ("spin", "sft", "dpo")


@pytest.fixture(scope="module")
def arms(smoke):
    """Every arm's rows: the smoke fixture is the SPIN arm; SFT and DPO run on the same root (shared base)."""
    _, spin_rows, root = smoke
    rows = {"spin": spin_rows} | {m: run(make_cfg(root, "experiment=smoke", f"method={m}")) for m in ("sft", "dpo")}
    return root, rows


def diagnostics(root: Path, method: str, study: str = "smoke") -> list[dict]:
    return read_jsonl(root / "runs" / study / f"{method}-seed0" / "diagnostics.jsonl")


@pytest.mark.parametrize("method", METHODS)
def test_each_method_logs_iterations_0_to_2_with_checkpoints_that_reload(arms, method):
    _, rows = arms
    assert {r["method"] for r in rows[method]} == {method}
    checkpoints = {r["iteration"]: r["checkpoint"] for r in rows[method]}
    assert sorted(checkpoints) == [0, 1, 2]
    models = {t: load_checkpoint(c)[0] for t, c in checkpoints.items()}
    for t in (1, 2):
        before, after = dict(models[t - 1].named_parameters()), dict(models[t].named_parameters())
        assert before.keys() == after.keys()
        assert all(not torch.equal(before[k], after[k]) for k in before)  # every tensor trained


def test_arms_share_iteration_0_and_train_the_same_number_of_steps(arms):
    root, rows = arms
    base = {m: sorted((r["task"], r["metric"], r["value"], r["checkpoint"]) for r in rows[m] if r["iteration"] == 0)
            for m in METHODS}  # fmt: skip
    assert base["spin"] == base["sft"] == base["dpo"]
    # smoke: 32 SPIN prompts, 8 held out, batch 8, history 2: ceil(24 / 8) = 3 steps, then ceil(48 / 8) = 6
    expected = [math.ceil(24 * min(t + 1, 2) / 8) for t in range(2)]
    for m in METHODS:
        assert [d["train/steps"] for d in diagnostics(root, m)] == expected, m
        assert {d["zero_stage"] for d in diagnostics(root, m)} == {2}  # DeepSpeed ZeRO-2 really ran every iteration


def test_spin_pairs_mix_two_iterations_of_its_own_answers(arms):
    root, _ = arms
    first, second = diagnostics(root, "spin")
    assert (first["pairs"], second["pairs"]) == (24, 48)  # history 2: iteration 1 adds the base model's pairs
    assert 0 <= first["degenerate"] <= first["pairs"] and first["generated_chars"] >= 0
    assert 0.0 <= second["heldout/rewards/accuracies"] <= 1.0


def test_early_stop_on_heldout_reward_accuracy(arms):
    """A threshold above any accuracy stops after the first iteration, logged as such (stages reused)."""
    root, _ = arms
    rows = run(make_cfg(root, "experiment=smoke", "study=early", "method.early_stop_below=1.01"))
    assert sorted({r["iteration"] for r in rows}) == [0, 1]
    (only,) = diagnostics(root, "spin", study="early")
    assert only["early_stop"] is True and only["heldout/rewards/accuracies"] < 1.01


def test_mixture_reference_runs_end_to_end(arms):
    """alpha-SPIN through the study: the iteration-2 stage records the mixture and trains against a reference
    other than plain SPIN's; iteration 1's stage is plain SPIN's own (p_0 is both the base and the previous
    iterate, so every reference is the same model there)."""
    root, rows = arms
    mixed = run(make_cfg(root, "experiment=smoke", "study=mixture", "method.reference=mixture", "method.alpha=0.5"))
    first = {tuple(r["checkpoint"] for r in rs if r["iteration"] == 1)[0] for rs in (mixed, rows["spin"])}
    assert len(first) == 1
    stage = Path(next(r["checkpoint"] for r in mixed if r["iteration"] == 2)).parent
    plain = Path(next(r["checkpoint"] for r in rows["spin"] if r["iteration"] == 2)).parent
    marker = read_json(stage / "_COMPLETE.json")
    assert marker["reference"]["alpha"] == 0.5 and marker["reference"]["base"] is not None
    mixed_ref = read_json(stage / "train_stats.json")["reference_logps"]["chosen"]
    plain_ref = read_json(plain / "train_stats.json")["reference_logps"]["chosen"]
    assert len(mixed_ref) == len(plain_ref) and mixed_ref != pytest.approx(plain_ref, abs=1e-3)


def test_crash_mid_study_resumes_from_the_finished_stages(arms, monkeypatch):
    root, _ = arms
    overrides = ("experiment=smoke", "study=crash", "method.recipe.learning_rate=3e-4")  # new training stages
    import spin_bench.study as study

    evaluate, calls = study.evaluate, []

    def crash_at_the_third_evaluation(checkpoint, *args, **kwargs):  # iteration 0, 1, then 2: crash
        calls.append(checkpoint)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return evaluate(checkpoint, *args, **kwargs)

    before = len(list((root / ".cache" / "train").glob("*/_COMPLETE.json")))
    monkeypatch.setattr(study, "evaluate", crash_at_the_third_evaluation)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(make_cfg(root, *overrides))
    results = read_jsonl(root / "runs" / "crash" / "spin-seed0" / "results.jsonl")
    assert sorted({r["iteration"] for r in results}) == [0, 1]  # what finished is kept
    trained = {p: p.stat().st_mtime_ns for p in (root / ".cache" / "train").glob("*/_COMPLETE.json")}
    assert len(trained) == before + 2

    monkeypatch.setattr(study, "evaluate", evaluate)
    rows = run(make_cfg(root, *overrides))
    assert sorted({r["iteration"] for r in rows}) == [0, 1, 2]
    after = {p: p.stat().st_mtime_ns for p in (root / ".cache" / "train").glob("*/_COMPLETE.json")}
    assert after == trained  # both iterations' training reused, nothing retrained
    # W&B: the crashed attempt is marked failed (exit code 1), the resumed one finished (0)
    run_files = sorted((root / "runs" / "crash" / "spin-seed0").glob("wandb/offline-run-*/run-*.wandb"))
    exits = [[r.exit.exit_code for r in records(f) if r.WhichOneof("record_type") == "exit"] for f in run_files]
    assert exits == [[1], [0]]


def test_cli_runs_the_three_arms_and_writes_the_study_report(arms):
    """`spin-bench` as a user runs it (a Hydra multirun of the arms): here every stage is cached, so this checks
    the multirun wiring and the report, not the training."""
    root, rows = arms
    out = run_cli(root, "experiment=smoke", "study=smoke")
    assert "=== study smoke" in out.stdout
    report = (root / "runs" / "smoke" / "report.md").read_text()
    assert report.startswith("# smoke: scores in %\n")
    assert f"```\n{results_table(study_rows(root / 'runs' / 'smoke'))}\n```" in report
    table = score_frame(study_rows(root / "runs" / "smoke"))
    assert sorted(table.index) == [(m, 0, t) for m in sorted(METHODS) for t in range(3)]
    png = (root / "runs" / "smoke" / "scores.png").read_bytes()
    assert png.startswith(b"\x89PNG")
