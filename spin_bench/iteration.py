"""One iteration of a method, top to bottom: (generate ->) training data -> train -> held-out score.

SPIN, iteration t: the current model p_t answers every SPIN prompt (the generation stage, cached); the pairs
(real answer, own answer) of the last `history` iterations form the training set; p_{t+1} is trained from p_t
with the preference loss, whose reference is p_t (or the base model, or their mixture); the held-out pairs are
scored after training. DPO: the same on the world's fixed preference pairs. SFT: the real answers of the SPIN
prompts. Every method trains the same number of optimizer steps per iteration (`step_budget`).

The training stage is cached by a hash of everything that makes it (starting weights, data, recipe, engine,
seed, reference), so a rerun after an interruption resumes at the first unfinished iteration.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from spin_bench.cache import atomic_write_json, cached_dir, checkpoint_fingerprint, content_hash, read_json
from spin_bench.generation import generate
from spin_bench.pairs import history_iterations, spin_pairs
from spin_bench.training import LOSS_TYPES, preference, sft
from spin_bench.world import World
from spin_bench.world.base import conversation
from spin_bench.world.model import load_configured, loading_spec

log = logging.getLogger(__name__)

KINDS = ("spin", "dpo", "sft")
REFERENCES = {"previous": 0.0, "base": 1.0}  # the weight alpha of log p_base in the reference; mixture: method.alpha


@dataclass
class Iteration:
    """What one iteration produced: the trained checkpoint, its diagnostics, the Trainer's per-logging-step
    metrics and a few of the pairs it trained on."""

    checkpoint: str
    diagnostics: dict
    history: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)


def method_at(method: DictConfig, t: int) -> DictConfig:
    """The method's config at iteration t: its keys with `by_iteration[t]` merged over them. Keys may be ints
    (YAML) or digit strings (a command-line `+method.by_iteration.3.beta=5.0`); both apply."""
    overrides = [v for k, v in method.by_iteration.items() if str(k) == str(t)]
    return OmegaConf.merge(method, *overrides)


def reference_alpha(method: DictConfig) -> float:
    return float(method.alpha) if method.reference == "mixture" else REFERENCES[method.reference]


def split_heldout(
    rows: list[dict], heldout: int, split: str, prompts: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): the last `heldout` rows of the split are never trained on; of the others,
    the first `prompts` are trained on (all when None). The held-out rows stay the same whatever `prompts` is, so
    a data-size ablation scores every size on the same held-out pairs."""
    if heldout >= len(rows):
        raise ValueError(f"method.heldout={heldout} leaves no training rows in {split} ({len(rows)} rows)")
    train, held = rows[: len(rows) - heldout], rows[len(rows) - heldout :]
    if prompts is not None and not 1 <= prompts <= len(train):
        raise ValueError(f"method.prompts={prompts}: {split} has {len(train)} training rows (after method.heldout)")
    return train[:prompts], held


def step_budget(method: DictConfig, t: int, train_prompts: int, processes: int = 1) -> int:
    """Optimizer steps of iteration t for every method: what SPIN takes on its pairs of the last `history`
    iterations, `epochs` passes at `batch_size` rows per process and step. SFT and DPO train exactly this many
    steps (their data cycles)."""
    rows = train_prompts * len(history_iterations(t, method.history))
    return method.recipe.epochs * math.ceil(rows / (method.recipe.batch_size * processes))


