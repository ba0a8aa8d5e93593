"""The generation stage on an untrained tiny Llama: bucketing changes nothing but speed, seeds reproduce, the
cache keys on what matters, and vLLM's absence is a clear error."""

from __future__ import annotations

import dataclasses
import random
import sys

import pytest

import spin_bench.generation.generate as generation
from spin_bench.data.arithmetic import make_problem
from spin_bench.data.config import Difficulty
from spin_bench.engine.config import Loading
from spin_bench.generation.config import GenerationConfig
from spin_bench.generation.generate import format_prompt, generate, hf_generate
from spin_bench.model.config import Architecture
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer

GREEDY = GenerationConfig(name="hf", backend="hf", max_new_tokens=24, temperature=0.0, top_p=1.0, batch_size=64,
                          seed=0, prompt_format=None, progress_bar=False)  # fmt: skip
ARCH = Architecture(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    num_key_value_heads=2)  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A randomly initialised tiny Llama with a tokenizer trained on the embedded task, its weights drawn wide so
    that its greedy answers differ from prompt to prompt, and twelve prompts."""
    rng = random.Random(0)
    problems = [make_problem(rng, Difficulty(1, 3, 15, 6, True)) for _ in range(200)]
    tokenizer = train_tokenizer((render_exchange(p.question, p.solution) for p in problems), 320, 256)
    checkpoint = tmp_path_factory.mktemp("random_model")
    build_tiny_llama(ARCH, tokenizer, seed=0, initializer_range=1.0).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return str(checkpoint), [p.question for p in problems[:12]], tokenizer


def test_prompt_formats(setup):
    _, _, tokenizer = setup
    assert format_prompt(tokenizer, "Q?", None) == "### Instruction:\nQ?\n\n### Response:\n"
    official = "### Instruction: {prompt}\n\n### Response: "
    assert format_prompt(tokenizer, "Q?", official) == "### Instruction: Q?\n\n### Response: "


def test_bucketed_batches_give_the_unbatched_answers_in_order(setup):
    checkpoint, prompts, _ = setup
    batched = hf_generate(checkpoint, prompts, GREEDY, Loading())
    one_by_one = hf_generate(checkpoint, prompts, dataclasses.replace(GREEDY, batch_size=1), Loading())
    assert batched == one_by_one
    assert len(set(batched)) > 1  # answers differ by prompt: the order really was restored


def test_sampling_is_seeded(setup):
    checkpoint, prompts, _ = setup
    sampling = dataclasses.replace(GREEDY, temperature=1.0)
    first, again = (
        hf_generate(checkpoint, prompts, sampling, Loading()),
        hf_generate(checkpoint, prompts, sampling, Loading()),
    )
    other_seed = dataclasses.replace(sampling, seed=1)
    assert first == again != hf_generate(checkpoint, prompts, other_seed, Loading())


def test_cache_hits_identical_requests_and_misses_any_change(monkeypatch, tmp_path):
    calls = []

    def fake_backend(checkpoint, prompts, config, loading):
        calls.append(checkpoint)
        return [f"{checkpoint}:{p}:{config.temperature}" for p in prompts]

    monkeypatch.setattr(generation, "hf_generate", fake_backend)
    prompts = [{"id": "a", "prompt": "x", "response": ""}, {"id": "b", "prompt": "y", "response": ""}]
    first = generate("model-1", prompts, GREEDY, Loading(), tmp_path)
    assert first == [{"id": "a", "prompt": "x", "generated": "model-1:x:0.0"},
                     {"id": "b", "prompt": "y", "generated": "model-1:y:0.0"}]  # fmt: skip
    assert generate("model-1", prompts, GREEDY, Loading(), tmp_path) == first
    assert len(calls) == 1  # hit
    generate("model-2", prompts, GREEDY, Loading(), tmp_path)  # other weights
    generate("model-1", prompts[:1], GREEDY, Loading(), tmp_path)  # other prompts
    generate("model-1", prompts, dataclasses.replace(GREEDY, temperature=0.7), Loading(), tmp_path)
    generate("model-1", prompts, GREEDY, Loading(dtype="bfloat16"), tmp_path)  # the same weights, computed otherwise
    assert len(calls) == 5
    assert len([p for p in (tmp_path / "generations").iterdir() if p.is_dir()]) == 5


def test_vllm_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    config = dataclasses.replace(GREEDY, backend="vllm")
    with pytest.raises(ImportError, match=r"generation.backend=vllm needs vLLM"):
        generate("m", [{"id": "a", "prompt": "x", "response": ""}], config, Loading(), tmp_path)
    assert not [p for p in (tmp_path / "generations").iterdir() if p.is_dir()]
