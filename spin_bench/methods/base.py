"""The small protocol every method (arm of a study) follows, the configs they share, and their shared helpers.

A method is one module of spin_bench/methods/ (or any importable module: `method.kind` may be a dotted path)
that defines `METHOD`, an object with

- `config`: its typed config class (a subclass of `IterationConfig`; `PreferenceConfig` for the preference-loss
  methods), which conf/method/<name>.yaml fills in;
- `splits`: the world splits it reads, so that its held-out and data-size settings are checked at start-up;
- `iterate(config, inputs, stages)`: one iteration, from the checkpoints so far to the next one.

`iterate` gets its own config section (already at its iteration, `by_iteration` applied), the artefacts it
reads (`IterationInputs`: the world's files and the checkpoints so far) and `Stages`, the stage functions bound
by the pipeline to the run's other config sections (generation, engine, model loading, cache). It never sees the
composed config. docs/architecture.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Protocol

from pydantic import TypeAdapter, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass
from typing_extensions import Self

from spin_bench.data.rows import PromptRow
from spin_bench.data.world import World
from spin_bench.engine.config import LossType, PreferenceLoss, Recipe, Trained
from spin_bench.generation.config import GenerationRow
from spin_bench.schema import STRICT, Fraction, NonNegative, NonNegativeNumber, Positive, PositiveNumber

# What `by_iteration` may not override: what the run is, and the rows and history every iteration's budget counts.
FIXED_FOR_THE_RUN = {"name", "kind", "iterations", "history", "heldout", "prompts", "by_iteration"}


@dataclass(frozen=True, config=STRICT)
class IterationConfig:
    """What every method shares (conf/method_iterations.yaml): T iterations under one optimizer-step budget."""

    name: str  # names the run directory and W&B job type
    kind: str  # the module that runs an iteration: spin_bench.methods.<kind>, or a dotted module path
    iterations: NonNegative
    history: Positive | None  # SPIN's pairs of the last `history` iterations (null: all); sets every step budget
    heldout: NonNegative  # prompts held out of training, scored after each iteration
    prompts: Positive | None  # training prompts per iteration (null: all after the held-out ones)
    recipe: Recipe
    by_iteration: dict[int, dict[str, Any]]  # overrides of these keys at given iterations

    @field_validator("by_iteration", mode="before")
    @classmethod
    def _merge_keys_of_one_iteration(cls, by_iteration: Any) -> Any:
        """`{3: ...}` from a YAML file and `3` from a command line's `+method.by_iteration.3.beta=5.0` (a string
        key) are the same iteration: their overrides are merged, the command line's last."""
        if not isinstance(by_iteration, Mapping):
            return by_iteration
        merged: dict[Any, Any] = {}
        for key, value in by_iteration.items():
            t = int(key) if str(key).isdigit() else key
            both = isinstance(merged.get(t), Mapping) and isinstance(value, Mapping)
            merged[t] = _merge(merged[t], value) if both else value
        return merged

    @field_validator("by_iteration")
    @classmethod
    def _by_iteration_are_iterations(cls, by_iteration: dict[int, Any]) -> dict[int, Any]:
        # Keys past the last iteration are allowed: a run of fewer iterations (the T ablation) runs a prefix of
        # the same schedule. Their overrides are still checked (`spin_bench.config`).
        bad = sorted(t for t in by_iteration if t < 0)
        if bad:
            raise ValueError(f"keys {bad} are not iterations (0, 1, ...)")
        for t, override in by_iteration.items():
            fixed = sorted(set(override) & FIXED_FOR_THE_RUN)
            if fixed:
                raise ValueError(f"{t}: {', '.join(fixed)} cannot change between iterations (the run's arm, length, "
                                 "held-out rows, data size and history are one for the whole run)")  # fmt: skip
        return by_iteration

    def at(self, t: int) -> Self:
        """This config at iteration t: `by_iteration[t]` merged over its keys, typed and checked again."""
        if t not in self.by_iteration:
            return self
        merged = _merge(dataclasses.asdict(self), self.by_iteration[t])
        return TypeAdapter(type(self)).validate_python(merged)