def check_method(method: DictConfig) -> None:
    """Fail on a method config that cannot work, naming the key, before any stage runs (every iteration's
    config, `by_iteration` merged, is checked)."""
    if method.kind not in KINDS:
        raise ValueError(f"method.kind must be one of {KINDS}, got {method.kind!r}")
    if not isinstance(method.iterations, int) or method.iterations < 0:
        raise ValueError(f"method.iterations must be a whole number >= 0, got {method.iterations!r}")
    if method.history is not None and (not isinstance(method.history, int) or method.history < 1):
        raise ValueError(f"method.history must be >= 1 or null (all iterations), got {method.history!r}")
    if method.heldout < 0:
        raise ValueError(f"method.heldout must be >= 0, got {method.heldout}")
    if method.prompts is not None and (not isinstance(method.prompts, int) or method.prompts < 1):
        raise ValueError(f"method.prompts must be a number of prompts >= 1 or null (all), got {method.prompts!r}")
    bad = [t for t in method.by_iteration if not str(t).isdigit() or not int(t) < max(method.iterations, 1)]
    if bad:
        raise ValueError(f"method.by_iteration keys must be iterations 0..{method.iterations - 1}, got {bad}")
    for t in range(method.iterations):
        try:
            m = method_at(method, t)
        except ConfigKeyError as err:
            raise ValueError(f"method.by_iteration.{t} sets keys this method lacks: {err.key}") from err
        if m.recipe.batch_size < 1 or m.recipe.epochs < 1:
            raise ValueError(f"method.recipe at iteration {t}: batch_size and epochs must be >= 1")
        if m.kind == "sft":
            continue
        if m.loss_type not in LOSS_TYPES:
            raise ValueError(f"method.loss_type at iteration {t} must be one of {LOSS_TYPES}, got {m.loss_type!r}")
        if m.reference not in (*REFERENCES, "mixture"):
            raise ValueError(f"method.reference must be previous, base or mixture, got {m.reference!r}")
        if m.reference == "mixture" and not 0.0 <= m.alpha <= 1.0:
            raise ValueError(f"method.alpha must lie in [0, 1], got {m.alpha}")
        if m.beta <= 0:
            raise ValueError(f"method.beta at iteration {t} must be > 0, got {m.beta}")
    if method.early_stop_below is not None and (method.kind == "sft" or method.heldout < 1):
        raise ValueError("method.early_stop_below needs held-out pairs (method.heldout >= 1) and a preference method")


def check_splits(method: DictConfig, world: World) -> None:
    """The held-out rows must leave training rows in the splits the method reads (checked before the base stage)."""
    split_heldout(world.rows("spin_prompts"), method.heldout, "spin_prompts", method.prompts)
    if method.kind == "dpo":
        split_heldout(world.rows("dpo_pairs"), method.heldout, "dpo_pairs", method.prompts)


def run_iteration(cfg: DictConfig, world: World, checkpoints: list[str], cache_dir: Path) -> Iteration:
    """Iteration t = len(checkpoints) - 1: train p_{t+1} from p_t = checkpoints[-1] (checkpoints[0] is the base)."""
    t, start = len(checkpoints) - 1, checkpoints[-1]
    method = method_at(cfg.method, t)
    real, heldout_real = split_heldout(world.rows("spin_prompts"), method.heldout, "spin_prompts", method.prompts)
    steps = step_budget(method, t, len(real), processes=int(os.environ.get("WORLD_SIZE", "1")))
    diagnostics: dict = {"steps_budget": steps}
    samples: list[dict] = []

    if method.kind == "spin":
        # p_s's answers for every iteration s in the history; earlier ones are cache hits of their own iteration
        prompts = real + heldout_real
        generations = {s: generate(checkpoints[s], prompts, cfg.generation, cfg.model, cache_dir)
                       for s in history_iterations(t, method.history)}  # fmt: skip
        rows, counts = spin_pairs(generations, real, t, method.history)
        heldout, _ = spin_pairs({t: generations[t]}, heldout_real, t, 1)
        current = [p for p in rows if p["iteration"] == t]
        diagnostics |= counts | {
            "generated_chars": _mean_length(p["rejected"] for p in current),
            "real_chars": _mean_length(p["chosen"] for p in current),
        }
        samples = current[: method.samples_logged]
    elif method.kind == "dpo":
        rows, heldout = split_heldout(world.rows("dpo_pairs"), method.heldout, "dpo_pairs", method.prompts)
        diagnostics |= {"pairs": len(rows)}
    else:
        rows, heldout = [conversation(r["prompt"], r["response"]) for r in real], []
        diagnostics |= {"rows": len(rows)}

    checkpoint, stats = train_stage(cfg, method, start, checkpoints[0], rows, heldout, steps, cache_dir)
    return Iteration(checkpoint, diagnostics | summarize(stats), stats["log_history"], samples)


