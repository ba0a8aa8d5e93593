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
