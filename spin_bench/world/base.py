"""The base stage: the weak SFT model that self-play starts from (iteration 0).

Embedded scale (`model.source: scratch`): train a tokenizer on the world's SFT corpus, build a tiny Llama from
config, SFT it from scratch with the base budget of `conf/model`, save an HF checkpoint. The result is cached by
a hash of everything that made it (world, model config, training engine, seed), so every study and sweep arm
over the same world reuses it. Paper scale (`model.source: pretrained`): the checkpoint is the given model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datasets import Dataset
from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import atomic_write_json, cached_dir, content_hash
from spin_bench.training import sft
from spin_bench.world import World
from spin_bench.world.model import build_tiny_llama
from spin_bench.world.tokenizer import render_exchange, train_tokenizer

log = logging.getLogger(__name__)


def conversation(prompt: str, response: str) -> dict:
    """A row in TRL's conversational prompt/completion format (loss on the completion only)."""
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": response}]}


def build_base(model: DictConfig, world: World, train: DictConfig, cache_dir: Path, seed: int) -> str:
    """Return the base checkpoint: an HF directory (or, at paper scale, a hub id) that loads with from_pretrained."""
    if model.source == "pretrained":
        return str(model.name_or_path)
    if model.source != "scratch":
        raise ValueError(f"model.source must be 'scratch' or 'pretrained', got {model.source!r}")
    inputs = {
        "world": world.root.name,
        "model": OmegaConf.to_container(model, resolve=True),
        "train": OmegaConf.to_container(train, resolve=True),
        "seed": seed,
    }
    directory = Path(cache_dir) / "base" / f"{model.name}-{content_hash(inputs)}"

    def build(tmp: Path) -> None:
        rows = world.rows("sft_train")
        log.info("base stage: training a tokenizer and SFT'ing %s on %d examples", model.name, len(rows))
        corpus = (render_exchange(r["prompt"], r["response"]) for r in rows)
        tokenizer = train_tokenizer(corpus, model.tokenizer.vocab_size, model.tokenizer.model_max_length)
        policy = build_tiny_llama(OmegaConf.to_container(model.architecture), tokenizer, seed)
        parameters = policy.num_parameters()
        log.info("base model: %s parameters", f"{parameters:,}")
        dataset = Dataset.from_list([conversation(r["prompt"], r["response"]) for r in rows])
        stats = sft(policy, tokenizer, dataset, train, model.base_sft, tmp / "model", seed)
        atomic_write_json(tmp / "train_stats.json", {**stats, "parameters": parameters})

    return str(cached_dir(directory, build, inputs) / "model")
