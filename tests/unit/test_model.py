"""The model stage without training: tokenizer round trips and prompt boundaries, the tiny Llama, and checkpoints
that are standard HF directories, reload exactly and are refused without safetensors weights."""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback, TrainerState, TrainingArguments

from spin_bench.data.arithmetic import make_problem
from spin_bench.data.config import Difficulty
from spin_bench.engine.checkpoint import load_checkpoint
from spin_bench.engine.config import Loading
from spin_bench.model.base import plateau_reached
from spin_bench.model.config import Architecture
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer

ARCH = Architecture(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=2)  # fmt: skip


@pytest.fixture(scope="module")
def problems():
    rng = random.Random(0)
    return [make_problem(rng, Difficulty(1, 3, 15, 6, True)) for _ in range(300)]


@pytest.fixture(scope="module")
def tokenizer(problems):
    return train_tokenizer((render_exchange(p.question, p.solution) for p in problems), 320, 256)


def chat(tokenizer, problem, with_answer: bool) -> str:
    messages = [{"role": "user", "content": problem.question}]
    if with_answer:
        messages.append({"role": "assistant", "content": problem.solution})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=not with_answer)


def test_round_trip_is_lossless(tokenizer, problems):
    for p in problems[:50]:
        text = f"{p.question}\n{p.solution}"
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_digits_are_single_tokens(tokenizer):
    tokens = tokenizer.tokenize("12345 + 678 = 13023")
    assert [t for t in tokens if any(c.isdigit() for c in t)] == list("12345678") + list("13023")


def test_prompt_is_a_token_prefix_of_prompt_plus_answer(tokenizer, problems):
    """Generation and lm-eval tokenize the prompt alone; training tokenizes it with the answer: they must agree."""
    for p in problems[:50]:
        prompt, full = chat(tokenizer, p, False), chat(tokenizer, p, True)
        assert full == render_exchange(p.question, p.solution) + tokenizer.eos_token
        assert full.startswith(prompt)
        prompt_ids, full_ids = tokenizer(prompt)["input_ids"], tokenizer(full)["input_ids"]
        assert full_ids[: len(prompt_ids)] == prompt_ids


def test_saved_tokenizer_reloads_with_chat_template(tokenizer, problems, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    p = problems[0]
    assert again(chat(again, p, True))["input_ids"] == tokenizer(chat(tokenizer, p, True))["input_ids"]
    assert (again.padding_side, again.pad_token, again.eos_token) == ("left", "<pad>", "</s>")


def test_checkpoint_reloads_with_identical_logits(tokenizer, tmp_path):
    model = build_tiny_llama(ARCH, tokenizer, seed=0).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    ids = torch.tensor([tokenizer("Mia has 3 apples.")["input_ids"]])
    for reloaded in (load_checkpoint(tmp_path)[0], AutoModelForCausalLM.from_pretrained(tmp_path)):
        with torch.no_grad():
            assert torch.equal(model(ids).logits, reloaded.eval()(ids).logits)


def test_same_seed_same_initial_weights(tokenizer):
    a, b = build_tiny_llama(ARCH, tokenizer, seed=3), build_tiny_llama(ARCH, tokenizer, seed=3)
    c = build_tiny_llama(ARCH, tokenizer, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_loading_refuses_bad_checkpoint_dirs(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_checkpoint(tmp_path)
    model = build_tiny_llama(ARCH, tokenizer, seed=0)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # pickle weights only
    with pytest.raises(FileNotFoundError, match="no .safetensors weights"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="Input should be 'float32', 'bfloat16' or 'float16'"):
        Loading(dtype="float64")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("curve", "plateaued"),
    [
        ([1.0, 0.5, 0.494, 0.488], True),  # two epochs in a row gain 0.006 on the best: together 0.012, still a plateau
        ([1.0, 0.5, 0.494, 0.47], False),  # the last epoch gains 0.024: the count starts again
        ([1.0, 0.5, 0.52, 0.51], True),  # worse epochs count too
        ([1.0, 0.5, 0.499], False),  # one epoch in a row is under the patience of 2
    ],
)
def test_the_plateau_is_hfs_early_stopping_rule_replayed(curve, plateaued):
    """`base/plateaued` says whether HF's EarlyStoppingCallback (min_delta 0.01, patience 2) would have stopped
    at the curve's end, evaluation by evaluation against the best so far."""
    callback, state = EarlyStoppingCallback(2, 0.01), TrainerState()
    for loss in curve:
        callback.check_metric_value(TrainingArguments("unused", greater_is_better=False), state, None, loss)
        state.best_metric = min(loss, state.best_metric or math.inf)  # as Trainer keeps the best
    assert (callback.early_stopping_patience_counter >= 2) is plateaued
    assert plateau_reached(curve, 0.01, 2) is plateaued
