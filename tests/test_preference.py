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


def train(setup, tmp_path, *overrides, base_model=None, alpha=0.0, **recipe_overrides):
    cfg, checkpoint, pairs = setup
    train_cfg = make_cfg(tmp_path, "experiment=smoke", "train.logging_steps=1", *overrides).train
    model, tokenizer = AutoModelForCausalLM.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    stats = preference(
        model, tokenizer, dataset(pairs), train_cfg, recipe(**recipe_overrides), tmp_path / "out", 0,
        base_model=base_model, alpha=alpha,
    )  # fmt: skip
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


def test_mixture_reference_mixes_base_and_starting_model(setup, tmp_path):
    """alpha-SPIN: the reference log-prob of every pair is alpha * log p_base + (1 - alpha) * log p_start."""
    _, checkpoint, pairs = setup
    plain, tokenizer = train(setup, tmp_path / "plain")
    base = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():  # a base model that differs from the starting model
        for parameter in base.parameters():
            parameter.mul_(0.8)
    mixed, _ = train(setup, tmp_path / "mixed", base_model=base, alpha=0.25)
    for side in ("chosen", "rejected"):
        for i, p in enumerate(pairs):
            base_logp = response_logp(base, tokenizer, p["prompt"], p[side])
            start_logp = plain["reference_logps"][side][i]
            assert abs(base_logp - start_logp) > 0.5  # the two references really differ
            expected = 0.25 * base_logp + 0.75 * start_logp
            assert mixed["reference_logps"][side][i] == pytest.approx(expected, abs=2e-3)


def test_heldout_pairs_are_scored_after_training(setup, tmp_path):
    _, _, pairs = setup
    cfg = make_cfg(tmp_path, "experiment=smoke").train
    checkpoint = setup[1]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    stats = preference(model, tokenizer, dataset(pairs[:6]), cfg, recipe(max_steps=2, learning_rate=1e-2),
                       tmp_path / "out", 0, heldout=dataset(pairs[6:]))  # fmt: skip
    held = stats["heldout"]
    assert 0.0 <= held["rewards/accuracies"] <= 1.0
    # margins are rewards of chosen minus rewards of rejected, averaged over the held-out pairs
    assert held["rewards/margins"] == pytest.approx(held["rewards/chosen"] - held["rewards/rejected"], abs=1e-5)
    assert held["rewards/chosen"] != 0.0  # the trained policy moved away from the reference on unseen pairs