def train_stage(cfg: DictConfig, method: DictConfig, start: str, base: str, rows: list[dict], heldout: list[dict],
                steps: int, cache_dir: Path) -> tuple[str, dict]:  # fmt: skip
    """Train from `start` on `rows` for `steps` optimizer steps; cached. Returns (checkpoint, training stats)."""
    # At iteration 0 the starting model is the base model, so every reference (previous, base, any mixture) is the
    # same model: alpha 0 then, and the stage is shared by every arm of a reference ablation.
    alpha = reference_alpha(method) if method.kind != "sft" and start != base else 0.0
    recipe = {**OmegaConf.to_container(method.recipe, resolve=True), "max_steps": steps}
    if method.kind != "sft":
        recipe |= {"beta": method.beta, "loss_type": method.loss_type}
    recipe = OmegaConf.create(recipe)
    inputs = {
        "kind": method.kind,
        "start": checkpoint_fingerprint(start),
        "reference": {"alpha": alpha, "base": checkpoint_fingerprint(base) if alpha else None},
        "loading": loading_spec(cfg.model),
        "data": content_hash(rows, heldout, length=16),
        "recipe": OmegaConf.to_container(recipe, resolve=True),
        "train": OmegaConf.to_container(cfg.train, resolve=True),
        "seed": int(cfg.seed),
    }
    directory = Path(cache_dir) / "train" / f"{method.kind}-{content_hash(inputs)}"

    def build(tmp: Path) -> None:
        log.info("training %s from %s: %d rows, %d steps", method.kind, start, len(rows), steps)
        model, tokenizer = load_configured(start, cfg.model)
        if method.kind == "sft":
            stats = sft(model, tokenizer, Dataset.from_list(rows), cfg.train, recipe, tmp / "model", cfg.seed)
        else:
            base_model = load_configured(base, cfg.model)[0] if alpha else None
            stats = preference(
                model, tokenizer, _preference_rows(rows), cfg.train, recipe, tmp / "model", cfg.seed,
                heldout=_preference_rows(heldout) if heldout else None, base_model=base_model, alpha=alpha,
            )  # fmt: skip
        atomic_write_json(tmp / "train_stats.json", stats)

    directory = cached_dir(directory, build, inputs)
    return str(directory / "model"), read_json(directory / "train_stats.json")


def _preference_rows(pairs: list[dict]) -> Dataset:
    """TRL's conversational preference format: a user prompt, an assistant chosen and rejected answer."""
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": p["prompt"]}],
         "chosen": [{"role": "assistant", "content": p["chosen"]}],
         "rejected": [{"role": "assistant", "content": p["rejected"]}]}
        for p in pairs
    ])  # fmt: skip


def summarize(stats: dict) -> dict:
    """Per-iteration diagnostics from a training stage's statistics: the final loss, the DeepSpeed ZeRO stage that
    ran, TRL's reward metrics at the last logging step (`train/...`) and on the held-out pairs (`heldout/...`)."""
    out = {"train/loss": stats["train_loss"], "train/steps": stats["steps"], "zero_stage": stats["zero_stage"]}
    last = stats["log_history"][-1] if stats.get("log_history") else {}
    out |= {f"train/{k}": v for k, v in last.items() if k.startswith(("rewards/", "logps/"))}
    out |= {f"heldout/{k}": v for k, v in stats.get("heldout", {}).items() if k.startswith(("rewards/", "logps/"))}
    return out


def _mean_length(texts) -> float:
    lengths = [len(t) for t in texts]
    return sum(lengths) / len(lengths) if lengths else 0.0
