"""The generation stage: the current model answers every SPIN prompt (the paper's y').

Batched HF generation with the KV cache and left padding, prompts sorted by length so that each batch pads
little (bucketing), seeded, with a progress bar; or vLLM on GPUs (imported only when chosen). The output is
cached by (model weights, prompts, decoding config): an identical request, such as iteration 0 of every arm of
a beta sweep, is computed once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import cached_dir, checkpoint_fingerprint, content_hash, read_jsonl, write_jsonl
from spin_bench.world.model import load_configured, loading_spec

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")


def format_prompt(tokenizer, prompt: str, prompt_format: str | None) -> str:
    """The text the model continues: its chat template with a generation prompt, or `prompt_format` (a string
    with `{prompt}`, e.g. the official SPIN code's "### Instruction: {prompt}\\n\\n### Response: ")."""
    if prompt_format is None:
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt_format.format(prompt=prompt)


def generate(checkpoint: str, prompts: list[dict], gen_cfg: DictConfig, model_cfg: DictConfig, cache_dir: Path):
    """Rows `{"id", "prompt", "generated"}`, one per prompt row, in the order given."""
    if gen_cfg.backend not in BACKENDS:
        raise ValueError(f"generation.backend must be one of {BACKENDS}, got {gen_cfg.backend!r}")
    inputs = {
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "loading": loading_spec(model_cfg),
        "prompts": content_hash([(p["id"], p["prompt"]) for p in prompts], length=16),
        "decoding": OmegaConf.to_container(gen_cfg, resolve=True),
    }
    directory = Path(cache_dir) / "generations" / content_hash(inputs)

    def build(tmp: Path) -> None:
        backend = hf_generate if gen_cfg.backend == "hf" else vllm_generate
        log.info("generating %d answers with %s (%s backend)", len(prompts), checkpoint, gen_cfg.backend)
        texts = backend(checkpoint, [p["prompt"] for p in prompts], gen_cfg, model_cfg)
        rows = [{"id": p["id"], "prompt": p["prompt"], "generated": t} for p, t in zip(prompts, texts, strict=True)]
        write_jsonl(tmp / "generations.jsonl", rows)

    return read_jsonl(cached_dir(directory, build, inputs) / "generations.jsonl")


def hf_generate(checkpoint: str, prompts: list[str], gen_cfg: DictConfig, model_cfg: DictConfig) -> list[str]:
    import torch
    from tqdm.auto import tqdm

    model, tokenizer = load_configured(checkpoint, model_cfg)
    model.eval()
    texts = [format_prompt(tokenizer, p, gen_cfg.prompt_format) for p in prompts]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # length buckets: little padding per batch
    sample = gen_cfg.temperature > 0
    decoding = dict(max_new_tokens=gen_cfg.max_new_tokens, do_sample=sample, pad_token_id=tokenizer.pad_token_id)
    if sample:
        decoding.update(temperature=gen_cfg.temperature, top_p=gen_cfg.top_p)
    torch.manual_seed(gen_cfg.seed)
    out: list[str] = [""] * len(texts)
    batches = range(0, len(order), gen_cfg.batch_size)
    for start in tqdm(batches, desc="generate", unit="batch", disable=not gen_cfg.progress_bar):
        index = order[start : start + gen_cfg.batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, return_tensors="pt")  # left padding
        with torch.no_grad():
            tokens = model.generate(**batch, **decoding)
        replies = tokenizer.batch_decode(tokens[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, reply in zip(index, replies, strict=True):
            out[i] = reply.strip()
    return out


def vllm_generate(checkpoint: str, prompts: list[str], gen_cfg: DictConfig, model_cfg: DictConfig) -> list[str]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise ImportError(
            "generation.backend=vllm needs vLLM, which runs on GPUs only: pip install -e '.[vllm]', "
            "or use generation.backend=hf"
        ) from err
    llm = LLM(
        model=checkpoint,
        dtype=model_cfg.dtype,
        seed=gen_cfg.seed,
        trust_remote_code=model_cfg.trust_remote_code,
        gpu_memory_utilization=gen_cfg.gpu_memory_utilization,
    )
    tokenizer = llm.get_tokenizer()
    texts = [format_prompt(tokenizer, p, gen_cfg.prompt_format) for p in prompts]
    params = SamplingParams(
        temperature=gen_cfg.temperature, top_p=gen_cfg.top_p, max_tokens=gen_cfg.max_new_tokens, seed=gen_cfg.seed
    )
    return [result.outputs[0].text.strip() for result in llm.generate(texts, params)]
