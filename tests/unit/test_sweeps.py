"""Sweeps, composed as the CLI composes them before launching (spin_bench/cli/preflight.py): every ablation
overlay and W&B sweep file gives each of its jobs a checked config and a run directory of its own."""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from spin_bench.cli.preflight import preflight

CHECKOUT = Path(__file__).resolve().parents[2]
EXPERIMENTS = resources.files("spin_bench.conf") / "experiment"
ABLATIONS = sorted(p.name.removesuffix(".yaml") for p in EXPERIMENTS.iterdir()
                   if p.name.endswith(".yaml") and p.name not in ("smoke.yaml", "paper.yaml"))  # fmt: skip
SEEDS = (0, 1, 2)  # conf/hydra/default.yaml
WANDB_SWEEPS = sorted((CHECKOUT / "sweeps" / "wandb").glob("*.yaml"))


# Every overlay at the embedded scale; with the paper overlay, those that change T (its recipe schedules by
# iteration, and a run of fewer iterations must still compose).
SCALES = [(a, "embedded") for a in ABLATIONS] + [(a, "paper") for a in ("ablate_iterations", "ablate_history")]


@pytest.mark.parametrize(("ablation", "scale"), SCALES)
def test_each_ablation_gives_each_job_its_own_checked_run(tmp_path, monkeypatch, ablation, scale):
    monkeypatch.setenv("SPIN_BENCH_ROOT", str(tmp_path))
    experiment = f"experiment={ablation}" if scale == "embedded" else f"experiment=[paper,{ablation}]"
    grid = yaml.safe_load(EXPERIMENTS.joinpath(f"{ablation}.yaml").read_text())["hydra"]["sweeper"]["params"]
    jobs = preflight([experiment])
    expected = (
        len(SEEDS) if "seed" not in grid else 1
    )  # every sweep runs the default study's seeds unless it sets its own
    for value in grid.values():
        expected *= len(str(value).split(",")) if isinstance(value, str) else 1
    assert len(jobs) == expected >= 3
    assert {job.seed for job in jobs} == ({0} if "seed" in grid else set(SEEDS))
    assert len({job.paths.run_dir for job in jobs}) == len(jobs)  # no two jobs share results.jsonl or a W&B run
    assert len({job.paths.study_dir for job in jobs}) == 1
    assert jobs[0].study.startswith("arithmetic-" if scale == "embedded" else "ultrachat-")
    swept = [key for key in grid if key not in ("method", "seed")]
    for job in jobs:
        assert set(job.axes) == set(swept)  # the swept keys name the runs
        resolved = OmegaConf.create(job.resolved)
        # a config group's axis (model=tiny_l) is its option's name
        assert all(OmegaConf.select(resolved, k if k != "model" else "model.name") == v for k, v in job.axes.items())


@pytest.mark.parametrize("path", WANDB_SWEEPS, ids=lambda p: p.stem)
def test_wandb_sweeps_drive_the_hydra_app_with_valid_overrides(tmp_path, monkeypatch, path):
    """What `wandb agent` runs: the command with `${args_no_hyphens}` replaced by `key=value` for each parameter,
    in RUN mode: one checked job each, and grid runs that never collide."""
    monkeypatch.setenv("SPIN_BENCH_ROOT", str(tmp_path))
    sweep = yaml.safe_load(path.read_text())
    command = sweep["command"]
    assert command[:3] == ["${env}", "${interpreter}", "${program}"] and command[-1] == "${args_no_hyphens}"
    assert "hydra.mode=RUN" in command and (CHECKOUT / sweep["program"]).is_file()
    assert sweep["metric"]["name"] == "eval/average"  # logged by spin_bench.tracking at every iteration
    # each parameter's values (a distribution's ends), the first three of a long list: enough to tell runs apart
    grid = [[(k, v) for v in (p["values"][:3] if "values" in p else [p["min"], p["max"]])]
            for k, p in sweep["parameters"].items()]  # fmt: skip
    run_dirs = set()
    for combination in itertools.product(*grid):
        (job,) = preflight([*command[3:-1], *(f"{k}={v}" for k, v in combination)])
        resolved = OmegaConf.create(job.resolved)
        assert [OmegaConf.select(resolved, k) for k, _ in combination] == pytest.approx([v for _, v in combination])
        run_dirs.add(job.paths.run_dir)
    assert len(run_dirs) == len(list(itertools.product(*grid)))


def test_the_default_launcher_starts_each_base_model_first_and_answers_in_the_sweepers_order(monkeypatch):
    from hydra_plugins.hydra_joblib_launcher import _core

    from hydra_plugins.spin_bench_launcher.local_launcher import LocalLauncher
    from spin_bench.cli.launcher import busy_order

    jobs = [[f"method={m}", f"seed={s}"] for m in ("spin", "sft", "dpo", "epochs") for s in (0, 1, 2)]
    order = busy_order(jobs)
    assert sorted(order) == list(range(12))
    assert [" ".join(jobs[i]) for i in order][:7] == ["method=spin seed=0", "method=spin seed=1", "method=spin seed=2",
                                                      "method=sft seed=0", "method=dpo seed=0", "method=epochs seed=0",
                                                      "method=sft seed=1"]  # fmt: skip
    # method knobs share a base model; another model or world is another one
    assert busy_order([["method.beta=0.1", "seed=0"], ["method.beta=0.5", "seed=0"], ["model=tiny_l", "seed=0"],
                       ["+data.seed=3", "seed=0"]]) == [0, 2, 3, 1]  # fmt: skip
    launched: list[list[str]] = []

    def launch(launcher, job_overrides, initial_job_idx):
        launched.extend(job_overrides)
        return [" ".join(o) for o in job_overrides]

    monkeypatch.setattr(_core, "launch", launch)
    assert LocalLauncher().launch(jobs, 0) == [" ".join(o) for o in jobs]  # the sweeper's order
    assert launched == [jobs[i] for i in order]
