"""A study, top to bottom: world -> base model -> evaluate iteration 0 -> track -> table.

Each stage writes a content-addressed directory under `paths.cache_dir` and is skipped when its completed
output exists, so rerunning the same command after an interruption resumes where it stopped, and studies that
share a world, base model or evaluation share the work. The self-play methods plug in after the base stage as
iterations 1..T, logged the same way (`iteration` counts completed self-play iterations; 0 is the base model).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import atomic_write_json
from spin_bench.evaluation import cli_command, embedded_task_names, evaluate, shell_line, task_dir, tasks_by_shots
from spin_bench.tracking import Tracker, git_commit, results_table, versions
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
    try:
        log.info("[1/3] world: %s (%s)", cfg.data.name, cfg.data.source)
        world = build_world(cfg.data, cache_dir)
        log.info("[2/3] base model: %s", cfg.model.name)
        base = build_base(cfg.model, world, cfg.train, cache_dir, cfg.seed)
        log.info("[3/3] evaluate iteration 0: %s", base)
        metrics = evaluate(base, cfg.eval, world, cfg.model, cache_dir)
        rows = tracker.log_iteration(0, metrics, base)
        failed = False
    finally:
        tracker.finish(failed=failed)
    print(results_table(tracker.store.rows()))
    print(f"\nresults: {tracker.store.path}\nbase checkpoint: {base}\nworld: {world.root}")
    if len(tasks_by_shots(cfg.eval)) == 1:
        command = cli_command(base, cfg.eval, cfg.model, task_dir(cfg.eval, world, cache_dir))
        print(f"score any checkpoint the same way with the lm_eval CLI:\n  {shell_line(command)}")
    return rows
