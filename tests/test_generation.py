"""The generation stage: bucketing changes nothing but speed, seeds reproduce, the cache keys on what matters."""

from __future__ import annotations

import sys

import pytest

import spin_bench.generation as generation
from spin_bench.generation import format_prompt, generate, hf_generate
from tests.conftest import make_cfg


@pytest.fixture(scope="module")
def setup(smoke, tmp_path_factory):
    """A randomly initialised tiny Llama with the smoke world's tokenizer, its weights drawn wide so that its
    greedy answers differ from prompt to prompt (the barely trained smoke base model, and a narrow random init,
    mostly answer with blank lines)."""
    from transformers import AutoTokenizer

    from spin_bench.world import build_world
    from spin_bench.world.model import build_tiny_llama

    cfg, rows, root = smoke
    tokenizer = AutoTokenizer.from_pretrained(rows[0]["checkpoint"])
    checkpoint = tmp_path_factory.mktemp("random_model")
    build_tiny_llama(dict(cfg.model.architecture, initializer_range=1.0), tokenizer, seed=0).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    prompts = build_world(cfg.data, root / ".cache").rows("spin_prompts")[:12]
    return cfg, str(checkpoint), prompts


def test_prompt_formats(setup):
    from transformers import AutoTokenizer

    _, checkpoint, _ = setup
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert format_prompt(tokenizer, "Q?", None) == "### Instruction:\nQ?\n\n### Response:\n"
    assert format_prompt(tokenizer, "Q?", "### Instruction: {prompt}\n\n### Response: ") == (
        "### Instruction: Q?\n\n### Response: "
    )


def test_bucketed_batches_give_the_unbatched_answers_in_order(setup, tmp_path):
    cfg, checkpoint, prompts = setup
    texts = [p["prompt"] for p in prompts]
    gen = make_cfg(tmp_path, "generation.max_new_tokens=24", "generation.progress_bar=false").generation
    batched = hf_generate(checkpoint, texts, gen, cfg.model)
    gen.batch_size = 1
    one_by_one = hf_generate(checkpoint, texts, gen, cfg.model)
    assert batched == one_by_one
    assert len(set(batched)) > 1  # answers differ by prompt: the order really was restored


def test_sampling_is_seeded(setup, tmp_path):
    cfg, checkpoint, prompts = setup
    texts = [p["prompt"] for p in prompts]
    gen = make_cfg(tmp_path, "generation.temperature=1.0", "generation.max_new_tokens=24").generation
    first, again = hf_generate(checkpoint, texts, gen, cfg.model), hf_generate(checkpoint, texts, gen, cfg.model)
    gen.seed = 1
    assert first == again != hf_generate(checkpoint, texts, gen, cfg.model)


def test_cache_hits_identical_requests_and_misses_any_change(monkeypatch, tmp_path):
    calls = []

    def fake_backend(checkpoint, prompts, gen_cfg, model_cfg):
        calls.append(checkpoint)
        return [f"{checkpoint}:{p}:{gen_cfg.temperature}" for p in prompts]

    monkeypatch.setattr(generation, "hf_generate", fake_backend)
    cfg = make_cfg(tmp_path)
    prompts = [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}]
    first = generate("model-1", prompts, cfg.generation, cfg.model, tmp_path)
    assert first == [{"id": "a", "prompt": "x", "generated": "model-1:x:0.0"}, {"id": "b", "prompt": "y",
                     "generated": "model-1:y:0.0"}]  # fmt: skip
    assert generate("model-1", prompts, cfg.generation, cfg.model, tmp_path) == first
    assert len(calls) == 1  # hit
    generate("model-2", prompts, cfg.generation, cfg.model, tmp_path)  # other weights
    generate("model-1", prompts[:1], cfg.generation, cfg.model, tmp_path)  # other prompts
    cfg.generation.temperature = 0.7  # other decoding
    generate("model-1", prompts, cfg.generation, cfg.model, tmp_path)
    cfg.model.dtype = "bfloat16"  # the same weights, computed in another precision
    generate("model-1", prompts, cfg.generation, cfg.model, tmp_path)
    assert len(calls) == 5
    assert len(list((tmp_path / "generations").glob("*[!k]"))) == 5


def test_vllm_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    cfg = make_cfg(tmp_path, "generation=vllm")
    with pytest.raises(ImportError, match=r"generation.backend=vllm needs vLLM"):
        generate("m", [{"id": "a", "prompt": "x"}], cfg.generation, cfg.model, tmp_path)
    assert not list((tmp_path / "generations").glob("*[!k]"))


def test_unknown_backend_is_named(tmp_path):
    cfg = make_cfg(tmp_path, "generation.backend=tgi")
    with pytest.raises(ValueError, match="generation.backend must be one of"):
        generate("m", [], cfg.generation, cfg.model, tmp_path)
