"""Training through TRL on HF Trainer's DeepSpeed integration, and the cached training stage.

The DeepSpeed config comes from conf/engine/<preset>.yaml (ZeRO stage, offload); its "auto" values are filled in
by HF Trainer from the TrainingArguments built here, so batch size, precision and clipping are stated once. The
recipe (learning rate, epochs, batch size, schedule) comes from the caller: the base stage's in conf/model, the
methods' in conf/method.

- `sft`: TRL's SFTTrainer on conversational prompt/completion rows, loss on the completion only.
- `preference`: TRL's DPOTrainer (SPIN and DPO), the reference's log-probs precomputed before the first step, so
  no second model is held; `MixedReferenceDPOTrainer` mixes in the base model's for alpha-SPIN, and
  `PositiveDPOTrainer` adds DPO-Positive's penalty.
- `train_stage`: one of them from a starting checkpoint, as a cached stage (spin_bench/stages.py), on every rank
  of a multi-process run, resuming from its newest complete mid-stage checkpoint (`StageCheckpoints`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, load_dataset
from torch.utils.data import DataLoader
from transformers import EarlyStoppingCallback, PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.integrations.deepspeed import unset_hf_deepspeed_config
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer
from trl.trainer.utils import add_fused_lm_head

from spin_bench import preemption, ranks
from spin_bench.engine.checkpoint import load_checkpoint
from spin_bench.engine.config import EngineConfig, Loading, Plateau, PreferenceLoss, Recipe, Trained
from spin_bench.stages import (
    RESUMABLE,
    SCRATCH,
    atomic_write_json,
    checkpoint_fingerprint,
    content_hash,
    read_json,
    run_stage,
    write_jsonl,
)

log = logging.getLogger(__name__)


def ensure_process_group_env() -> None:
    """Let a plain `python`/`spin-bench` run initialise DeepSpeed as a one-process job.

    Launchers (torchrun, accelerate launch) set these variables; without them DeepSpeed looks for MPI. Only what
    is missing is filled in, so a launched multi-process run is left untouched.
    """
    if "RANK" in os.environ:
        return
    with socket.socket() as s:  # a free port, so that two local jobs never collide on MASTER_PORT
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def score_label_positions_only() -> None:
    """Have TRL's fused LM head score only the positions that carry a label, on a CPU too.

    TRL 1.16 gathers the labelled positions before its chunked log-softmax only on Triton devices (CUDA, XPU).
    Elsewhere it scores every position, because on a compiling device (Neuron) a varying number of positions
    would recompile its tiles at every batch. A CPU compiles nothing, and in the embedded base stage only 29% of
    the positions carry a label (prompts of 38.5 tokens, answers of 25.8, and padding): scoring those alone took
    200 base-stage steps from 30.6 to 25.1 s (bench/fused_head.py). The sums are the same; their rounding differs,
    as with any change of shapes, so the trained models differ at float level.

    By hand because TRL has no option for it: the choice is its private `_use_triton`, which the fused head's
    module (`trl.trainer.utils`) imported by name. Rebinding it there changes only that choice: the kernels keep
    their own binding, so they run Triton only where it is. Idempotent."""
    import trl
    from trl.trainer import utils

    if not callable(getattr(utils, "_use_triton", None)):
        raise RuntimeError(f"TRL {trl.__version__} has no trl.trainer.utils._use_triton, which spin-bench rebinds "
                           "to score only the labelled positions on a CPU: install pyproject.toml's TRL")  # fmt: skip
    on_triton = getattr(utils._use_triton, "on_triton", utils._use_triton)

    def compact(device: torch.device) -> bool:
        return device.type == "cpu" or bool(on_triton(device))

    compact.on_triton = on_triton  # type: ignore[attr-defined]
    utils._use_triton = compact


def trainer_arguments(engine: EngineConfig, recipe: Recipe, output_dir: Path, seed: int) -> dict[str, Any]:
    """Arguments shared by every TRL config (SFTConfig, DPOConfig): engine from `engine`, budget from `recipe`."""
    return dict(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps or -1,
        per_device_train_batch_size=engine.micro_batch(recipe, ranks.world_size()),
        gradient_accumulation_steps=engine.gradient_accumulation_steps,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=recipe.weight_decay,
        optim=recipe.optimizer,
        max_grad_norm=recipe.max_grad_norm,
        bf16=engine.precision == "bf16",
        fp16=engine.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        deepspeed=engine.deepspeed,
        activation_checkpointing=engine.activation_checkpointing,
        logging_steps=engine.logging_steps,
        # mid-stage checkpoints (StageCheckpoints); the stage saves its final model itself
        save_strategy="steps" if engine.checkpoint_steps else "no",
        save_steps=engine.checkpoint_steps or 1,
        ddp_timeout=round(engine.timeout_s),
        report_to=list(engine.report_to),
        disable_tqdm=not engine.progress_bar,
        dataloader_num_workers=0,
    )


def conversation(prompt: str, response: str) -> dict[str, list[dict[str, str]]]:
    """A row in TRL's conversational prompt/completion format (SFT loss on the completion only)."""
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": response}]}


