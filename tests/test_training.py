"""Training really trains, through DeepSpeed: parameters change, every ZeRO preset runs, bad budgets fail early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from spin_bench.training import sft, trainer_arguments
from spin_bench.world.base import conversation
from spin_bench.world.model import build_tiny_llama
from tests.conftest import make_cfg


def test_base_stage_ran_deepspeed_and_changed_every_parameter(smoke):
    cfg, rows, _ = smoke
    checkpoint = Path(rows[0]["checkpoint"])
    stats = json.loads((checkpoint.parent / "train_stats.json").read_text())
    assert stats["deepspeed"] is True and stats["zero_stage"] == cfg.train.deepspeed.zero_optimization.stage == 2
    trained = AutoModelForCausalLM.from_pretrained(checkpoint)
    initial = build_tiny_llama(dict(cfg.model.architecture), AutoTokenizer.from_pretrained(checkpoint), cfg.seed)
    for (name, before), after in zip(initial.named_parameters(), trained.parameters(), strict=True):
        assert not torch.equal(before, after), f"{name} did not change"


def test_bad_precision_and_batch_are_named(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=smoke", "train.precision=fp8")
    with pytest.raises(ValueError, match="train.precision must be one of"):
        trainer_arguments(cfg.train, cfg.model.base_sft, tmp_path, 0)
    cfg = make_cfg(tmp_path, "experiment=smoke", "train.gradient_accumulation_steps=3")
    with pytest.raises(ValueError, match="not divisible by train.gradient_accumulation_steps"):
        sft(None, None, None, cfg.train, cfg.model.base_sft, tmp_path, 0)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero2", "zero3", "zero3_offload"])
def test_every_zero_preset_trains(smoke, tmp_path, preset):
    _, rows, _ = smoke
    checkpoint = rows[0]["checkpoint"]
    cfg = make_cfg(tmp_path, "experiment=smoke", f"train={preset}", "model.base_sft.max_steps=3")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    before = [p.detach().clone() for p in model.parameters()]
    data = Dataset.from_list([conversation(f"Mia has {i} apples.", f"#### {i}") for i in range(64)])
    stats = sft(model, tokenizer, data, cfg.train, cfg.model.base_sft, tmp_path / "out", 0)
    assert stats["deepspeed"] and stats["zero_stage"] == int(preset[4]) and stats["steps"] == 3
    assert torch.isfinite(torch.tensor(stats["train_loss"]))
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # ZeRO-3 shards gathered on save
    assert [p.shape for p in trained.parameters()] == [b.shape for b in before]
    assert all(torch.isfinite(p).all() for p in trained.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, trained.parameters(), strict=True))
