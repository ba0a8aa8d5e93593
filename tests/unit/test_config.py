"""The config tree: every option of every group composes into a typed, checked run config; groups are the
stages' names; the CLI composes it from any directory; `--help` offers only real options."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import zipfile
from importlib import resources

import pytest
from omegaconf import OmegaConf

from spin_bench.data.config import HubData
from spin_bench.engine.config import OPTIMIZERS, SCHEDULERS
from spin_bench.methods.base import PreferenceConfig
from spin_bench.model.config import PretrainedModel
from tests.conftest import CHECKOUT, make_config, spin_bench

CONF = resources.files("spin_bench.conf")
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__"))
GROUP_OPTIONS = [(g, o.name.removesuffix(".yaml")) for g in GROUPS for o in sorted(CONF.joinpath(g).iterdir(), key=str)
                 if o.name.endswith(".yaml")]  # fmt: skip


def test_each_stage_group_names_the_package_or_module_it_configures():
    package = resources.files("spin_bench")
    stages = {g for g in GROUPS if g not in ("experiment", "hparams_search", "method")}
    for group in stages:
        assert package.joinpath(group).is_dir() or package.joinpath(f"{group}.py").is_file(), group
    assert package.joinpath("methods").is_dir()  # `method=spin` picks a module of methods/


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_option_composes_into_a_checked_run_config(tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "ultrachat":
        overrides += ["evaluation=open_llm_v1", "model=zephyr_7b_sft"]  # a hub world needs a hub model and suite
    if group == "experiment" and option == "paper":
        overrides += ["method=spin"]
    config = make_config(tmp_path, *overrides)
    assert config.paths.run_dir.is_relative_to(tmp_path)
    for section in ("data", "model", "engine", "method", "generation", "evaluation"):  # typed as composed
        assert getattr(config, section).name == config.resolved[section]["name"]


@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero2", "zero3", "zero3_offload"])
def test_deepspeed_presets_set_their_stage(tmp_path, preset):
    deepspeed = make_config(tmp_path, f"engine={preset}").engine.deepspeed
    assert deepspeed is not None and deepspeed["zero_optimization"]["stage"] == int(preset[4])
    offloaded = {"offload_optimizer", "offload_param"} <= set(deepspeed["zero_optimization"])
    assert offloaded == preset.endswith("offload")
    assert deepspeed["train_micro_batch_size_per_gpu"] == "auto"  # filled in by HF Trainer, stated once


def test_the_paper_overlay_selects_every_paper_scale_section(tmp_path):
    config = make_config(tmp_path, "experiment=paper", "method=spin", "+method.by_iteration.3.beta=5.0")
    assert isinstance(config.model, PretrainedModel) and config.model.name_or_path.endswith("zephyr-7b-sft-full")
    assert isinstance(config.data, HubData) and config.data.spin_prompts.path == "HuggingFaceH4/ultrachat_200k"
    assert config.engine.deepspeed and config.engine.deepspeed["zero_optimization"]["stage"] == 3
    assert config.evaluation.tasks == {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0,
                                       "winogrande": 5, "gsm8k": 5}  # fmt: skip
    assert config.study == "paper" and config.needs_hub()
    method = config.method
    assert isinstance(method, PreferenceConfig)
    schedule = [(method.at(t).recipe.learning_rate, method.at(t).beta) for t in range(4)]  # type: ignore[attr-defined]
    assert schedule == [(5e-7, 0.1), (5e-7, 0.1), (1e-7, 0.1), (1e-7, 5.0)]


def test_each_method_gets_its_own_config_class(tmp_path):
    spin, sft = make_config(tmp_path, "method=spin").method, make_config(tmp_path, "method=sft").method
    assert type(spin).__name__ == "SpinConfig" and type(sft).__name__ == "IterationConfig"
    assert not hasattr(sft, "beta")
    assert {f.name for f in dataclasses.fields(spin)} >= {"beta", "loss_type", "reference", "samples_logged"}


def test_the_recipe_names_are_hugging_face_trainers():
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}
    assert set(OPTIMIZERS) <= {o.value for o in OptimizerNames}


def test_cli_composes_the_config_from_another_directory(tmp_path):
    """`spin-bench --cfg job` needs no checkout: conf/ ships in the package."""
    out = spin_bench(tmp_path, "--cfg", "job", "engine=zero3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = OmegaConf.create(out.stdout)
    assert printed.engine.deepspeed.zero_optimization.stage == 3 and printed.model.name == "tiny-llama"
    assert not list(tmp_path.iterdir())  # printing a config writes nothing


def test_help_lists_the_groups_and_only_real_options(tmp_path):
    out = subprocess.run([sys.executable, "-m", "spin_bench.cli", "--help"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    groups = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line and "," in line)
    assert groups["method"] == "dpo, epochs, sft, spin, spin_dpop, spin_nll, sppo"
    assert groups["model"] == "tiny, tiny_l, tiny_xs, zephyr_7b_sft"
    assert groups["engine"] == "zero0, zero1, zero2, zero3, zero3_offload"
    assert {"data", "model", "evaluation", "generation", "tracking"} <= set(groups)


def test_a_plain_install_ships_the_config_tree_and_the_task_files(tmp_path):
    """`pip install .` (not editable) must carry spin_bench/conf and the embedded tasks: the wheel holds every
    file of both."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(CHECKOUT / "spin_bench", source / "spin_bench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(CHECKOUT / name, source / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                          str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("spin_bench-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = CHECKOUT / "spin_bench"
    data = [p for p in package.rglob("*") if p.suffix in (".yaml", ".csv") and "__pycache__" not in p.parts]
    assert len(data) > 30
    assert {str(p.relative_to(CHECKOUT)) for p in data} <= shipped