def preference_row(pair: Mapping[str, str]) -> dict[str, Any]:
    """TRL's conversational preference format: a user prompt, an assistant chosen and rejected answer."""
    return {"prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}]}  # fmt: skip


def shared_dataset(rows: Sequence[Mapping[str, Any]], work: Path, name: str) -> Dataset:
    """`rows` as a dataset backed by a file in the stage's work directory, which every rank reads.

    Not `Dataset.from_list`: TRL caches what it derives from a dataset (tokens, the precomputed reference
    log-probs) beside the dataset's files, and under torchrun the other ranks read rank 0's cache; an in-memory
    dataset's cache is a private temporary directory of rank 0's, and rank 1 dies looking for it."""
    path = work / "data" / f"{name}.jsonl"
    ranks.on_main(lambda: write_jsonl(path, rows))
    with ranks.main_first():
        return load_dataset("json", data_files=str(path), split="train", cache_dir=str(work / SCRATCH))


def sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, engine: EngineConfig,
        recipe: Recipe, work: Path, seed: int, heldout: Dataset | None = None,
        plateau: Plateau | None = None) -> dict[str, Any]:  # fmt: skip
    """Supervised fine-tuning on conversational prompt/completion rows (loss on completion tokens only).

    With `heldout` rows their loss is evaluated after every epoch (`eval_loss` in the log history) and once at
    the end (`heldout_loss`); with a `plateau` too, training stops once that loss stops improving (HF's
    EarlyStoppingCallback on `eval_loss`). The trained model is saved to `work/model` as an HF directory
    (through `Trainer.save_model`, which gathers ZeRO-3's partitioned parameters); mid-stage checkpoints go to
    `work/resume`. Returns training statistics.
    """
    ensure_process_group_env()
    score_label_positions_only()
    evaluating = {"eval_strategy": "epoch", "metric_for_best_model": "eval_loss", "greater_is_better": False,
                  "per_device_eval_batch_size": engine.micro_batch(recipe, ranks.world_size())}  # fmt: skip
    args = SFTConfig(
        **trainer_arguments(engine, recipe, Path(work) / RESUMABLE, seed),
        **(evaluating if heldout else {}),
        max_length=recipe.max_length,
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=1,
    )
    callbacks = [EarlyStoppingCallback(plateau.patience, plateau.min_delta)] if heldout and plateau else []
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=heldout,
                         processing_class=tokenizer, callbacks=callbacks)  # fmt: skip
    result = fit(trainer, engine)
    log.info("SFT finished: %d steps, train loss %.4f", result.global_step, result.training_loss)
    stats = _run_stats(trainer, result)
    if heldout is not None:
        stats["heldout_curve"] = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    return _save(trainer, Path(work) / "model") | stats


