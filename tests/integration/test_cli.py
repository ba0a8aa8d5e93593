"""`spin-bench` as a user runs it, on this module's copy of the smoke run: where Hydra's own files and the runs'
results sit in MULTIRUN and RUN mode, the study report, the worked method plug-in of docs/architecture.md, and
the parallel launchers (joblib, submitit) and the Optuna sweeper keeping runs apart while sharing stages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from spin_bench.analysis.load import load_results
from spin_bench.analysis.stats import score_table
from spin_bench.results import final_score
from spin_bench.stages import read_json, read_jsonl
from tests.conftest import CHECKOUT, run_cli, spin_bench
from tests.wandb_file import config_and_history, records

SMOKE = "experiment=smoke"


def stages(root: Path, kind: str) -> set[Path]:
    """The completed stages of a kind (`train/base` for the base models, trained by the training stage)."""
    folder, _, label = kind.partition("/")
    return set((root / ".cache" / folder).glob(f"{label}*/_COMPLETE.json"))


def test_a_multirun_keeps_runs_apart_and_builds_a_shared_stage_once(smoke):
    """`spin-bench method=spin method.beta=0.2,0.3`, the two jobs at once (joblib launcher, 2 processes): two runs
    named by beta, each with its results and W&B run, Hydra's files under runs/<study>/multirun/<n>-<method>/,
    the study's report and table at the end. Both need the same new base model: one job builds it under the
    stage lock, the other waits and reuses it."""
    bases = stages(smoke.root, "train/base")
    out = run_cli(smoke.root, SMOKE, "study=cli", "method=spin", "method.beta=0.2,0.3", "method.iterations=1",
                  "model.base_sft.max_steps=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")  # fmt: skip
    study = smoke.root / "runs" / "cli"
    runs = sorted(p.parent.name for p in study.glob("*/results.jsonl"))
    assert runs == [f"spin-beta={beta}-iterations=1-max_steps=2-seed0" for beta in (0.2, 0.3)]
    jobs = sorted(p.parent.parent.name for p in study.glob("multirun/*/.hydra/config.yaml"))
    assert jobs == ["0-spin", "1-spin"] and (study / "multirun" / "multirun.yaml").is_file()
    assert not list(study.glob("spin-*/.hydra"))
    (new_base,) = stages(smoke.root, "train/base") - bases
    logs = [p.read_text() for p in (study / "multirun").glob("*/*.log")]
    assert len(logs) == 2 and sum("training base from" in log for log in logs) == 1
    for name in runs:
        beta = float(re.search(r"beta=([0-9.]+)-", name).group(1))
        axes = {"method.beta": beta, "method.iterations": 1, "model.base_sft.max_steps": 2}
        assert read_json(study / name / "run_info.json")["axes"] == axes
        (run_file,) = (study / name).glob("wandb/offline-run-*/run-*.wandb")
        config, history = config_and_history(run_file)
        assert config["method"]["beta"] == beta and [h["iteration"] for h in history if "eval/average" in h] == [0, 1]
        (run,) = [r.run for r in records(run_file) if r.WhichOneof("record_type") == "run"]
        assert (run.run_group, run.job_type, run.display_name) == ("cli", "spin", f"cli/{name}")
        assert {f"beta={beta}", "iterations=1"} <= set(run.tags)
    assert {read_jsonl(study / r / "results.jsonl")[0]["checkpoint"] for r in runs} == {str(new_base.parent / "model")}
    table = score_table(load_results(study)).round(2).to_string()
    assert f"=== study cli: scores in % (iteration 0 = the base model) ===\n{table}" in out.stdout
    assert (study / "report.md").read_text().startswith("# cli: scores in %") and (study / "scores.png").is_file()


def test_the_worked_plugin_runs_in_run_mode_and_keeps_hydras_files_in_its_run_directory(smoke, tmp_path):
    """The method plug-in of docs/architecture.md, read from the page, outside the package: one module, one
    YAML. In RUN mode (how `wandb agent` runs jobs) Hydra's files go to the run directory, named by its axes."""
    page = (CHECKOUT / "docs" / "architecture.md").read_text()
    examples = re.findall(r"<!-- plugin-example: (\S+) -->\n```\w+\n(.*?)```", page, re.S)
    assert [name for name, _ in examples] == ["my_arms/self_sft.py", "my_conf/method/self_sft.yaml"]
    for name, text in examples:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"
    args = (SMOKE, "study=plugin", "hydra.mode=RUN", searchpath, "method=self_sft", "method.iterations=1")
    out = spin_bench(smoke.root, *args, env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = smoke.root / "runs" / "plugin" / "self_sft-iterations=1-seed0"
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "results.jsonl").is_file()
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["method"]["kind"] == "my_arms.self_sft"
    assert not (smoke.root / "runs" / "plugin" / "multirun").exists()
    (_, diagnostics) = read_jsonl(run_dir / "diagnostics.jsonl")  # the base model's row, then iteration 1
    assert diagnostics["rows"] == 24 and diagnostics["train/steps"] == 3  # SPIN's budget: ceil(24 / 8)
    assert any(p.name.startswith("self_sft-") for p in (smoke.root / ".cache" / "train").iterdir())
    bad = spin_bench(smoke.root, *args, "method.heldout=-1", env={"PYTHONPATH": str(tmp_path)})
    assert bad.returncode == 2 and bad.stderr.startswith("spin-bench: error: method.heldout=-1: ")


def test_the_submitit_launcher_runs_each_job_in_its_own_process(smoke):
    """`hydra/launcher=submitit_local`: the machinery of the SLURM launcher, as local processes."""
    run_cli(smoke.root, SMOKE, "study=submitit", "method=sft,dpo", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10")  # fmt: skip
    study = smoke.root / "runs" / "submitit"
    assert sorted(p.parent.name for p in study.glob("*/results.jsonl")) == ["dpo-seed0", "sft-seed0"]
    assert list((study / "multirun").glob("**/.submitit/*/*_result.pkl"))  # submitit ran (and pickled) each job
    for method in ("sft", "dpo"):  # the smoke run's numbers: every stage reused
        scores = [read_jsonl(d / f"{method}-seed0" / "results.jsonl") for d in (study, smoke.root / "runs" / "smoke")]
        assert [[(r["iteration"], r["task"], r["metric"], r["value"]) for r in rows] for rows in scores] == [
            [(r["iteration"], r["task"], r["metric"], r["value"]) for r in scores[1]]
        ] * 2


def test_the_optuna_sweeper_gets_each_runs_score_and_keeps_the_best(smoke):
    """Two trials of 0 iterations (the base model's cached score: this checks the sweeper's wiring, not a search)."""
    run_cli(smoke.root, SMOKE, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "method.iterations=0")
    study = smoke.root / "runs" / "arithmetic-optuna"
    headline = read_json(next(study.glob("*/run_info.json")))["config"]["evaluation"]["headline"]
    scores = {p.parent.name: final_score(read_jsonl(p), "average", headline) for p in study.glob("*/results.jsonl")}
    assert len(scores) == 2 and all(name.startswith("spin-beta=") for name in scores), scores
    best = yaml.safe_load((study / "multirun" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(scores.values()))
    assert set(best["best_params"]) == {"method.beta", "method.recipe.learning_rate"}