@dataclass(frozen=True, config=STRICT)
class PreferenceConfig(IterationConfig):
    """What the preference-loss methods share (conf/method_preference.yaml): TRL's DPO loss and its reference."""

    beta: PositiveNumber
    loss_type: LossType
    reference: Literal["previous", "base", "mixture"]  # p_t (SPIN), p_0, or alpha-SPIN's mixture of the two
    alpha: Fraction  # reference=mixture: log p_ref = alpha * log p_0 + (1 - alpha) * log p_t
    nll_weight: NonNegativeNumber  # > 0: add this times the NLL of the real (chosen) answers (RPO's regulariser)
    dpop_lambda: NonNegativeNumber  # > 0: DPO-Positive's penalty on a real answer's log-ratio falling under 0
    early_stop_below: NonNegativeNumber | None  # stop when the held-out reward accuracy falls under this

    @field_validator("dpop_lambda")
    @classmethod
    def _dpop_is_a_logistic_loss(cls, dpop_lambda: float, info: ValidationInfo) -> float:
        # DPO-Positive is the logistic loss with a penalty inside its sigmoid: it replaces TRL's whole loss, so it
        # does not combine with another loss type or with the NLL term
        if dpop_lambda and info.data.get("loss_type", "sigmoid") != "sigmoid":
            raise ValueError(f"needs loss_type=sigmoid (DPO-Positive is a penalised logistic loss), not "
                             f"{info.data['loss_type']!r}")  # fmt: skip
        if dpop_lambda and info.data.get("nll_weight", 0.0):
            raise ValueError("does not combine with nll_weight > 0 (two regularisers of the real answers' "
                             "likelihood); set one of them to 0")  # fmt: skip
        return dpop_lambda

    @field_validator("early_stop_below")
    @classmethod
    def _early_stop_needs_heldout(cls, below: float | None, info: ValidationInfo) -> float | None:
        if below is not None and info.data.get("heldout", 1) < 1:
            raise ValueError("needs held-out pairs to score (method.heldout >= 1)")
        return below

    def loss(self) -> PreferenceLoss:
        alpha = {"previous": 0.0, "base": 1.0, "mixture": self.alpha}[self.reference]
        return PreferenceLoss(self.beta, self.loss_type, alpha, self.nll_weight, self.dpop_lambda)


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


Rows = Sequence[Mapping[str, Any]]  # training rows: `{prompt, response}` for SFT, `{prompt, chosen, rejected}` pairs


@dataclasses.dataclass(frozen=True)
class IterationInputs:
    """The artefacts an iteration reads: the world's files and the checkpoints so far (p_0 = the base model)."""

    world: World
    checkpoints: Sequence[str]

    @property
    def t(self) -> int:
        """The 0-based iteration: it trains p_{t+1} from p_t = checkpoints[-1]."""
        return len(self.checkpoints) - 1


class Stages(Protocol):
    """The stages an iteration may call, bound by the pipeline to this run's config sections and cache."""

    def generate(self, checkpoint: str, prompts: Sequence[PromptRow]) -> list[GenerationRow]: ...

    def train(self, label: str, start: str, rows: Rows, recipe: Recipe, loss: PreferenceLoss | None = None,
              heldout: Rows = ()) -> Trained: ...  # fmt: skip

    def similarity(self, checkpoint: str, pairs: Rows) -> dict[str, float]: ...


@dataclasses.dataclass
class Iteration:
    """What one iteration produced: the trained checkpoint, its diagnostics (diagnostics.jsonl), the Trainer's
    per-logging-step metrics and a few of the pairs it trained on (a W&B table)."""

    checkpoint: str
    diagnostics: dict[str, Any]
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class Method(Protocol):
    config: ClassVar[type[IterationConfig]]
    splits: ClassVar[tuple[str, ...]]

    def iterate(self, config: Any, inputs: IterationInputs, stages: Stages) -> Iteration: ...


def split_heldout(rows: Sequence[Any], heldout: int, prompts: int | None, split: str) -> tuple[list[Any], list[Any]]:
    """(training rows, held-out rows): the last `heldout` rows of the split are never trained on; of the others,
    the first `prompts` are trained on (all when None). The held-out rows stay the same whatever `prompts` is, so
    a data-size ablation scores every size on the same held-out pairs."""
    problem = split_problem(len(rows), heldout, prompts, split)
    if problem:
        raise ValueError(problem)
    train, held = list(rows[: len(rows) - heldout]), list(rows[len(rows) - heldout :])
    return train[:prompts], held


