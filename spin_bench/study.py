"""One arm of a study, top to bottom: world -> base model -> evaluate it -> T iterations of the method
(spin_bench/iteration.py), each evaluated and tracked -> table.

Each stage writes a content-addressed directory under `paths.cache_dir` and is skipped when its completed
output exists, so rerunning the same command after an interruption resumes where it stopped, and arms that
share a world, base model or evaluation (every arm of a study shares iteration 0) compute it once.
`iteration` in the results counts completed iterations: 0 is the base model, t + 1 the model after iteration t.
The default `spin-bench` runs the arms spin, sft and dpo as a Hydra multirun (conf/hydra/default.yaml); the
study's combined table and plot are written by spin_bench/report.py when the last arm ends.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import atomic_write_json, read_json
from spin_bench.evaluation import cli_command, embedded_task_names, evaluate, shell_line, task_dir, tasks_by_shots
from spin_bench.iteration import check_method, check_splits, run_iteration
from spin_bench.report import results_table
from spin_bench.runs import axis_labels, axis_values, check_run_dir, format_value
from spin_bench.tracking import Tracker, git_commit, versions
from spin_bench.world import build_world
from spin_bench.world.base import build_base
from spin_bench.world.model import check_checkpoint

log = logging.getLogger(__name__)


def check_config(cfg: DictConfig) -> None:
    """Fail on a config that cannot work before any expensive stage starts, naming the offending key."""
    if cfg.eval.suite == "embedded":
        if cfg.data.source != "embedded":
            raise ValueError("eval=embedded scores the embedded world's held-out splits: it needs data.source=embedded")
        known = embedded_task_names()
        unknown = sorted(set(cfg.eval.tasks) - known)
        if unknown:
            raise ValueError(f"eval.tasks names unknown embedded tasks {unknown}; known: {sorted(known)}")
    if not cfg.eval.tasks:
        raise ValueError("eval.tasks is empty: nothing would be evaluated")
    tasks_by_shots(cfg.eval)  # each task's shot count is a number >= 0
    check_method(cfg.method)
    task = str(cfg.optimized_metric).split("/")[0]
    if cfg.optimized_metric != "average" and ("/" not in cfg.optimized_metric or task not in cfg.eval.tasks):
        raise ValueError(
            f"optimized_metric must be `average` or `<task>/<metric>` with a task of eval.tasks "
            f"({sorted(cfg.eval.tasks)}), e.g. `{next(iter(cfg.eval.tasks))}/acc,none`; got {cfg.optimized_metric!r}"
        )
    if cfg.model.source == "scratch" and cfg.data.source != "embedded":
        raise ValueError("model.source=scratch trains the base model on the embedded world's sft_train split")
    if cfg.model.source == "pretrained":
        check_checkpoint(cfg.model.name_or_path, cfg.model.dtype)


def run(cfg: DictConfig) -> list[dict]:
    check_config(cfg)
    run_dir, cache_dir = Path(cfg.paths.run_dir).resolve(), Path(cfg.paths.cache_dir).resolve()
    resolved, axes = OmegaConf.to_container(cfg, resolve=True), axis_values(cfg)
    info_path = run_dir / "run_info.json"
    check_run_dir(read_json(info_path) if info_path.is_file() else None, resolved, run_dir)
    info = {"versions": versions(), "git_commit": git_commit(Path(__file__).resolve().parents[1]), "axes": axes,
            "config": resolved}  # fmt: skip
    atomic_write_json(info_path, info)
    identity = {"study": cfg.study, "method": cfg.method.name, "seed": int(cfg.seed)}
    labels = axis_labels(list(axes))
    tags = [cfg.data.name, cfg.model.name, *(f"{labels[k]}={format_value(v)}" for k, v in axes.items())]
    config = {**resolved, "run_info": {k: v for k, v in info.items() if k != "config"}}
    tracker = Tracker(cfg.logger, run_dir, identity, config, tags=tags)
    failed = True
    iterations = cfg.method.iterations
    try:
        log.info("[world] %s (%s)", cfg.data.name, cfg.data.source)
        world = build_world(cfg.data, cache_dir)
        check_splits(cfg.method, world)
        log.info("[base] %s", cfg.model.name)
        base = build_base(cfg.model, world, cfg.train, cache_dir, cfg.seed)
        log.info("[iteration 0/%d] evaluate the base model %s", iterations, base)
        rows = tracker.log_iteration(0, evaluate(base, cfg.eval, world, cfg.model, cache_dir), base)
        checkpoints, steps_done = [base], 0
        for t in range(iterations):
            log.info("[iteration %d/%d] %s (%s)", t + 1, iterations, cfg.method.name, cfg.method.kind)
            result = run_iteration(cfg, world, checkpoints, cache_dir)
            checkpoints.append(result.checkpoint)
            diagnostics = result.diagnostics
            stop = early_stop(cfg.method, diagnostics)
            metrics = evaluate(result.checkpoint, cfg.eval, world, cfg.model, cache_dir)
            rows += tracker.log_iteration(t + 1, metrics, result.checkpoint, diagnostics | {"early_stop": stop})
            tracker.log_training(result.history, steps_done)
            tracker.log_samples(t + 1, result.samples)
            steps_done += diagnostics["train/steps"]
            if stop:
                log.warning(
                    "early stop after iteration %d: held-out reward accuracy %.3f < method.early_stop_below=%s",
                    t + 1, diagnostics["heldout/rewards/accuracies"], cfg.method.early_stop_below,
                )  # fmt: skip
                break
        failed = False
    finally:
        tracker.finish(failed=failed)
    print(results_table(tracker.store.rows()))
    print(f"\nresults: {tracker.store.path}\nlast checkpoint: {checkpoints[-1]}\nworld: {world.root}")
    if len(tasks_by_shots(cfg.eval)) == 1:
        command = cli_command(checkpoints[-1], cfg.eval, cfg.model, task_dir(cfg.eval, world, cache_dir))
        print(f"score any checkpoint the same way with the lm_eval CLI:\n  {shell_line(command)}")
    return rows


def early_stop(method: DictConfig, diagnostics: dict) -> bool:
    """SPIN's convergence signal: the trained model no longer tells held-out real answers from generated ones."""
    if method.early_stop_below is None:
        return False
    return diagnostics["heldout/rewards/accuracies"] < method.early_stop_below


def final_score(rows: list[dict], metric: str) -> float | None:
    """The run's score at its last iteration, in %: `average` (the mean over task metrics, as the study table's
    last column) or `<task>/<metric>`. None when the run logged nothing."""
    if not rows:
        return None
    last = max(r["iteration"] for r in rows)
    scores = {f"{r['task']}/{r['metric']}": 100 * r["value"] for r in rows if r["iteration"] == last}
    if metric == "average":
        return sum(scores.values()) / len(scores)
    if metric not in scores:
        raise ValueError(f"optimized_metric={metric!r} is not among this run's metrics: {sorted(scores)}")
    return scores[metric]
