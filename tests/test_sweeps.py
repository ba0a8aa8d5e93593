"""Sweeps: the ablation overlays and W&B sweep files compose into distinct runs; command-line multiruns, the
submitit and joblib launchers and the Optuna sweeper run real (shrunk) jobs that keep their runs apart and share
what they have in common."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from spin_bench.cache import read_json, read_jsonl
from spin_bench.runs import axes_from_overrides
from spin_bench.study import final_score
from tests.conftest import CONF_DIR, make_cfg, run_cli
from tests.wandb_file import config_and_history, records

ROOT = CONF_DIR.parent
ABLATIONS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if p.stem not in ("smoke", "paper"))
WANDB_SWEEPS = sorted((ROOT / "sweeps" / "wandb").glob("*.yaml"))


def expand(params: dict) -> list[list[str]]:
    """The jobs of a basic-sweeper `params` block, as Hydra expands them: one override list per combination."""
    parser = OverridesParser.create()
    choices = []
    for key, value in params.items():
        (override,) = parser.parse_overrides([f"{key}={value}"])
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(value)]
        choices.append([f"{key}={v}" for v in values])
    return [list(job) for job in itertools.product(*choices)]


def job_cfg(root: Path, scale: list[str], job: list[str]):
    """A job's config as the CLI makes it: composed, with the job's overrides as ablation axes."""
    return make_cfg(root, *scale, *job, f"axes=[{','.join(axes_from_overrides(job))}]")


@pytest.mark.parametrize("scale", ["embedded", "paper"])
@pytest.mark.parametrize("ablation", ABLATIONS)
def test_each_ablation_gives_each_job_its_own_run_directory(tmp_path, ablation, scale):
    experiment = f"experiment={ablation}" if scale == "embedded" else f"experiment=[paper,{ablation}]"
    params = make_cfg(tmp_path, experiment)
    sweep = yaml.safe_load((CONF_DIR / "experiment" / f"{ablation}.yaml").read_text())["hydra"]["sweeper"]["params"]
    jobs = expand(sweep)
    assert len(jobs) >= 3, jobs
    run_dirs = {job_cfg(tmp_path, [experiment], job).paths.run_dir for job in jobs}
    assert len(run_dirs) == len(jobs)  # no two jobs share results.jsonl or a W&B run
    assert all(Path(d).parent.name == params.study for d in run_dirs)
    assert params.study.startswith("arithmetic-" if scale == "embedded" else "ultrachat-")


def test_iteration_sweep_reaches_five_iterations(tmp_path):
    sweep = yaml.safe_load((CONF_DIR / "experiment" / "ablate_iterations.yaml").read_text())["hydra"]["sweeper"]
    assert max(int(v) for v in str(sweep["params"]["method.iterations"]).split(",")) >= 5


def test_the_wandb_sweep_files_are_there():
    assert [p.stem for p in WANDB_SWEEPS] == ["bayes", "beta", "reference"]  # parametrizes the test below


@pytest.mark.parametrize("path", WANDB_SWEEPS, ids=lambda p: p.stem)
def test_wandb_sweeps_drive_the_hydra_app_with_valid_overrides(tmp_path, path):
    """What `wandb agent` runs: the command with `${args_no_hyphens}` replaced by `key=value` for each parameter.
    Every parameter must be a key of the config (compose fails otherwise), and grid runs must not collide."""
    sweep = yaml.safe_load(path.read_text())
    command = sweep["command"]
    assert command[:3] == ["${env}", "${interpreter}", "${program}"] and command[-1] == "${args_no_hyphens}"
    assert "hydra.mode=RUN" in command and (ROOT / sweep["program"]).is_file()
    fixed = [c for c in command[3:-1] if c != "hydra.mode=RUN"]
    grid = [[(k, v) for v in (p["values"] if "values" in p else [p["min"], p["max"]])]
            for k, p in sweep["parameters"].items()]  # fmt: skip
    run_dirs = set()
    for combination in itertools.product(*grid):
        job = [*fixed, *(f"{k}={v}" for k, v in combination)]
        cfg = job_cfg(tmp_path, [], job)
        assert [OmegaConf.select(cfg, k) for k, _ in combination] == pytest.approx([v for _, v in combination])
        run_dirs.add(cfg.paths.run_dir)
    assert len(run_dirs) == len(list(itertools.product(*grid)))
    assert sweep["metric"]["name"] == "eval/average"  # logged by tracking.Tracker at every iteration


def test_command_line_sweep_keeps_runs_and_wandb_runs_apart(smoke):
    """`spin-bench method=spin method.beta=0.2,0.3`: two runs, two directories, two W&B runs tagged by beta,
    each finished; both start from one base model, whose generations are made once."""
    _, _, root = smoke
    generations = set((root / ".cache" / "generations").glob("*/_COMPLETE.json"))
    run_cli(root, "experiment=smoke", "study=cli_beta", "method=spin", "method.beta=0.2,0.3")
    study = root / "runs" / "cli_beta"
    runs = {p.parent.name: p.parent for p in study.glob("*/results.jsonl")}
    assert sorted(runs) == ["spin-beta=0.2-seed0", "spin-beta=0.3-seed0"]
    for name, run_dir in runs.items():
        beta = float(name.split("=")[1].split("-")[0])
        assert read_json(run_dir / "run_info.json")["axes"] == {"method.beta": beta}
        (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
        config, history = config_and_history(run_file)
        assert config["method"]["beta"] == beta and config["run_info"]["axes"] == {"method.beta": beta}
        assert [h["iteration"] for h in history if "eval/average" in h] == [0, 1, 2]
        run_records = records(run_file)
        (run,) = [r.run for r in run_records if r.WhichOneof("record_type") == "run"]
        # a dashboard groups by study, splits by method, and tells the runs apart by name or by tag
        assert (run.run_group, run.job_type, run.display_name) == ("cli_beta", "spin", f"cli_beta/{name}")
        assert f"beta={beta}" in run.tags
        assert [r.exit.exit_code for r in run_records if r.WhichOneof("record_type") == "exit"] == [0]
    base = {read_jsonl(run_dir / "results.jsonl")[0]["checkpoint"] for run_dir in runs.values()}
    assert len(base) == 1
    # iteration 0's answers come from the shared base model: one generation stage for both betas (iteration 1's
    # answers differ per beta; the smoke fixture had made the base model's already, and no other test uses these
    # betas on the smoke world, whatever order the tests run in)
    new = set((root / ".cache" / "generations").glob("*/_COMPLETE.json")) - generations
    assert len(new) == 2


def test_submitit_local_launcher_runs_the_jobs(smoke):
    """`hydra/launcher=submitit_local`: each job in its own process through submitit, as on SLURM."""
    _, _, root = smoke
    run_cli(root, "experiment=smoke", "study=submitit", "method=sft,dpo", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10")  # fmt: skip
    study = root / "runs" / "submitit"
    assert sorted(p.parent.name for p in study.glob("*/results.jsonl")) == ["dpo-seed0", "sft-seed0"]
    assert list((study / "multirun").glob("**/.submitit/*/*_result.pkl"))  # submitit ran (and pickled) each job
    for method in ("sft", "dpo"):
        assert {r["iteration"] for r in read_jsonl(study / f"{method}-seed0" / "results.jsonl")} == {0, 1, 2}


def test_parallel_jobs_build_a_shared_stage_once(smoke):
    """Two jobs at the same time (joblib launcher, 2 processes) that need the same new base model: one builds it
    under the stage lock, the other waits and reuses it."""
    _, _, root = smoke
    bases = set((root / ".cache" / "base").glob("*/_COMPLETE.json"))
    sweep = ("method=spin", "method.iterations=1", "method.beta=0.05,0.5")
    launcher = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    run_cli(root, "experiment=smoke", "study=parallel", "model.base_sft.epochs=2", *sweep, *launcher)
    (new_base,) = set((root / ".cache" / "base").glob("*/_COMPLETE.json")) - bases
    checkpoints = {read_jsonl(p)[0]["checkpoint"] for p in (root / "runs" / "parallel").glob("*/results.jsonl")}
    assert checkpoints == {str(new_base.parent / "model")}
    logs = [p.read_text() for p in (root / "runs" / "parallel" / "multirun").glob("*/*.log")]
    assert len(logs) == 2 and sum("base stage: training" in log for log in logs) == 1


def test_optuna_sweeper_returns_each_runs_score_and_keeps_the_best(smoke):
    _, _, root = smoke
    run_cli(root, "experiment=smoke", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "method.iterations=1")
    study = root / "runs" / "arithmetic-optuna"
    scores = {p.parent.name: final_score(read_jsonl(p), "average") for p in study.glob("*/results.jsonl")}
    assert len(scores) == 2 and all(name.startswith("spin-beta=") for name in scores), scores
    best = yaml.safe_load((study / "multirun" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(scores.values()))
    assert set(best["best_params"]) == {"method.beta", "method.recipe.learning_rate"}