class MixedReferenceDPOTrainer(DPOTrainer):
    """DPOTrainer whose precomputed reference log-probs are `alpha * log p_base + (1 - alpha) * log p_start`.

    Written by hand because TRL takes its reference from one model (`ref_model`, or the policy before training),
    while alpha-SPIN (Alami et al. 2024) regularises towards a geometric mixture of the base model and the
    iteration's starting model; alpha = 1 is a fixed base-model reference. TRL computes the starting model's
    log-probs as usual; the base model's come from TRL's own `compute_ref_log_probs` on the same batches.
    """

    def __init__(self, *args: Any, base_model: PreTrainedModel, alpha: float, **kwargs: Any):
        add_fused_lm_head(base_model)  # as DPOTrainer prepares its own ref_model for `compute_ref_log_probs`
        self.base_model, self.alpha = base_model, alpha
        super().__init__(*args, **kwargs)

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        dataset = super()._precompute_ref_logps(dataset, name, batch_size)
        columns = ("ref_chosen_logps", "ref_rejected_logps")
        base = self.base_model.to(self.accelerator.device).eval()
        loader = DataLoader(dataset.remove_columns(list(columns)), batch_size, collate_fn=self.data_collator)
        chosen, rejected = [], []
        for batch in loader:
            base_chosen, base_rejected = self.compute_ref_log_probs(base, batch)
            chosen.append(base_chosen.cpu())
            rejected.append(base_rejected.cpu())
        base_logps = {"ref_chosen_logps": torch.cat(chosen), "ref_rejected_logps": torch.cat(rejected)}
        mixed = {
            column: (self.alpha * base_logps[column] + (1 - self.alpha) * torch.tensor(dataset[column])).tolist()
            for column in columns
        }
        dataset = dataset.remove_columns(list(columns))
        for column, values in mixed.items():
            dataset = dataset.add_column(column, values)
        return dataset


class PositiveDPOTrainer(DPOTrainer):
    """DPOTrainer with DPO-Positive's loss (Pal et al. 2024): with r = log p(y|x) - log p_ref(y|x) per answer,

        -log sigmoid(beta * [(r_chosen - r_rejected) - dpop_lambda * max(0, -r_chosen)])

    the logistic loss, penalised inside the sigmoid whenever the chosen answer's likelihood falls under the
    reference's. Written by hand because TRL has no DPOP loss and computes its losses inline in `_compute_loss`.
    TRL's forward pass, precomputed reference log-probs and logged metrics (rewards, accuracies, log-probs) are
    kept: a forward hook keeps the batch's per-token log-probs from TRL's own forward, and the penalised loss
    replaces TRL's logistic one (PreferenceConfig allows DPOP with loss_type sigmoid alone, no NLL term).
    """

    def __init__(self, *args: Any, dpop_lambda: float, **kwargs: Any):
        self.dpop_lambda = dpop_lambda
        super().__init__(*args, **kwargs)
        # what the penalised loss below assumes of TRL's: one logistic loss, plain DPO log-ratios, and reference
        # log-probs in the batch
        plain = (self.loss_types == ["sigmoid"] and self.ld_alpha is None and not self.use_weighting
                 and self.f_divergence_type == "reverse_kl" and self.precompute_ref_logps)  # fmt: skip
        if not plain:
            raise ValueError(f"DPO-Positive replaces TRL's loss with a penalised logistic one: it needs loss_type "
                             f"['sigmoid'] (got {self.loss_types}), no ld_alpha, use_weighting or f-divergence, "
                             "and precompute_ref_log_probs")  # fmt: skip

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        forwards: list[Any] = []
        hook = model.register_forward_hook(lambda module, args, outputs: forwards.append(outputs))
        try:
            result = super()._compute_loss(model, inputs, return_outputs)
        finally:
            hook.remove()
        mask = inputs["completion_mask"][..., 1:]
        logps = (forwards[0].log_probs[:, -mask.size(1) :] * mask).sum(dim=1)  # as TRL sums them, answer tokens only
        chosen, rejected = logps.chunk(2, dim=0)  # TRL's batch is [chosen, rejected]
        chosen_ratio = chosen - inputs["ref_chosen_logps"]
        margin = chosen_ratio - (rejected - inputs["ref_rejected_logps"])
        penalty = self.dpop_lambda * torch.relu(-chosen_ratio)
        loss = -torch.nn.functional.logsigmoid(self.beta * (margin - penalty)).mean()
        return (loss, result[1]) if return_outputs else loss


