"""The generation stage: the current model answers every SPIN prompt (the paper's y').

Batched HF generation with the KV cache and left padding, prompts sorted by length so that each batch pads
little (bucketing), seeded per batch, with a progress bar, its batches shared among the ranks of a multi-process
run; or vLLM on GPUs (imported only when chosen). The output is cached by (model weights, how they load,
prompts, decoding config): an identical request, such as iteration 0 of every arm of a beta sweep, is computed
once.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from spin_bench import ranks
from spin_bench.data.rows import PromptRow
from spin_bench.engine.checkpoint import load_for_inference
from spin_bench.engine.config import Loading
from spin_bench.generation.config import GenerationConfig, GenerationRow
from spin_bench.stages import checkpoint_fingerprint, content_hash, read_jsonl, run_stage, write_jsonl

log = logging.getLogger(__name__)


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, prompt_format: str | None) -> str:
    """The text the model continues: its chat template with a generation prompt, or `prompt_format` (a string
    with `{prompt}`, e.g. the official SPIN code's "### Instruction: {prompt}\\n\\n### Response: ")."""
    if prompt_format is None:
        messages = [{"role": "user", "content": prompt}]
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return prompt_format.format(prompt=prompt)


def generate(checkpoint: str, prompts: Sequence[PromptRow], config: GenerationConfig, loading: Loading,
             cache_dir: Path) -> list[GenerationRow]:  # fmt: skip
    """One row per prompt row, in the order given."""
    inputs = {
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "loading": loading.spec(),
        "prompts": content_hash([(p["id"], p["prompt"]) for p in prompts], length=16),
        "decoding": config.spec(),
        **({"seeding": "per batch"} if config.temperature > 0 else {}),  # sampled answers: seeded per batch
    }

    def build(work: Path) -> None:
        backend = hf_generate if config.backend == "hf" else vllm_generate
        log.info("generating %d answers with %s (%s backend)", len(prompts), checkpoint, config.backend)
        texts = backend(checkpoint, [p["prompt"] for p in prompts], config, loading)
        rows = [GenerationRow(id=p["id"], prompt=p["prompt"], generated=t) for p, t in zip(prompts, texts, strict=True)]
        if ranks.is_main():
            write_jsonl(work / "generations.jsonl", rows)

    # HF generation shares the prompts among the ranks; vLLM parallelises on its own, on rank 0
    directory = run_stage(cache_dir, "generations", inputs, build, every_rank=config.backend == "hf")
    return [GenerationRow(**row) for row in read_jsonl(directory / "generations.jsonl")]  # type: ignore[typeddict-item]


def hf_generate(checkpoint: str, prompts: list[str], config: GenerationConfig, loading: Loading) -> list[str]:
    """The answers to `prompts`, in their order. The prompts are sorted by length and cut into batches; in a run
    of N ranks, rank r answers batches r, r + N, ... and the answers are gathered on every rank. Each batch is the
    same whatever N is, and sampling is seeded per batch, so the answers do not depend on the process count."""
    model, tokenizer = load_for_inference(checkpoint, loading)
    texts = [format_prompt(tokenizer, p, config.prompt_format) for p in prompts]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # length buckets: little padding per batch
    sample = config.temperature > 0
    decoding = dict(max_new_tokens=config.max_new_tokens, do_sample=sample, pad_token_id=tokenizer.pad_token_id)
    if sample:
        decoding.update(temperature=config.temperature, top_p=config.top_p)
    batches = [order[start : start + config.batch_size] for start in range(0, len(order), config.batch_size)]
    mine = list(enumerate(batches))[ranks.rank() :: ranks.world_size()]
    answers: dict[int, str] = {}
    for number, index in tqdm(mine, desc="generate", unit="batch", disable=not config.progress_bar):
        torch.manual_seed(config.seed + number)
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, return_tensors="pt")  # left padding
        batch = batch.to(model.device)
        with torch.no_grad():
            tokens = model.generate(**batch, **decoding)
        replies = tokenizer.batch_decode(tokens[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        answers.update((i, reply.strip()) for i, reply in zip(index, replies, strict=True))
    for part in ranks.gather(answers):  # every rank's batches (on one process: its own)
        answers.update(part)
    return [answers[i] for i in range(len(texts))]


def vllm_generate(checkpoint: str, prompts: list[str], config: GenerationConfig, loading: Loading) -> list[str]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise ImportError(
            "generation.backend=vllm needs vLLM, which runs on GPUs only: pip install '.[vllm]', or use generation=hf"
        ) from err
    # vLLM sizes its KV cache by the GPU memory free when it starts: first hand back what torch still caches from
    # the models this process used before (the last iteration's evaluation and probes on rank 0)
    gc.collect()
    torch.cuda.empty_cache()
    llm = LLM(
        model=checkpoint,
        dtype=loading.dtype,
        revision=loading.revision,
        seed=config.seed,
        trust_remote_code=loading.trust_remote_code,
        gpu_memory_utilization=config.gpu_memory_utilization,
    )
    tokenizer = llm.get_tokenizer()
    texts = [format_prompt(tokenizer, p, config.prompt_format) for p in prompts]
    params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                            seed=config.seed)  # fmt: skip
    return [result.outputs[0].text.strip() for result in llm.generate(texts, params)]
