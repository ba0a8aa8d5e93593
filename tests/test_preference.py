"""The SPIN / DPO loss through TRL's DPOTrainer: exact first-step losses, a step that widens the real-vs-generated
margin, and reference log-probs that are the starting model's own."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from spin_bench.training import preference
from spin_bench.world import build_world
from tests.conftest import make_cfg


def recipe(**overrides):
    spec = dict(learning_rate=1e-3, epochs=1, max_steps=1, batch_size=8, lr_scheduler="constant", warmup_ratio=0.0,
                weight_decay=0.0, optimizer="adamw_torch", max_grad_norm=1.0, max_length=256, beta=0.1,
                loss_type="sigmoid")  # fmt: skip
    return OmegaConf.create(spec | overrides)


@pytest.fixture(scope="module")
def setup(smoke):
    cfg, rows, root = smoke
    pairs = build_world(cfg.data, root / ".cache").rows("dpo_pairs")[:8]
    return cfg, rows[0]["checkpoint"], pairs


def dataset(pairs):
    def turn(role, text):
        return [{"role": role, "content": text}]

    return Dataset.from_list(
        [{"prompt": turn("user", p["prompt"]), "chosen": turn("assistant", p["chosen"]),
          "rejected": turn("assistant", p["rejected"])} for p in pairs]
    )  # fmt: skip


def response_logp(model, tokenizer, prompt: str, response: str) -> float:
    """log p(response | prompt), summed over the response's tokens (eos included): computed independently of TRL."""
    user = [{"role": "user", "content": prompt}]
    prompt_ids = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": response}], tokenize=False)
    prompt_ids, full_ids = tokenizer(prompt_ids)["input_ids"], tokenizer(full)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([full_ids])).logits[0, :-1].log_softmax(-1)
    targets = torch.tensor(full_ids[1:])
    return logits[torch.arange(len(targets)), targets][len(prompt_ids) - 1 :].sum().item()


def train(setup, tmp_path, *overrides, **recipe_overrides):
    cfg, checkpoint, pairs = setup
    train_cfg = make_cfg(tmp_path, "experiment=smoke", "train.logging_steps=1", *overrides).train
    model, tokenizer = AutoModelForCausalLM.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    stats = preference(model, tokenizer, dataset(pairs), train_cfg, recipe(**recipe_overrides), tmp_path / "out", 0)
    return stats, tokenizer


@pytest.mark.parametrize(("loss_type", "expected"), [("sigmoid", math.log(2)), ("hinge", 1.0)])
def test_first_step_loss_when_policy_equals_reference(setup, tmp_path, loss_type, expected):
    stats, _ = train(setup, tmp_path, loss_type=loss_type)
    assert stats["log_history"][0]["loss"] == pytest.approx(expected, abs=1e-4)
    assert stats["deepspeed"] is True


def test_reference_logps_are_the_starting_models(setup, tmp_path):
    _, checkpoint, pairs = setup
    stats, tokenizer = train(setup, tmp_path)
    start = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    for i, p in enumerate(pairs):
        assert stats["reference_logps"]["chosen"][i] == pytest.approx(
            response_logp(start, tokenizer, p["prompt"], p["chosen"]), abs=1e-3
        )
        assert stats["reference_logps"]["rejected"][i] == pytest.approx(
            response_logp(start, tokenizer, p["prompt"], p["rejected"]), abs=1e-3
        )


def test_one_step_widens_the_real_vs_generated_margin(setup, tmp_path):
    _, checkpoint, pairs = setup
    _, tokenizer = train(setup, tmp_path)
    before = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()

    def margin(model):
        return sum(response_logp(model, tokenizer, p["prompt"], p["chosen"])
                   - response_logp(model, tokenizer, p["prompt"], p["rejected"]) for p in pairs)  # fmt: skip

    assert margin(after) > margin(before)
    assert all(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))
