"""The base stage: the weak SFT model that self-play starts from (iteration 0).

Embedded scale (`model.source: scratch`): train a tokenizer on the world's SFT corpus and build a tiny Llama from
config (the `init` stage, on rank 0), then SFT it from scratch with the `base_sft` recipe through the same
training stage as every method (spin_bench/engine/train.py: every rank, mid-stage checkpoints, resume), until its
loss on the world's `valid` solutions plateaus (`model.plateau`), as a finished SFT model has. Both
are cached by everything that made them (world, model config, training engine, seed), so every study and sweep
arm over the same world reuses them. Paper scale (`model.source: pretrained`): the checkpoint is the given model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

from spin_bench.data.world import World
from spin_bench.engine.config import EngineConfig, Trained
from spin_bench.engine.train import train_stage
from spin_bench.model.config import ModelConfig, PretrainedModel, ScratchModel
from spin_bench.model.llama import build_tiny_llama
from spin_bench.model.tokenizer import render_exchange, train_tokenizer
from spin_bench.stages import atomic_write_json, run_stage

log = logging.getLogger(__name__)


def build_base(model: ModelConfig, world: World, engine: EngineConfig, cache_dir: Path, seed: int) -> Trained:
    """The base checkpoint (an HF directory, or at paper scale a hub id, that loads with from_pretrained) and its
    training statistics (none for a given checkpoint)."""
    if isinstance(model, PretrainedModel):
        return Trained(model.name_or_path, {})
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
    valid = [{"prompt": r["question"], "response": r["solution"]} for r in world.rows("valid")]
    return train_stage("base", str(initial), sft_rows, model.base_sft, engine=engine, loading=model.loading,
                       seed=seed, cache_dir=cache_dir, heldout=valid, plateau=model.plateau)  # fmt: skip


def plateau_reached(curve: list[float], min_delta: float, patience: int) -> bool:
    """HF's EarlyStoppingCallback rule, replayed on the held-out losses: an evaluation that does not beat the best
    so far by more than `min_delta` counts, one that does resets the count; `patience` in a row at the end is a
    plateau. (Each of those epochs may still gain up to `min_delta` on the best, so together up to `patience`
    times it: `base/recent_gain`.)"""
    best, count = math.inf, 0
    for loss in curve:
        count = 0 if loss < best - min_delta else count + 1
        best = min(best, loss)
    return count >= patience


def base_diagnostics(trained: Trained, model: ModelConfig) -> dict[str, Any]:
    """The base stage's record (iteration 0 of diagnostics.jsonl): its epochs and steps, the held-out SFT loss
    after each epoch, what the last `patience` epochs gained on the best loss before them, and whether it met its
    plateau criterion (`plateaued`; `False`: the epoch cap stopped it first, and the base model is not finished:
    a warning says so). Nothing for a given (pretrained) checkpoint."""
    curve = trained.stats.get("heldout_curve")
    if not curve or not isinstance(model, ScratchModel):
        return {}
    patience = model.plateau.patience
    gain = min(curve[:-patience]) - min(curve[-patience:]) if len(curve) > patience else None
    plateaued = plateau_reached(curve, model.plateau.min_delta, patience)
    if not plateaued:
        log.warning("the base model did not plateau within model.base_sft.epochs=%d (its held-out SFT loss still "
                    "fell %s over the last %d epochs): it is not a finished SFT model; raise the cap", len(curve),
                    f"{gain:.4f}" if gain is not None else "(too few epochs to tell)", patience)  # fmt: skip
    return {"base/epochs": len(curve), "base/steps": trained.stats["steps"], "base/heldout_loss": curve[-1],
            "base/heldout_curve": curve, "base/recent_gain": gain, "base/plateaued": plateaued}  # fmt: skip
