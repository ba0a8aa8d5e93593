"""One run, top to bottom: world -> base model -> evaluate it -> T iterations of the method, each evaluated and
recorded.

Every stage writes a content-addressed directory under `paths.cache_dir` (spin_bench/stages.py) and is skipped
when its completed output exists, so rerunning the same command after an interruption resumes where it stopped,
and runs that share a world, base model or evaluation (every arm of a study shares iteration 0) compute it once.
`iteration` in the results counts completed iterations: 0 is the base model, t + 1 the model after iteration t.

Each stage gets its own config section and the artefacts it reads. The method's iterations get theirs too, plus
`BoundStages`: generation and training bound here to the run's other sections, so a method never sees them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spin_bench import ranks
from spin_bench.config import ConfigError, RunConfig, check_inputs
from spin_bench.data.rows import PromptRow
from spin_bench.data.world import World, build_world
from spin_bench.engine.config import PreferenceLoss, Recipe, Trained
from spin_bench.engine.train import train_stage
from spin_bench.evaluation.harness import cli_command, evaluate, shell_line, task_dir
from spin_bench.evaluation.probe import pair_similarity, probe, relative_to
from spin_bench.generation.config import GenerationRow
from spin_bench.generation.generate import generate
from spin_bench.methods.base import IterationConfig, IterationInputs, PreferenceConfig, split_problem
from spin_bench.model.base import base_diagnostics, build_base
from spin_bench.paths import axis_labels, format_value
from spin_bench.results import (
    MetricRow,
    ResultRow,
    average,
    diagnostics_store,
    git_commit,
    hardware,
    metric_key,
    results_store,
    set_aside_older_layout,
    versions,
    write_run_info,
)
from spin_bench.stages import LAYOUT
from spin_bench.tracking import Tracker, TrackingConfig

log = logging.getLogger(__name__)
CHECKOUT = Path(__file__).resolve().parents[1]  # the git checkout of an editable install (else no commit is found)


@dataclasses.dataclass(frozen=True)
class BoundStages:
    """The stages a method's iteration calls (methods.base.Stages), bound to this run's config sections."""

    config: RunConfig
    base: str  # p_0, the reference of `reference: base` and of alpha-SPIN's mixture

    def generate(self, checkpoint: str, prompts: Sequence[PromptRow]) -> list[GenerationRow]:
        return generate(checkpoint, prompts, self.config.generation, self.config.model.loading,
                        self.config.paths.cache_dir)  # fmt: skip

    def train(self, label: str, start: str, rows: Sequence[Mapping[str, Any]], recipe: Recipe,
              loss: PreferenceLoss | None = None, heldout: Sequence[Mapping[str, Any]] = ()) -> Trained:  # fmt: skip
        return train_stage(label, start, rows, recipe, engine=self.config.engine, loading=self.config.model.loading,
                           seed=self.config.seed, cache_dir=self.config.paths.cache_dir, loss=loss, heldout=heldout,
                           base=self.base)  # fmt: skip

    def similarity(self, checkpoint: str, pairs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        return pair_similarity(checkpoint, pairs, self.config.model.loading, self.config.paths.cache_dir)


@dataclasses.dataclass(frozen=True)
class RunResult:
    rows: list[ResultRow]  # what results.jsonl holds for this run, in the order logged
    checkpoints: list[str]  # p_0 (the base model) .. the last iterate
    world: World
    lm_eval_command: str | None  # the stock lm_eval command that scores a checkpoint as the run did


def run(config: RunConfig) -> RunResult:
    """Run (or resume) one run of a study into `config.paths.run_dir`."""
    check_inputs(config)
    ranks.init(config.engine.timeout_s)
    run_dir, cache_dir, loading = config.paths.run_dir, config.paths.cache_dir, config.model.loading
    main = ranks.is_main()  # only rank 0 writes the run's files and its W&B run; every rank runs every stage
    if main and (aside := set_aside_older_layout(run_dir)):
        log.warning("%s was written by an older layout of spin-bench: its files moved to %s", run_dir, aside)
    info = {"layout": LAYOUT, "versions": versions(), "git_commit": git_commit(CHECKOUT), "axes": config.axes,
            "processes": ranks.world_size(), "hardware": hardware(), "config": config.resolved}  # fmt: skip
    if main:
        write_run_info(run_dir, info)
    identity = {"study": config.study, "method": config.method.name, "seed": config.seed}
    results, diagnostics = results_store(run_dir), diagnostics_store(run_dir)
    labels = axis_labels(list(config.axes))
    tags = [config.data.name, config.model.name, *(f"{labels[k]}={format_value(v)}" for k, v in config.axes.items())]
    run_info = {k: v for k, v in info.items() if k != "config"}
    tracking = config.tracking if main else TrackingConfig(backend="none")
    tracker = Tracker(tracking, run_dir, identity, {**config.resolved, "run_info": run_info}, tags)

    def record(
        t: int, metrics: list[MetricRow], checkpoint: str, diagnosed: dict[str, Any] | None = None
    ) -> list[ResultRow]:
        rows = [ResultRow(**identity, iteration=t, **metric, checkpoint=checkpoint) for metric in metrics]  # type: ignore[typeddict-item]
        if main:
            results.upsert(rows)
            if diagnosed:
                diagnostics.upsert([{**identity, "iteration": t, **diagnosed}])
        scores = {metric_key(m["task"], m["metric"]): m["value"] for m in metrics}
        tracker.log_iteration(t, metrics, average(scores, config.evaluation.headline), diagnosed)
        return rows

    failed, iterations = True, config.method.iterations
    try:
        log.info("[world] %s (%s)", config.data.name, config.data.source)
        world = build_world(config.data, cache_dir)
        check_world(config.method, config.arm.splits, world)
        log.info("[base] %s", config.model.name)
        trained_base = build_base(config.model, world, config.engine, cache_dir, config.seed)
        base = trained_base.checkpoint
        tasks = task_dir(config.evaluation, world, cache_dir)
        log.info("[iteration 0/%d] evaluate the base model %s", iterations, base)
        answers = heldout_answers(world, config.method)  # whose log-probs every iteration's probe compares to p_0's
        base_probe = probe(base, answers, loading, cache_dir)
        diagnosed = base_diagnostics(trained_base, config.model) | relative_to(base_probe, base_probe)
        rows = record(0, evaluate(base, config.evaluation, tasks, loading, cache_dir), base, diagnosed)
        stages, checkpoints, steps_done = BoundStages(config, base), [base], 0
        for t in range(iterations):
            log.info("[iteration %d/%d] %s (%s)", t + 1, iterations, config.method.name, config.method.kind)
            method = config.method.at(t)
            result = config.arm.iterate(method, IterationInputs(world, tuple(checkpoints)), stages)
            checkpoints.append(result.checkpoint)
            stop = early_stop(method, result.diagnostics)
            metrics = evaluate(result.checkpoint, config.evaluation, tasks, loading, cache_dir)
            probed = relative_to(probe(result.checkpoint, answers, loading, cache_dir), base_probe)
            rows += record(t + 1, metrics, result.checkpoint, result.diagnostics | probed | {"early_stop": stop})
            tracker.log_training(result.history, steps_done)
            tracker.log_samples(t + 1, result.samples)
            steps_done += result.diagnostics["train/steps"]
            if stop:
                accuracy = result.diagnostics.get("heldout/rewards/accuracies", "(every pair degenerate)")
                log.warning("early stop after iteration %d: held-out reward accuracy %s < method.early_stop_below",
                            t + 1, accuracy)  # fmt: skip
                break
        ranks.leave()
        failed = False
    finally:
        tracker.finish(failed=failed)
    command = cli_command(checkpoints[-1], config.evaluation, tasks, loading)
    return RunResult(rows, checkpoints, world, shell_line(command) if command else None)


def heldout_answers(world: World, method: IterationConfig) -> list[dict[str, str]]:
    """The real answers the probe scores at every iteration: the embedded world's `valid` split (no stage trains
    on it), or a hub world's held-out SPIN prompts (the last `method.heldout` rows)."""
    if world.has("valid"):
        return [{"prompt": r["question"], "response": r["solution"]} for r in world.rows("valid")]
    rows = world.rows("spin_prompts")
    return [{"prompt": r["prompt"], "response": r["response"]} for r in rows[len(rows) - method.heldout :]]


def check_world(method: IterationConfig, splits: Sequence[str], world: World) -> None:
    """The held-out and data-size settings against the splits the world has (a hub world's sizes are known only
    once it is built; the embedded world's were checked at start-up)."""
    problems = [split_problem(len(world.rows(split)), method.heldout, method.prompts, split) for split in splits]
    if any(problems):
        raise ConfigError([p for p in problems if p])


def early_stop(method: IterationConfig, diagnostics: Mapping[str, Any]) -> bool:
    """SPIN's convergence signal: the trained model no longer tells held-out real answers from generated ones."""
    if not isinstance(method, PreferenceConfig) or method.early_stop_below is None:
        return False
    # no held-out accuracy with every held-out pair degenerate: the model gives every real answer itself
    return bool(diagnostics.get("heldout/rewards/accuracies", 0.0) < method.early_stop_below)
