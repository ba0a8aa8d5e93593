"""The base stage: the weak SFT model that self-play starts from (iteration 0).

Embedded scale (`model.source: scratch`): train a tokenizer on the world's SFT corpus, build a tiny Llama from
config, SFT it from scratch with the `base_sft` recipe, save an HF checkpoint. The result is cached by everything
that made it (world, model config, training engine, seed), so every study and sweep arm over the same world
reuses it. Paper scale (`model.source: pretrained`): the checkpoint is the given model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from datasets import Dataset

from spin_bench.data.world import World
from spin_bench.engine.config import EngineConfig
from spin_bench.engine.train import conversation, sft
from spin_bench.model.config import ModelConfig, PretrainedModel
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer
from spin_bench.stages import atomic_write_json, run_stage

log = logging.getLogger(__name__)


def build_base(model: ModelConfig, world: World, engine: EngineConfig, cache_dir: Path, seed: int) -> str:
    """The base checkpoint: an HF directory (or, at paper scale, a hub id) that loads with from_pretrained."""
    if isinstance(model, PretrainedModel):
        return model.name_or_path
    inputs = {"world": world.root.name, "model": dataclasses.asdict(model), "engine": dataclasses.asdict(engine),
              "seed": seed}  # fmt: skip

    def build(tmp: Path) -> None:
        rows = world.rows("sft_train")
        log.info("base stage: training a tokenizer and SFT'ing %s on %d examples", model.name, len(rows))
        corpus = (render_exchange(r["prompt"], r["response"]) for r in rows)
        tokenizer = train_tokenizer(corpus, model.tokenizer.vocab_size, model.tokenizer.model_max_length)
        policy = build_tiny_llama(model.architecture, tokenizer, seed)
        parameters = policy.num_parameters()
        log.info("base model: %s parameters", f"{parameters:,}")
        dataset = Dataset.from_list([conversation(r["prompt"], r["response"]) for r in rows])
        stats = sft(policy, tokenizer, dataset, engine, model.base_sft, tmp / "model", seed)
        atomic_write_json(tmp / "train_stats.json", {**stats, "parameters": parameters})

    return str(run_stage(cache_dir, "base", inputs, build, model.name) / "model")
