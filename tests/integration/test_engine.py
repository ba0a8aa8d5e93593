"""The training engine on the smoke base model: DeepSpeed really drives the base stage and changes every
parameter; the SPIN / DPO loss through TRL's DPOTrainer has the exact first-step losses, reference log-probs that
are the starting model's own (or alpha-SPIN's mixture), a step that widens the real-vs-generated margin, and
held-out pairs scored after training; every ZeRO preset trains (slow)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl.trainer.utils import add_fused_lm_head

from spin_bench.data.world import build_world
from spin_bench.engine.config import Plateau, PreferenceLoss, Recipe
from spin_bench.engine.train import conversation, preference, preference_row, score_label_positions_only, sft
from spin_bench.model.llama import build_tiny_llama
from spin_bench.stages import read_json

STEP = Recipe(epochs=1, max_steps=1, batch_size=8, learning_rate=1e-3, lr_scheduler="constant", warmup_ratio=0.0,
              weight_decay=0.0, optimizer="adamw_torch", max_grad_norm=1.0, max_length=256)  # fmt: skip


@pytest.fixture(scope="module")
def setup(smoke):
    config = smoke.config("method=dpo")
    return config, smoke.rows()[0]["checkpoint"], build_world(config.data, config.paths.cache_dir).rows("dpo_pairs")[:8]


SIGMOID = PreferenceLoss(0.1, "sigmoid")


def train(setup, out, loss=SIGMOID, base_model=None, recipe=STEP, heldout=False):
    """One preference stage from the smoke base model on its first 8 DPO pairs (the last 2 held out, `heldout`)."""
    config, checkpoint, pairs = setup
    engine = dataclasses.replace(config.engine, logging_steps=1)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    trained, held = (pairs[:6], rows(pairs[6:])) if heldout else (pairs, None)
    stats = preference(model, tokenizer, rows(trained), engine, recipe, loss, out, 0, heldout=held,
                       base_model=base_model)  # fmt: skip
    return stats, tokenizer


def rows(pairs):
    return Dataset.from_list([preference_row(p) for p in pairs])


def response_logp(model, tokenizer, prompt: str, response: str) -> float:
    """log p(response | prompt), summed over the response's tokens (eos included): computed independently of TRL."""
    user = [{"role": "user", "content": prompt}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": response}], tokenize=False)
    prompt_ids, full_ids = tokenizer(prompt_text)["input_ids"], tokenizer(full)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([full_ids])).logits[0, :-1].log_softmax(-1)
    targets = torch.tensor(full_ids[1:])
    return logits[torch.arange(len(targets)), targets][len(prompt_ids) - 1 :].sum().item()


def test_the_base_stage_ran_deepspeed_and_changed_every_parameter(smoke):
    config = smoke.config("method=spin")
    checkpoint = Path(smoke.rows()[0]["checkpoint"])
    stats = read_json(checkpoint.parent / "train_stats.json")
    assert stats["deepspeed"] is True and stats["zero_stage"] == 2
    trained = AutoModelForCausalLM.from_pretrained(checkpoint)
    initial = build_tiny_llama(config.model.architecture, AutoTokenizer.from_pretrained(checkpoint), config.seed)
    for (name, before), after in zip(initial.named_parameters(), trained.parameters(), strict=True):
        assert not torch.equal(before, after), f"{name} did not change"


# sppo_hard (conf/method/sppo.yaml): (log-ratio_real - 1/(2 beta))^2 + (log-ratio_other + 1/(2 beta))^2 = 2 x 5^2
@pytest.mark.parametrize(("loss_type", "expected"), [("sigmoid", math.log(2)), ("hinge", 1.0), ("sppo_hard", 50.0)])
def test_first_step_loss_when_policy_equals_reference(setup, tmp_path, loss_type, expected):
    stats, _ = train(setup, tmp_path, PreferenceLoss(0.1, loss_type))
    assert stats["log_history"][0]["loss"] == pytest.approx(expected, abs=1e-4)
    assert stats["deepspeed"] is True


