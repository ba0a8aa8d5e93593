"""Every option of every config group composes, resolves, and says what its name promises."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, make_cfg

GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF_DIR.iterdir())
    if group.is_dir() and group.name != "hydra"
    for option in sorted(group.glob("*.yaml"))
    if not option.stem.startswith("_")  # shared building blocks (method/_iterations), not choices
]


def test_every_group_has_options():
    groups = {g for g, _ in GROUP_OPTIONS}
    assert {"model", "data", "method", "train", "eval", "logger", "paths", "experiment"} <= groups


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_option_composes_and_resolves(tmp_path, group, option):
    cfg = make_cfg(tmp_path, f"{group}={option}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if group not in ("experiment", "hparams_search"):  # overlays (`# @package _global_`), not sections
        assert group in resolved
    assert resolved["paths"]["run_dir"].startswith(str(tmp_path))


@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero2", "zero3", "zero3_offload"])
def test_deepspeed_presets_set_their_stage(tmp_path, preset):
    ds = make_cfg(tmp_path, f"train={preset}").train.deepspeed
    assert ds.zero_optimization.stage == int(preset[4])
    offloaded = "offload_optimizer" in ds.zero_optimization and "offload_param" in ds.zero_optimization
    assert offloaded == preset.endswith("offload")
    assert ds.train_micro_batch_size_per_gpu == "auto"  # filled in by HF Trainer, stated once


def test_paper_experiment_selects_paper_scale(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=paper")
    assert cfg.model.name_or_path == "alignment-handbook/zephyr-7b-sft-full"
    assert cfg.data.spin_prompts.path == "HuggingFaceH4/ultrachat_200k"
    assert cfg.train.deepspeed.zero_optimization.stage == 3
    assert dict(cfg.eval.tasks) == {
        "arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 5,
    }  # fmt: skip
    assert cfg.study == "paper"  # experiment overlays override top-level keys


def test_trust_remote_code_is_off_everywhere(tmp_path):
    for option in ("tiny", "zephyr_7b_sft"):
        assert make_cfg(tmp_path, f"model={option}").model.trust_remote_code is False


def test_cli_prints_composed_config(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "spin_bench.cli", "--cfg", "job", "train=zero3", f"paths.root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    printed = OmegaConf.create(out.stdout)
    assert printed.train.deepspeed.zero_optimization.stage == 3
    assert printed.model.name == "tiny-llama"
