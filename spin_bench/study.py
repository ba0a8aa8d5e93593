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

from spin_bench.cache import atomic_write_json
from spin_bench.evaluation import cli_command, embedded_task_names, evaluate, shell_line, task_dir, tasks_by_shots
from spin_bench.iteration import check_method, check_splits, run_iteration
from spin_bench.report import results_table
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
    if cfg.model.source == "scratch" and cfg.data.source != "embedded":
        raise ValueError("model.source=scratch trains the base model on the embedded world's sft_train split")
    if cfg.model.source == "pretrained":
        check_checkpoint(cfg.model.name_or_path, cfg.model.dtype)


def run(cfg: DictConfig) -> list[dict]:
    check_config(cfg)
    run_dir, cache_dir = Path(cfg.paths.run_dir).resolve(), Path(cfg.paths.cache_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"versions": versions(), "git_commit": git_commit(Path(__file__).resolve().parents[1])}
    atomic_write_json(run_dir / "run_info.json", info)
    config = {**OmegaConf.to_container(cfg, resolve=True), "run_info": info}
    identity = {"study": cfg.study, "method": cfg.method.name, "seed": int(cfg.seed)}
    tracker = Tracker(cfg.logger, run_dir, identity, config, tags=[cfg.data.name, cfg.model.name])
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
