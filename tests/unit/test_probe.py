"""The diagnostic probes on an untrained tiny Llama: the held-out answers' log-probabilities equal an independent
forward pass, whatever the batching; the final-answer tokens are found; CHES of a pair with itself is zero."""

from __future__ import annotations

import math
import random

import pytest
import torch

from spin_bench.data.arithmetic import Style, make_problem
from spin_bench.data.config import Difficulty
from spin_bench.engine.config import Loading
from spin_bench.evaluation.probe import _forward, answer_probe, pair_similarity, probe, relative_to
from spin_bench.model.config import Architecture
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer

ARCH = Architecture(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    num_key_value_heads=2)  # fmt: skip
EASY = Difficulty(min_steps=1, max_steps=3, max_start=15, max_operand=6, multiply=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    rng = random.Random(0)
    problems = [make_problem(rng, EASY, Style(words=i % 2 == 0, opening=i % 3 == 0)) for i in range(200)]
    tokenizer = train_tokenizer((render_exchange(p.question, p.solution) for p in problems), 320, 256)
    model = build_tiny_llama(ARCH, tokenizer, seed=0)
    path = tmp_path_factory.mktemp("probe") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    rows = [{"prompt": p.question, "response": p.solution} for p in problems[:7]]
    return str(path), model.eval(), tokenizer, rows


def test_answer_logps_match_an_independent_forward_pass_whatever_the_batch(checkpoint):
    _, model, tokenizer, rows = checkpoint
    batched = _forward(model, tokenizer, rows)
    for row, got in zip(rows, batched, strict=True):
        user = [{"role": "user", "content": row["prompt"]}]
        prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = tokenizer(prompt + row["response"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        first = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0], -1)
        expected = sum(float(logp[i - 1, full[i]]) for i in range(first, len(full)))
        assert float(got["token_logp"].sum()) == pytest.approx(expected, abs=1e-4)
        assert len(got["token_logp"]) == len(full) - first  # the answer's tokens and its end-of-sequence token
        digits = tokenizer.decode([t for t, a in zip(full[first:], got["answer"], strict=True) if a])
        assert digits == row["response"].rsplit("#### ", 1)[1]  # the final answer's digits, nothing else


def test_the_probe_is_cached_and_relative_to_the_base_model(checkpoint, tmp_path):
    path, _, _, rows = checkpoint
    probed = probe(path, rows, Loading(), tmp_path)
    means = {f"heldout_real/{k}" for k in ("logp", "entropy", "answer_entropy", "answer_p")}
    assert set(probed) == means | {"heldout_real/logp_rows"}
    assert probed["heldout_real/logp"] < 0 and 0 < probed["heldout_real/answer_p"] < 1
    assert probed["heldout_real/logp"] == pytest.approx(sum(probed["heldout_real/logp_rows"]) / len(rows))
    assert answer_probe(path, rows, Loading(), tmp_path) == {k.split("/")[1]: v for k, v in probed.items()}
    assert len([p for p in (tmp_path / "probe").iterdir() if p.is_dir()]) == 1  # computed once
    assert probe(path, [], Loading(), tmp_path) == {} == relative_to({}, probed)


def test_the_change_since_the_base_model_is_paired_answer_by_answer():
    """The mean change and its standard error come from each answer's own change: answers that all move by 2.5
    give a change known exactly, while the same mean from answers that move apart is uncertain."""
    base = {"heldout_real/logp": -4.0, "heldout_real/logp_rows": [-3.0, -4.0, -5.0], "heldout_real/entropy": 0.2}
    itself = relative_to(base, base)
    assert itself == {"heldout_real/logp": -4.0, "heldout_real/entropy": 0.2, "heldout_real/logp_vs_base": 0.0,
                      "heldout_real/logp_vs_base_se": 0.0, "heldout_real/answers": 3}  # fmt: skip
    shifted = {**base, "heldout_real/logp": -6.5, "heldout_real/logp_rows": [-5.5, -6.5, -7.5]}
    assert relative_to(shifted, base)["heldout_real/logp_vs_base"] == pytest.approx(-2.5)
    assert relative_to(shifted, base)["heldout_real/logp_vs_base_se"] == pytest.approx(0.0)
    spread = relative_to({**base, "heldout_real/logp_rows": [-3.5, -7.5, -8.5]}, base)  # changes -0.5, -3.5, -3.5
    assert spread["heldout_real/logp_vs_base"] == pytest.approx(-2.5)
    assert spread["heldout_real/logp_vs_base_se"] == pytest.approx(math.sqrt(3.0) / math.sqrt(3))  # sd sqrt(3)
    with pytest.raises(ValueError):  # another set of answers than the base model's
        relative_to({**base, "heldout_real/logp_rows": [-3.0, -4.0]}, base)


def test_ches_is_zero_for_a_pair_with_itself_and_larger_for_alike_answers(checkpoint, tmp_path):
    path, _, _, rows = checkpoint
    same = [{"prompt": r["prompt"], "chosen": r["response"], "rejected": r["response"]} for r in rows]
    assert pair_similarity(path, same, Loading(), tmp_path) == pytest.approx({"ches": 0.0, "ches_normalised": 0.0},
                                                                             abs=1e-3)  # fmt: skip
    other = [{"prompt": r["prompt"], "chosen": r["response"], "rejected": "no idea"} for r in rows]
    different = pair_similarity(path, other, Loading(), tmp_path)
    assert different["ches"] != 0.0
