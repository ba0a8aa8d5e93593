"""The smoke run end to end (the SPIN arm, 2 iterations): the results contract, pinned training losses, what W&B
holds, resume without recomputation or duplicate rows, resume after a crash, and the stock lm_eval CLI agreeing
with the harness."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

import spin_bench.pipeline as pipeline
from spin_bench.analysis.load import load_results, tidy, wandb_rows
from spin_bench.data.world import build_world
from spin_bench.evaluation.harness import run_lm_eval, task_dir
from spin_bench.results import RESULT_KEYS
from spin_bench.stages import read_json, read_jsonl
from tests.conftest import subprocess_env
from tests.wandb_file import config_and_history, records

# The smoke run's training losses, pinned (torchtune's recipe tests do the same): the base stage's SFT at its
# logging steps 5 and 10, and each iteration's mean loss, per arm. Measured on the 2-core reference machine;
# the tolerance holds float32 summation-order differences across CPUs, not a change of the numbers.
BASE_LOSSES = [5.60531, 5.05544]
ITERATION_LOSSES = {"spin": [0.68893, 0.67828], "sft": [4.86342, 4.86116], "dpo": [0.69314, 0.69308],
                    "epochs": [0.68893, 0.66077]}  # fmt: skip
TOLERANCE = 2e-4


def test_the_run_writes_the_contract_rows(smoke):
    stored = read_jsonl(smoke.root / "runs" / "smoke" / "spin-seed0" / "results.jsonl")
    rows = smoke.results["spin"].rows
    assert stored == sorted(rows, key=lambda r: (r["iteration"], r["task"], r["metric"]))
    assert sorted({r["iteration"] for r in stored}) == [0, 1, 2]
    assert {(r["task"], r["metric"]) for r in stored} == {
        ("arith_gen", "exact_match,strict-match"), ("arith_gen_hard", "exact_match,strict-match"),
        ("arith_mc", "acc,none"), ("arith_mc", "acc_norm,none"),
    }  # fmt: skip
    for r in rows:
        assert set(r) == set(RESULT_KEYS) and (r["study"], r["method"], r["seed"]) == ("smoke", "spin", 0)
        assert 0.0 <= r["value"] <= 1.0 and (Path(r["checkpoint"]) / "model.safetensors").is_file()


def test_the_training_losses_are_pinned(smoke):
    base = read_json(Path(smoke.rows()[0]["checkpoint"]).parent / "train_stats.json")
    assert [entry["loss"] for entry in base["log_history"]] == pytest.approx(BASE_LOSSES, abs=TOLERANCE)
    for method, losses in ITERATION_LOSSES.items():
        run_dir = smoke.root / "runs" / "smoke" / f"{method}-seed0"
        trained = [d["train/loss"] for d in read_jsonl(run_dir / "diagnostics.jsonl") if d["iteration"] > 0]
        assert trained == pytest.approx(losses, abs=TOLERANCE)


def test_the_base_checkpoint_is_a_standard_hf_directory(smoke):
    checkpoint = Path(smoke.rows()[0]["checkpoint"])
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert model.config.model_type == "llama" and (checkpoint / "tokenizer.json").is_file()
    assert "### Response:" in (checkpoint / "chat_template.jinja").read_text()


def test_the_run_records_versions_axes_and_its_wandb_run(smoke):
    run_dir = smoke.root / "runs" / "smoke" / "spin-seed0"
    info = read_json(run_dir / "run_info.json")
    assert info["versions"]["trl"].startswith("1.16") and info["versions"]["lm_eval"].startswith("0.4.13")
    assert info["axes"] == {} and info["config"]["evaluation"]["headline"][0] == "arith_gen/exact_match,strict-match"
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    config, history = config_and_history(run_file)
    assert config["study"] == "smoke" and config["run_info"]["versions"] == info["versions"]
    evaluated = [h for h in history if "eval/average" in h]
    assert [h["iteration"] for h in evaluated] == [0, 1, 2]
    for h in evaluated:  # W&B's average is the suite's: the mean of its headline metrics
        headline = [h[f"eval/{key}"] for key in info["config"]["evaluation"]["headline"]]
        assert h["eval/average"] == pytest.approx(sum(headline) / len(headline))
    iterations = [h for h in history if "selfplay/heldout/rewards/accuracies" in h]
    assert [h["iteration"] for h in iterations] == [1, 2] and all(h["selfplay/pairs"] > 0 for h in iterations)
    steps = [h["train_step"] for h in history if "train/loss" in h]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one step axis across iterations
    tables = [h for h in history if h.get("selfplay/samples/_type") == "table-file"]  # real vs generated answers
    assert [(h["iteration"], h["selfplay/samples/nrows"]) for h in tables] == [(1, 16), (2, 16)]
    table = json.loads((run_file.parent / "files" / tables[0]["selfplay/samples/path"]).read_text())
    assert table["columns"] == ["iteration", "id", "prompt", "real", "generated"] and len(table["data"]) == 16


def test_the_wandb_run_rebuilds_the_results_frame(smoke):
    run_dir = smoke.root / "runs" / "smoke" / "spin-seed0"
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    config, history = config_and_history(run_file)
    frame, stored = tidy(wandb_rows(config, history, name="W&B name")), load_results(run_dir)
    keys = ["study", "method", "seed", "iteration", "task", "metric", "value", "run", "column", "headline"]
    assert sorted(frame[keys].itertuples(index=False)) == sorted(stored[keys].itertuples(index=False))


def test_a_rerun_resumes_without_recomputing_or_duplicating(smoke):
    config = smoke.config("method=spin")
    stages = sorted((smoke.root / ".cache").glob("*/*/_COMPLETE.json"))
    stamps = [p.stat().st_mtime_ns for p in stages]
    again = pipeline.run(config)
    assert again.rows == smoke.rows()
    assert sorted((smoke.root / ".cache").glob("*/*/_COMPLETE.json")) == stages
    assert [p.stat().st_mtime_ns for p in stages] == stamps  # world, base, generations, training, evals: reused
    assert {p.parent.parent.name for p in stages} >= {"world", "init", "tasks", "generations", "train", "eval"}
    assert len(read_jsonl(config.paths.run_dir / "results.jsonl")) == len(again.rows)


def test_a_crash_mid_run_resumes_from_the_finished_stages(smoke, monkeypatch):
    config = smoke.config("method=spin", "study=crash", "method.recipe.learning_rate=3e-4")  # new training stages
    evaluate, calls = pipeline.evaluate, []

    def crash_at_the_third_evaluation(checkpoint, *args, **kwargs):  # iteration 0, 1, then 2: crash
        calls.append(checkpoint)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return evaluate(checkpoint, *args, **kwargs)

    trained = smoke.root / ".cache" / "train"
    before = len(list(trained.glob("*/_COMPLETE.json")))
    left = []  # the runs that waited for every rank at their end (`ranks.leave`): a crash leaves at once
    monkeypatch.setattr(pipeline.ranks, "leave", lambda: left.append(config.paths.run_dir))
    monkeypatch.setattr(pipeline, "evaluate", crash_at_the_third_evaluation)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pipeline.run(config)
    assert left == []
    assert sorted({r["iteration"] for r in read_jsonl(config.paths.run_dir / "results.jsonl")}) == [0, 1]  # kept
    finished = {p: p.stat().st_mtime_ns for p in trained.glob("*/_COMPLETE.json")}
    assert len(finished) == before + 2

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    assert sorted({r["iteration"] for r in pipeline.run(config).rows}) == [0, 1, 2]
    assert left == [config.paths.run_dir]
    assert {p: p.stat().st_mtime_ns for p in trained.glob("*/_COMPLETE.json")} == finished  # nothing retrained
    # W&B: the crashed attempt is marked failed (exit code 1), the resumed one finished (0)
    run_files = sorted(config.paths.run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    exits = [[r.exit.exit_code for r in records(f) if r.WhichOneof("record_type") == "exit"] for f in run_files]
    assert exits == [[1], [0]]


def test_the_lm_eval_cli_reproduces_the_harness(smoke, tmp_path):
    """The command a run prints, run as a user would, gives the numbers in results.jsonl."""
    result = smoke.results["spin"]
    last = [r for r in result.rows if r["iteration"] == 2]
    assert result.lm_eval_command is not None and result.lm_eval_command.startswith("lm_eval run ")
    command = [str(Path(sys.executable).parent / "lm_eval"), *result.lm_eval_command.split()[1:], "--device", "cpu",
               "--output_path", str(tmp_path)]  # fmt: skip
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=subprocess_env(CUDA_VISIBLE_DEVICES="")
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (result_file,) = tmp_path.glob("**/results_*.json")
    cli = json.loads(result_file.read_text())["results"]
    for r in last:
        assert cli[r["task"]][r["metric"]] == pytest.approx(r["value"], abs=1e-9), (r["task"], r["metric"])


def test_the_embedded_suite_scores_with_few_shot_examples(smoke):
    """Each embedded task with 2 examples before the question (lm-eval asks for string targets in them)."""
    shots = ("evaluation.tasks.arith_gen=2", "evaluation.tasks.arith_gen_hard=2", "evaluation.tasks.arith_mc=2")
    config = smoke.config(*shots)
    world = build_world(config.data, config.paths.cache_dir)
    tasks = task_dir(config.evaluation, world, config.paths.cache_dir)
    rows = run_lm_eval(smoke.rows()[0]["checkpoint"], config.evaluation, tasks, config.model.loading)
    scored = {f"{r['task']}/{r['metric']}": r["value"] for r in rows}
    assert set(config.evaluation.headline) <= scored.keys() and all(0 <= v <= 1 for v in scored.values())


def test_the_paper_suites_tasks_exist_in_lm_eval(smoke):
    """Each task (or group: mmlu) of the paper suite is defined by a YAML of the pinned lm-eval's task tree (read
    as text: indexing every task with lm-eval's TaskManager costs 6 s)."""
    import lm_eval

    names = set()
    for path in (Path(lm_eval.__file__).parent / "tasks").rglob("*.yaml"):
        names |= set(re.findall(r"^(?:task|group): ([\w-]+)\s*$", path.read_text(errors="replace"), re.M))
    assert set(smoke.config("experiment=paper", "method=spin").evaluation.tasks) <= names