class MixedReferencePositiveDPOTrainer(PositiveDPOTrainer, MixedReferenceDPOTrainer):
    """DPO-Positive against alpha-SPIN's mixture reference (or the base model's, alpha = 1)."""


def preference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Dataset, engine: EngineConfig,
               recipe: Recipe, loss: PreferenceLoss, work: Path, seed: int, heldout: Dataset | None = None,
               base_model: PreTrainedModel | None = None) -> dict[str, Any]:  # fmt: skip
    """SPIN's and DPO's logistic (or hinge, IPO, ...) loss on conversational prompt/chosen/rejected rows.

    SPIN is DPO with chosen = the real answer, rejected = the model's own, and the reference = the model the
    iteration starts from. That reference is `model` itself: its log-probabilities of every pair are computed
    once before the first step (`precompute_ref_log_probs`), so no second model sits in memory. With `base_model`
    the reference is the mixture `alpha * log p_base + (1 - alpha) * log p_model` (MixedReferenceDPOTrainer); with
    `loss.dpop_lambda` > 0 the loss is DPO-Positive's (PositiveDPOTrainer).
    Log-probs are summed over response tokens only. After training, the `heldout` pairs (if any) are scored:
    TRL's eval metrics (reward accuracy, margins, log-probs) under the same reference. The trained model is saved
    to `work/model` as `sft` does; the statistics include the logged metrics of every logging step and the
    reference log-probs of every pair.
    """
    ensure_process_group_env()
    score_label_positions_only()
    args = DPOConfig(
        **trainer_arguments(engine, recipe, Path(work) / RESUMABLE, seed),
        beta=loss.beta,
        loss_type=[loss.loss_type, "sft"] if loss.nll_weight else [loss.loss_type],
        loss_weights=[1.0, loss.nll_weight] if loss.nll_weight else None,
        max_length=recipe.max_length,
        precompute_ref_log_probs=True,
        # the held-out pairs in one batch per process: TRL logs the mean of its per-batch means, which with batches
        # of 32 and 18 pairs would weigh each of the 18 almost twice; one batch makes it the share over the pairs
        # (exact on one process; on P, accelerate repeats up to P - 1 pairs to even out the processes' batches, and
        # TRL's gather keeps them). The batch must fit in memory: at 7B, method.heldout / P pairs per device.
        per_device_eval_batch_size=math.ceil(len(heldout) / ranks.world_size()) if heldout is not None else 1,
        dataset_num_proc=1,
    )
    kwargs: dict[str, Any] = dict(model=model, ref_model=None, args=args, train_dataset=pairs, eval_dataset=heldout,
                                  processing_class=tokenizer)  # fmt: skip
    if base_model is not None:
        kwargs |= dict(base_model=base_model, alpha=loss.reference_alpha)
    if loss.dpop_lambda:
        kwargs["dpop_lambda"] = loss.dpop_lambda
    trainer_class = {(False, False): DPOTrainer, (True, False): MixedReferenceDPOTrainer,
                     (False, True): PositiveDPOTrainer, (True, True): MixedReferencePositiveDPOTrainer}  # fmt: skip
    trainer = trainer_class[base_model is not None, bool(loss.dpop_lambda)](**kwargs)
    result = fit(trainer, engine)
    log.info("preference training finished: %d steps, loss %.4f", result.global_step, result.training_loss)
    # lists, not datasets' lazy Column objects: the statistics are saved as JSON
    reference = {side: list(trainer.train_dataset[f"ref_{side}_logps"]) for side in ("chosen", "rejected")}
    stats = _run_stats(trainer, result) | {"reference_logps": reference}
    if heldout is not None:
        scores = trainer.evaluate()
        stats["heldout"] = {key.removeprefix("eval_"): value for key, value in scores.items()}
    return _save(trainer, Path(work) / "model") | stats


CHECKPOINT_MARKER = "spin_bench_checkpoint.json"
_STEP = re.compile(r"^checkpoint-(\d+)$")