def test_the_nll_term_adds_the_real_answers_per_token_nll_to_the_first_step_loss(setup, tmp_path):
    """RPO's regulariser (conf/method/spin_nll.yaml): at the first step, policy = reference, so the loss is
    ln 2 + weight x the mean per-token negative log-likelihood of the chosen answers, computed here apart."""
    _, checkpoint, pairs = setup
    stats, tokenizer = train(setup, tmp_path, PreferenceLoss(0.1, "sigmoid", nll_weight=0.5))
    start = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    tokens = [len(tokenizer(p["chosen"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]) for p in pairs]
    nll = -sum(response_logp(start, tokenizer, p["prompt"], p["chosen"]) for p in pairs) / sum(tokens)
    assert stats["log_history"][0]["loss"] == pytest.approx(math.log(2) + 0.5 * nll, rel=2e-3)


def test_sft_stops_at_the_plateau_of_its_heldout_loss(smoke, tmp_path):
    """HF's EarlyStoppingCallback on the held-out SFT loss: with a `min_delta` no epoch can beat, training stops
    after the second evaluation, long before its cap of 6 epochs; the held-out loss is logged every epoch."""
    config = smoke.config("method=sft")
    world = build_world(config.data, config.paths.cache_dir)
    data = [conversation(r["prompt"], r["response"]) for r in world.rows("sft_train")[:64]]
    held = [conversation(r["question"], r["solution"]) for r in world.rows("valid")]
    checkpoint = smoke.rows()[0]["checkpoint"]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(checkpoint), AutoTokenizer.from_pretrained(checkpoint)
    recipe = dataclasses.replace(STEP, epochs=6, max_steps=None)
    stats = sft(model, tokenizer, Dataset.from_list(data), config.engine, recipe, tmp_path, 0,
                Dataset.from_list(held), Plateau(min_delta=10.0, patience=1))  # fmt: skip
    assert len(stats["heldout_curve"]) == 2 and stats["steps"] == 2 * 64 // 8


def test_the_fused_head_scores_only_the_labelled_positions_on_a_cpu_with_the_same_result(setup, monkeypatch):
    """`score_label_positions_only`: TRL's fused head on a CPU projects the labelled positions alone, and its
    per-token log-probs, loss and gradients are those of scoring every position, to float rounding."""
    from trl.kernels import chunked_logprob
    from trl.trainer import utils

    scored, chunked = [], utils._ChunkedLogProbFunction

    class Spy(chunked):
        @staticmethod
        def forward(ctx, hidden, *args):
            scored.append(hidden.shape[0])
            return chunked.forward(ctx, hidden, *args)

    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", Spy)
    monkeypatch.setattr(utils, "_use_triton", chunked_logprob._use_triton)  # TRL's own choice (the smoke run's
    # stages, in this process, made ours)
    _, checkpoint, _ = setup
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    add_fused_lm_head(model)
    ids = torch.randint(3, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, :15], labels[1, :9] = -100, -100  # a prompt each (and the first position, never a target)

    def forward():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.log_probs.detach(), out.loss.item(), [p.grad.clone() for p in model.parameters()]

    every = forward()
    score_label_positions_only()
    score_label_positions_only()  # idempotent
    compact = forward()
    assert scored == [2 * 23, (24 - 15) + (24 - 9)]  # every shifted position, then the labelled ones
    assert torch.allclose(every[0], compact[0], atol=1e-5) and every[1] == pytest.approx(compact[1], abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(every[2], compact[2], strict=True))


def test_reference_logps_are_the_starting_models(setup, tmp_path):
    _, checkpoint, pairs = setup
    stats, tokenizer = train(setup, tmp_path)
    start = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    for side in ("chosen", "rejected"):
        for i, p in enumerate(pairs):
            expected = response_logp(start, tokenizer, p["prompt"], p[side])
            assert stats["reference_logps"][side][i] == pytest.approx(expected, abs=1e-3)


def test_one_step_widens_the_real_vs_generated_margin_and_changes_every_tensor(setup, tmp_path):
    _, checkpoint, pairs = setup
    _, tokenizer = train(setup, tmp_path)
    before = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()

    def margin(model):
        return sum(response_logp(model, tokenizer, p["prompt"], p["chosen"])
                   - response_logp(model, tokenizer, p["prompt"], p["rejected"]) for p in pairs)  # fmt: skip

    assert margin(after) > margin(before)
    assert all(not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True))


def test_the_mixture_reference_mixes_base_and_starting_model(setup, tmp_path):
    """alpha-SPIN: the reference log-prob of every pair is alpha * log p_base + (1 - alpha) * log p_start."""
    _, checkpoint, pairs = setup
    plain, tokenizer = train(setup, tmp_path / "plain")
    base = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    with torch.no_grad():  # a base model that differs from the starting model
        for parameter in base.parameters():
            parameter.mul_(0.8)
    mixed, _ = train(setup, tmp_path / "mixed", PreferenceLoss(0.1, "sigmoid", 0.25), base_model=base)
    for side in ("chosen", "rejected"):
        for i, p in enumerate(pairs):
            base_logp = response_logp(base, tokenizer, p["prompt"], p[side])
            start_logp = plain["reference_logps"][side][i]
            assert abs(base_logp - start_logp) > 0.5  # the two references really differ
            assert mixed["reference_logps"][side][i] == pytest.approx(0.25 * base_logp + 0.75 * start_logp, abs=2e-3)


