"""conf/engine: how training runs (HF Trainer + DeepSpeed ZeRO preset, precision); the typed recipe that every
training stage states its budget with (the base stage's in conf/model, each method's in conf/method); and how
every stage loads a checkpoint (`Loading`: dtype, revision, remote code, part of the cache key of every stage
that reads one; `check_checkpoint`: a local checkpoint that cannot load fails at start-up).

Light on purpose (no torch): `spin_bench.config` validates every section at start-up, before the heavy libraries
are imported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, Strict
from pydantic.dataclasses import dataclass

from spin_bench.paths import is_local_path
from spin_bench.schema import STRICT, Flag, Fraction, NonNegativeNumber, Positive, PositiveNumber, execution_only

Dtype = Literal["float32", "bfloat16", "float16"]
# HF Trainer's names (transformers' SchedulerType and OptimizerNames; a test checks they are still among them):
# the schedulers that need no scheduler-specific arguments, the optimizers that need no extra package.
Scheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                    "inverse_sqrt"]  # fmt: skip
Optimizer = Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop"]
# TRL DPO losses that apply to one (chosen, rejected) pair per prompt, as SPIN's pairs are.
LossType = Literal["sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
                   "apo_zero", "apo_down", "sigmoid_norm"]  # fmt: skip
SCHEDULERS, OPTIMIZERS = get_args(Scheduler), get_args(Optimizer)
NOT_IN_THE_RESULT = execution_only("engine")


@dataclass(frozen=True, config=STRICT)
class EngineConfig:
    """The training engine. `deepspeed` is the DeepSpeed config dict handed to HF Trainer; its "auto" values are
    filled in from the TrainingArguments, so batch size, accumulation, clipping and precision are stated once."""

    name: str
    precision: Literal["fp32", "bf16", "fp16"]  # bf16 is slower than fp32 on CPUs without AMX
    gradient_accumulation_steps: Positive
    activation_checkpointing: Flag
    logging_steps: Positive
    progress_bar: Flag
    report_to: list[str]  # the Trainer's own integrations; tracking goes through spin_bench.tracking
    deepspeed: dict[str, Any] | None
    checkpoint_steps: Positive | None  # a mid-stage checkpoint every this many optimizer steps (null: none)
    checkpoints_kept: Positive  # the newest complete mid-stage checkpoints kept; older ones are deleted
    timeout_s: PositiveNumber  # the longest any collective waits for a rank that is alive but stuck

    def spec(self) -> dict[str, Any]:
        """What changes the trained weights: part of every training stage's cache key. How often checkpoints are
        taken, how long ranks wait, and progress bars do not."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_IN_THE_RESULT}

    def micro_batch(self, recipe: Recipe, processes: int = 1) -> int:
        """Rows per forward pass and process: the recipe's global batch split over processes and accumulation
        steps, so that the number of processes never changes the experiment."""
        split = processes * self.gradient_accumulation_steps
        if recipe.batch_size % split:
            raise ValueError(f"batch_size {recipe.batch_size} is not divisible by {processes} processes x "
                             f"engine.gradient_accumulation_steps {self.gradient_accumulation_steps}")  # fmt: skip
        return recipe.batch_size // split


@dataclass(frozen=True, config=STRICT)
class Recipe:
    """A training stage's budget and optimizer. `batch_size` is the global batch: rows per optimizer step, over
    all processes and accumulation steps together."""

    epochs: Positive
    batch_size: Positive
    learning_rate: PositiveNumber
    lr_scheduler: Scheduler
    warmup_ratio: Annotated[float, Strict(), Field(ge=0, lt=1)]
    weight_decay: NonNegativeNumber
    optimizer: Optimizer
    max_grad_norm: PositiveNumber
    max_length: Positive  # tokens per training sequence (prompt + answer)
    max_steps: Positive | None = None  # stop after this many optimizer steps (null: `epochs` decide)


@dataclass(frozen=True, config=STRICT)
class Plateau:
    """Train until the held-out loss plateaus: it is evaluated after every epoch, and training stops once it has
    improved by no more than `min_delta` (nats per token) `patience` evaluations in a row (HF Trainer's
    EarlyStoppingCallback); the recipe's `epochs` is then the cap."""

    min_delta: NonNegativeNumber
    patience: Positive


@dataclass(frozen=True, config=STRICT)
class PreferenceLoss:
    """The pairwise loss of a preference stage: TRL's `beta` and `loss_type`, and the reference it measures
    against: `reference_alpha` 0 is the stage's starting model (SPIN's p_t), 1 the base model, between them the
    geometric mixture alpha * log p_base + (1 - alpha) * log p_start (alpha-SPIN)."""

    beta: PositiveNumber
    loss_type: LossType
    reference_alpha: Fraction = 0.0
    nll_weight: NonNegativeNumber = 0.0  # > 0: plus this times TRL's `sft` loss (NLL of the chosen answers), as RPO
    dpop_lambda: NonNegativeNumber = 0.0  # > 0: DPO-Positive's penalty inside the sigmoid (PositiveDPOTrainer)


@dataclass(frozen=True, config=STRICT)
class Loading:
    """The settings that change what a loaded checkpoint computes."""

    dtype: Dtype = "float32"
    revision: str | None = None
    trust_remote_code: Flag = False

    def spec(self) -> dict[str, Any]:
        """Part of the cache key of every stage that loads a checkpoint."""
        return {"dtype": self.dtype, "revision": self.revision, "remote_code": self.trust_remote_code}


@dataclasses.dataclass(frozen=True)
class Trained:
    """What a training stage produced: the checkpoint (a standard HF directory) and its statistics."""

    checkpoint: str
    stats: dict[str, Any]


def check_checkpoint(path: str | Path) -> None:
    """Fail early, naming the problem, on a local checkpoint that cannot load."""
    if not is_local_path(path):  # a hub id: the hub checks it
        return
    local = Path(path).expanduser()
    if not (local / "config.json").is_file():
        raise FileNotFoundError(f"{local} is not an HF model directory (no config.json)")
    if not any(local.glob("*.safetensors")):
        raise FileNotFoundError(f"{local} has no .safetensors weights (pickle weights are refused)")