class StageCheckpoints(TrainerCallback):
    """Mid-stage checkpoints a rerun can trust, and the agreed stop on a signal.

    HF Trainer writes `checkpoint-<step>` (model, optimizer with its ZeRO shards, scheduler, every rank's RNG,
    trainer state) every `engine.checkpoint_steps` steps, but not atomically and with no record of how many ranks
    its shards are for. Once every rank has written its part, rank 0 marks it complete (`CHECKPOINT_MARKER`,
    with the world size) and deletes all but the newest `engine.checkpoints_kept` complete ones. At the end of
    each step every rank asks whether any of them received a signal (spin_bench/preemption.py); if so all of
    them checkpoint at that same step and stop.
    """

    def __init__(self, directory: Path, kept: int):
        self.directory, self.kept = Path(directory), kept
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if preemption.stop_agreed():
            control.should_save = control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ranks.barrier()  # every rank's shards and RNG state are on disk
        if ranks.is_main():
            marker = {"step": state.global_step, "world_size": ranks.world_size()}
            atomic_write_json(self.directory / f"checkpoint-{state.global_step}" / CHECKPOINT_MARKER, marker)
            for stale in complete_checkpoints(self.directory)[: -self.kept]:
                shutil.rmtree(stale, ignore_errors=True)
        ranks.barrier()