def split_problem(size: int, heldout: int, prompts: int | None, split: str) -> str | None:
    """Why `heldout` and `prompts` do not fit a split of `size` rows (None when they do): checked at start-up
    against the configured split sizes, and again against the built world."""
    if heldout >= size:
        return f"method.heldout={heldout} leaves no training rows in {split} ({size} rows)"
    if prompts is not None and prompts > size - heldout:
        return f"method.prompts={prompts}: {split} has {size - heldout} training rows after method.heldout={heldout}"
    return None


def history_iterations(t: int, history: int | None) -> list[int]:
    """The iterations whose generations iteration `t` (0-based) trains on: the last `history` of them."""
    first = 0 if history is None else max(0, t - history + 1)
    return list(range(first, t + 1))


def step_budget(config: IterationConfig, t: int, train_prompts: int) -> int:
    """Optimizer steps of iteration t for every method: what SPIN takes on its pairs of the last `history`
    iterations, `epochs` passes at `batch_size` rows (the global batch) per step. SFT and DPO train exactly this
    many steps (their data cycles). The process count does not enter: it only splits each batch."""
    rows = train_prompts * len(history_iterations(t, config.history))
    return config.recipe.epochs * math.ceil(rows / config.recipe.batch_size)


def budgeted(config: IterationConfig, t: int, train_prompts: int) -> Recipe:
    """The iteration's recipe with its step budget."""
    return dataclasses.replace(config.recipe, max_steps=step_budget(config, t, train_prompts))


def round_rows(rows: Sequence[Any], config: IterationConfig, t: int, train_prompts: int) -> list[Any]:
    """The rows iteration t trains on when they do not come from the model (DPO's fixed pairs): the budget's rows
    that follow those of the earlier iterations, in order, wrapping round when the split runs out. With at least
    as many rows as the whole budget, no iteration repeats a row; with fewer, they cycle, as epochs would."""

    def budget_rows(s: int) -> int:  # iteration s's own recipe: `by_iteration` may change its batch or epochs
        at = config.at(s)
        return step_budget(at, s, train_prompts) * at.recipe.batch_size

    start = sum(budget_rows(s) for s in range(t))
    return [rows[(start + i) % len(rows)] for i in range(budget_rows(t))]


def heldout_similarity(stages: Stages, checkpoint: str, heldout: Rows) -> dict[str, float]:
    """CHES of the held-out pairs under the model the iteration starts from (`heldout/pairs/...`; none without
    held-out pairs)."""
    similarity = stages.similarity(checkpoint, heldout) if heldout else {}
    return {f"heldout/pairs/{k}": v for k, v in similarity.items()}


def summarize(trained: Trained) -> dict[str, Any]:
    """Per-iteration diagnostics from a training stage's statistics: the loss averaged over the stage, the
    optimizer steps, the DeepSpeed ZeRO stage that ran, TRL's reward and log-prob metrics averaged over every
    logging window of the stage (`train/...`) and at its last window (`train_last/...`), and on the held-out
    pairs after training (`heldout/...`)."""
    stats = trained.stats
    out = {"train/loss": stats["train_loss"], "train/steps": stats["steps"], "zero_stage": stats["zero_stage"]}
    history = stats.get("log_history") or []
    keys = sorted({k for entry in history for k in entry if k.startswith(("rewards/", "logps/"))})
    for key in keys:
        values = [entry[key] for entry in history if key in entry]
        out[f"train/{key}"], out[f"train_last/{key}"] = sum(values) / len(values), values[-1]
    out |= {f"heldout/{k}": v for k, v in stats.get("heldout", {}).items() if k.startswith(("rewards/", "logps/"))}
    return out


def iteration(trained: Trained, diagnostics: dict[str, Any], samples: list[dict[str, Any]] | None = None) -> Iteration:
    """The iteration's result: the method's own diagnostics with the training stage's."""
    return Iteration(trained.checkpoint, diagnostics | summarize(trained), trained.stats["log_history"], samples or [])
