"""A shrunk end-to-end study (the SPIN arm, 2 iterations): results contract, W&B, resume without recomputation,
the lm_eval CLI agrees with the harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from spin_bench.evaluation import cli_command, task_dir
from spin_bench.study import run
from spin_bench.tracking import RESULT_KEYS
from spin_bench.world import build_world
from tests.conftest import make_cfg, subprocess_env
from tests.wandb_file import config_and_history


def test_smoke_study_writes_contract_rows(smoke):
    cfg, rows, root = smoke
    stored = [json.loads(line) for line in (Path(cfg.paths.run_dir) / "results.jsonl").read_text().splitlines()]
    assert stored == sorted(rows, key=lambda r: (r["iteration"], r["task"], r["metric"]))
    assert sorted({r["iteration"] for r in stored}) == [0, 1, 2]
    assert {(r["task"], r["metric"].split(",")[0]) for r in stored} == {
        ("arith_gen", "exact_match"), ("arith_gen_hard", "exact_match"), ("arith_mc", "acc"), ("arith_mc", "acc_norm"),
    }  # fmt: skip
    for r in stored:
        assert set(r) == set(RESULT_KEYS)
        assert (r["study"], r["method"], r["seed"]) == ("smoke", "spin", 0)
        assert 0.0 <= r["value"] <= 1.0
        assert Path(r["checkpoint"]).is_absolute() and (Path(r["checkpoint"]) / "model.safetensors").is_file()


def test_base_checkpoint_is_a_standard_hf_directory(smoke):
    _, rows, _ = smoke
    checkpoint = Path(rows[0]["checkpoint"])
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert model.config.model_type == "llama"
    assert (checkpoint / "tokenizer.json").is_file()
    assert "### Response:" in (checkpoint / "chat_template.jinja").read_text()
    stats = json.loads((checkpoint.parent / "train_stats.json").read_text())
    assert stats["steps"] > 0 and stats["train_loss"] > 0


def test_run_records_versions_and_wandb_config(smoke):
    cfg, _, _ = smoke
    run_dir = Path(cfg.paths.run_dir)
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["versions"]["trl"].startswith("1.16") and info["versions"]["lm_eval"].startswith("0.4.13")
    # the fixture's run: the first of this run directory's offline runs (later tests rerun the study)
    run_file = min(run_dir.glob("wandb/offline-run-*/run-*.wandb"), key=lambda p: p.stat().st_mtime_ns)
    config, history = config_and_history(run_file)
    assert config["study"] == "smoke" and config["run_info"]["versions"] == info["versions"]
    assert history[0]["iteration"] == 0 and "eval/arith_gen/exact_match,strict-match" in history[0]
    iterations = [h for h in history if "selfplay/heldout/rewards/accuracies" in h]
    assert [h["iteration"] for h in iterations] == [1, 2]
    assert all("eval/arith_mc/acc,none" in h and h["selfplay/pairs"] > 0 for h in iterations)
    steps = [h["train_step"] for h in history if "train/loss" in h]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one step axis across iterations
    tables = [h for h in history if h.get("selfplay/samples/_type") == "table-file"]  # real vs generated answers
    assert [(h["iteration"], h["selfplay/samples/nrows"]) for h in tables] == [(1, 16), (2, 16)]
    table = json.loads((run_file.parent / "files" / tables[0]["selfplay/samples/path"]).read_text())
    assert table["columns"] == ["iteration", "id", "prompt", "real", "generated"] and len(table["data"]) == 16


def test_rerun_resumes_without_recomputing_or_duplicating(smoke):
    cfg, rows, root = smoke
    stages = sorted((root / ".cache").glob("*/*/_COMPLETE.json"))
    stamps = [p.stat().st_mtime_ns for p in stages]
    again = run(cfg)
    assert again == rows
    assert sorted((root / ".cache").glob("*/*/_COMPLETE.json")) == stages
    assert [p.stat().st_mtime_ns for p in stages] == stamps  # world, base, generations, training, evals: reused
    assert {p.parent.parent.name for p in stages} >= {"world", "base", "generations", "train", "eval"}
    assert len((Path(cfg.paths.run_dir) / "results.jsonl").read_text().splitlines()) == len(rows)


def test_lm_eval_cli_reproduces_the_harness(smoke, tmp_path):
    """The command the study prints, run as a user would, gives the numbers in results.jsonl."""
    cfg, rows, root = smoke
    rows = [r for r in rows if r["iteration"] == 2]  # the last iterate's numbers
    world = build_world(cfg.data, root / ".cache")
    command = cli_command(rows[0]["checkpoint"], cfg.eval, cfg.model, task_dir(cfg.eval, world, root / ".cache"))
    assert command[0] == "lm_eval" and "--include_path" in command
    command = [
        str(Path(sys.executable).parent / "lm_eval"),
        *command[1:],
        "--device",
        "cpu",
        "--output_path",
        str(tmp_path),
    ]
    env = subprocess_env(CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (result_file,) = tmp_path.glob("**/results_*.json")
    cli = json.loads(result_file.read_text())["results"]
    for r in rows:
        assert cli[r["task"]][r["metric"]] == pytest.approx(r["value"], abs=1e-9), (r["task"], r["metric"])


def test_bad_config_fails_before_any_stage(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=smoke", "+eval.tasks.not_a_task=0")
    with pytest.raises(ValueError, match=r"unknown embedded tasks \['not_a_task'\]"):
        run(cfg)
    assert not (tmp_path / ".cache").exists()
    cfg = make_cfg(tmp_path, "data=ultrachat")
    with pytest.raises(ValueError, match="data.source=embedded"):
        run(cfg)
    cfg = make_cfg(tmp_path, "experiment=paper", f"model.name_or_path={tmp_path / 'no_such_model'}")
    with pytest.raises(FileNotFoundError, match="no_such_model is not an HF model directory"):
        run(cfg)
    assert not (tmp_path / "runs").exists()  # nothing was started, nothing half-written