def complete_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints in `directory`, oldest first."""
    found = [
        p for p in Path(directory).glob("checkpoint-*") if _STEP.match(p.name) and (p / CHECKPOINT_MARKER).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def resume_point(directory: Path) -> str | None:
    """The newest complete checkpoint written by as many ranks as this run has (rank 0 chooses, every rank gets
    it). Incomplete ones (a crash while writing) are deleted; ones of another world size are set aside, with a
    warning, as their ZeRO shards cannot be loaded by this many ranks."""
    choice = None
    if ranks.is_main():
        complete = complete_checkpoints(directory)
        for partial in set(Path(directory).glob("checkpoint-*")) - set(complete):
            shutil.rmtree(partial, ignore_errors=True)
        for path in reversed(complete):
            written_by = read_json(path / CHECKPOINT_MARKER)["world_size"]
            if written_by == ranks.world_size():
                choice = str(path)
                break
            log.warning("%s was written by %d ranks, not %d: not resuming from it", path, written_by,
                        ranks.world_size())  # fmt: skip
    return ranks.broadcast(choice)


def fit(trainer: Any, engine: EngineConfig) -> Any:
    """`trainer.train()`, resumed from the newest usable checkpoint; `Preempted` once a signal's checkpoint is
    written (the stage is then left unpublished, for the rerun to resume)."""
    directory = Path(trainer.args.output_dir)
    checkpoints = StageCheckpoints(directory, engine.checkpoints_kept)
    trainer.add_callback(checkpoints)
    resume = resume_point(directory)
    if resume:
        log.info("resuming from %s", resume)
    with preemption.checkpointable():
        result = trainer.train(resume_from_checkpoint=resume)
    if checkpoints.stopped_at is not None:
        where = f"{ranks.current_stage()}, checkpointed at step {checkpoints.stopped_at}"
        raise preemption.Preempted(preemption.requested() or signal.SIGTERM, where)
    return result


def _run_stats(trainer: Any, result: Any) -> dict[str, Any]:
    """Final loss, optimizer steps, and what was logged at every logging step (TRL's loss, rewards, log-probs).

    HF Trainer's final `training_loss` averages the logged losses over ranks but adds the steps after the last
    log from this rank alone; the mean over ranks is the loss of the global batches, as one process computes it.
    """
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    loss = sum(ranks.gather(result.training_loss)) / ranks.world_size()
    return {"train_loss": loss, "steps": result.global_step, "log_history": history}


def engine_stats(trainer: Any) -> dict[str, Any]:
    """What actually ran: whether DeepSpeed drove the step and with which ZeRO stage (recorded with each stage)."""
    plugin = trainer.accelerator.state.deepspeed_plugin if trainer.is_deepspeed_enabled else None
    return {"deepspeed": trainer.is_deepspeed_enabled, "zero_stage": plugin.zero_stage if plugin else None}


def _save(trainer: Any, directory: Path) -> dict[str, Any]:
    """Save model and tokenizer (gathering ZeRO-3 shards: every rank takes part, rank 0 writes), drop the engine.

    A ZeRO-3 Trainer also leaves a process-global DeepSpeed config behind, under which every later
    `from_pretrained` in this process would build a partitioned (empty) model: it is unset here.
    """
    trainer.save_model(str(directory))
    stats = engine_stats(trainer)
    trainer.accelerator.free_memory()
    unset_hf_deepspeed_config()
    return stats


def train_stage(label: str, start: str, rows: Sequence[Mapping[str, Any]], recipe: Recipe, *, engine: EngineConfig,
                loading: Loading, seed: int, cache_dir: Path, loss: PreferenceLoss | None = None,
                heldout: Sequence[Mapping[str, Any]] = (), base: str | None = None,
                plateau: Plateau | None = None) -> Trained:  # fmt: skip
    """Train from `start` on `rows` (`{prompt, response}` for SFT; `{prompt, chosen, rejected}` pairs with a
    `loss`), scoring the `heldout` rows of the same kind (SFT: after every epoch, and stopping at a `plateau`),
    cached by everything that makes the result: starting weights, data, recipe (with its step budget), loss and
    reference, stopping rule, engine, seed. `label` names the stage directory (the method's kind, or `base`).
    Every rank of a multi-process run trains; the process count is not part of the key, as it does not change
    the result."""
    # A mixture of the starting model and the base model is the starting model itself when the two are the same
    # (iteration 0): alpha 0 then, so every reference choice shares that stage.
    if loss is not None and start == base:
        loss = dataclasses.replace(loss, reference_alpha=0.0)
    mixing = loss is not None and loss.reference_alpha > 0
    inputs = {
        "kind": label,
        "start": checkpoint_fingerprint(start),
        "reference": {"alpha": loss.reference_alpha if loss else 0.0,
                      "base": checkpoint_fingerprint(base) if mixing and base else None},
        "loading": loading.spec(),
        "data": content_hash(list(rows), list(heldout), length=16),
        "recipe": dataclasses.asdict(recipe),
        "loss": dataclasses.asdict(loss) if loss else None,
        "plateau": dataclasses.asdict(plateau) if plateau else None,
        "engine": engine.spec(),
        "seed": seed,
    }  # fmt: skip
    if ranks.device() == "cpu":  # `score_label_positions_only`: other rounding than TRL's every position there
        inputs["fused_head"] = "label positions"
    if loss is not None and heldout:  # held-out pairs scored in one batch (`preference`): those scored per batch redo
        inputs["heldout_scoring"] = "one batch"

    def build(work: Path) -> None:
        log.info("training %s from %s: %d rows, %s steps", label, start, len(rows), recipe.max_steps)
        if ranks.world_size() > 1 and len(rows) % recipe.batch_size:
            log.warning("%d rows are not a multiple of the batch %d: on %d ranks accelerate tops each epoch's last "
                        "batch up with rows from its start, so that step differs from one process's (docs/scale.md)",
                        len(rows), recipe.batch_size, ranks.world_size())  # fmt: skip
        model, tokenizer = load_checkpoint(start, loading)
        if loss is None:
            dataset = shared_dataset([conversation(r["prompt"], r["response"]) for r in rows], work, "train")
            held = (
                shared_dataset([conversation(r["prompt"], r["response"]) for r in heldout], work, "heldout")
                if heldout
                else None
            )
            stats = sft(model, tokenizer, dataset, engine, recipe, work, seed, held, plateau)
        else:
            base_model = load_checkpoint(base, loading)[0] if mixing and base else None
            pairs = shared_dataset([preference_row(p) for p in rows], work, "train")
            held = shared_dataset([preference_row(p) for p in heldout], work, "heldout") if heldout else None
            stats = preference(model, tokenizer, pairs, engine, recipe, loss, work, seed, heldout=held,
                               base_model=base_model)  # fmt: skip
        ranks.on_main(lambda: atomic_write_json(work / "train_stats.json", stats))

    directory = run_stage(cache_dir, "train", inputs, build, label, every_rank=True)
    return Trained(str(directory / "model"), read_json(directory / "train_stats.json"))