def test_dpo_positive_penalises_real_answers_that_lost_likelihood(setup, tmp_path):
    """DPO-Positive (conf/method/spin_dpop.yaml) from a starting model that is worse than its reference (the smoke
    base model with noise in its weights, against the smoke base model as alpha = 1's base): the first step's loss
    is the penalised logistic loss of the pairs' log-ratios, computed here apart."""
    config, checkpoint, pairs = setup
    base = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    start = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in start.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=noise) * 0.05)
    start.save_pretrained(tmp_path / "start")
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(tmp_path / "start")
    positive = PreferenceLoss(0.1, "sigmoid", 1.0, dpop_lambda=50.0)
    stats, tokenizer = train((config, tmp_path / "start", pairs), tmp_path / "out", positive, base_model=base)
    logp = response_logp
    ratios = [[logp(start, tokenizer, p["prompt"], p[side]) - logp(base, tokenizer, p["prompt"], p[side])
               for side in ("chosen", "rejected")] for p in pairs]  # fmt: skip

    def loss(dpop_lambda: float) -> float:
        logits = torch.tensor([0.1 * (c - r - dpop_lambda * max(0.0, -c)) for c, r in ratios])
        return -torch.nn.functional.logsigmoid(logits).mean().item()

    assert loss(50.0) > loss(0.0) + 0.1  # the real answers are less likely than under the reference: it bites
    assert stats["log_history"][0]["loss"] == pytest.approx(loss(50.0), rel=2e-3)
    with pytest.raises(ValueError, match=r"needs loss_type \['sigmoid'\] \(got \['hinge'\]\)"):
        train(setup, tmp_path / "hinge", dataclasses.replace(positive, loss_type="hinge", reference_alpha=0.0))


def test_heldout_pairs_are_scored_after_training(setup, tmp_path):
    stats, _ = train(setup, tmp_path, recipe=dataclasses.replace(STEP, max_steps=2, learning_rate=1e-2), heldout=True)
    held = stats["heldout"]
    assert 0.0 <= held["rewards/accuracies"] <= 1.0
    # margins are rewards of chosen minus rewards of rejected, averaged over the held-out pairs
    assert held["rewards/margins"] == pytest.approx(held["rewards/chosen"] - held["rewards/rejected"], abs=1e-5)
    assert held["rewards/chosen"] != 0.0  # the trained policy moved away from the reference on unseen pairs


def test_heldout_metrics_are_the_share_and_mean_over_every_pair(setup, tmp_path):
    """11 held-out pairs with training batches of 8: scored in batches of 8 and 3, TRL's mean of batch means would
    weigh each of the 3 almost three times as much as each of the 8. The accuracy is a share of the 11 pairs and
    the margin their mean, as an independent forward pass of the starting and trained models computes them."""
    config, checkpoint, _ = setup
    pairs = build_world(config.data, config.paths.cache_dir).rows("dpo_pairs")
    trained_rows, held_rows = pairs[:8], pairs[8:19]
    engine = dataclasses.replace(config.engine, logging_steps=1)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model, start = (AutoModelForCausalLM.from_pretrained(checkpoint) for _ in range(2))
    recipe = dataclasses.replace(STEP, max_steps=2, learning_rate=1e-2)
    stats = preference(model, tokenizer, rows(trained_rows), engine, recipe, SIGMOID, tmp_path, 0,
                       heldout=rows(held_rows))  # fmt: skip
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "model")

    def logratio(pair, side):
        return (response_logp(trained, tokenizer, pair["prompt"], pair[side])
                - response_logp(start, tokenizer, pair["prompt"], pair[side]))  # fmt: skip

    margins = [logratio(p, "chosen") - logratio(p, "rejected") for p in held_rows]
    assert min(abs(m) for m in margins) > 1e-3  # no pair so close to a tie that float order could flip it
    held = stats["heldout"]
    assert held["rewards/accuracies"] == pytest.approx(sum(m > 0 for m in margins) / len(margins), abs=1e-6)
    assert held["rewards/margins"] == pytest.approx(SIGMOID.beta * sum(margins) / len(margins), abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero2", "zero3", "zero3_offload"])
def test_every_zero_preset_trains(smoke, tmp_path, preset):
    checkpoint = smoke.rows()[0]["checkpoint"]
    config = smoke.config(f"engine={preset}")
    tokenizer, model = AutoTokenizer.from_pretrained(checkpoint), AutoModelForCausalLM.from_pretrained(checkpoint)
    before = [p.detach().clone() for p in model.parameters()]
    data = Dataset.from_list([conversation(f"Mia has {i} apples.", f"#### {i}") for i in range(64)])
    recipe = dataclasses.replace(config.model.base_sft, max_steps=3)
    stats = sft(model, tokenizer, data, config.engine, recipe, tmp_path / "out", 0)
    assert stats["deepspeed"] and stats["zero_stage"] == int(preset[4]) and stats["steps"] == 3
    assert torch.isfinite(torch.tensor(stats["train_loss"]))
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")  # ZeRO-3 shards gathered on save
    assert [p.shape for p in trained.parameters()] == [b.shape for b in before]
    assert all(torch.isfinite(p).all() for p in trained.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, trained.parameters(), strict=True))
