"""The base stage: the weak SFT model that self-play starts from (iteration 0).

Embedded scale (`model.source: scratch`): train a tokenizer on the world's SFT corpus and build a tiny Llama from
config (the `init` stage, on rank 0), then SFT it from scratch with the `base_sft` recipe through the same
training stage as every method (spin_bench/engine/train.py: every rank, mid-stage checkpoints, resume). Both
are cached by everything that made them (world, model config, training engine, seed), so every study and sweep
arm over the same world reuses them. Paper scale (`model.source: pretrained`): the checkpoint is the given model.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from spin_bench.data.world import World
from spin_bench.engine.config import EngineConfig
from spin_bench.engine.train import train_stage
from spin_bench.model.config import ModelConfig, PretrainedModel
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer
from spin_bench.stages import atomic_write_json, run_stage

log = logging.getLogger(__name__)


def build_base(model: ModelConfig, world: World, engine: EngineConfig, cache_dir: Path, seed: int) -> str:
    """The base checkpoint: an HF directory (or, at paper scale, a hub id) that loads with from_pretrained."""
    if isinstance(model, PretrainedModel):
        return model.name_or_path
    rows = world.rows("sft_train")
    architecture = {k: v for k, v in dataclasses.asdict(model).items() if k != "base_sft"}
    inputs = {"world": world.root.name, "model": architecture, "seed": seed}

    def build(work: Path) -> None:
        log.info("base stage: a tokenizer and an untrained %s for %d SFT examples", model.name, len(rows))
        corpus = (render_exchange(r["prompt"], r["response"]) for r in rows)
        tokenizer = train_tokenizer(corpus, model.tokenizer.vocab_size, model.tokenizer.model_max_length)
        policy = build_tiny_llama(model.architecture, tokenizer, seed)
        parameters = policy.num_parameters()
        log.info("base model: %s parameters", f"{parameters:,}")
        policy.save_pretrained(work / "model")
        tokenizer.save_pretrained(work / "model")
        atomic_write_json(work / "info.json", {"parameters": parameters})

    initial = run_stage(cache_dir, "init", inputs, build, model.name) / "model"
    sft_rows = [{"prompt": r["prompt"], "response": r["response"]} for r in rows]
    trained = train_stage("base", str(initial), sft_rows, model.base_sft, engine=engine, loading=model.loading,
                          seed=seed, cache_dir=cache_dir)  # fmt: skip
    return trained.checkpoint
