"""The evaluation stage: lm-evaluation-harness, in process, on the checkpoint loaded once.

`evaluate` runs `lm_eval.simple_evaluate` over an HFLM wrapping the checkpoint and returns tidy rows
`{task, metric, value, stderr}` (every number lm-eval returns; the suite's headline metrics are a subset).
Results are cached by (checkpoint, how it loads, the evaluation config, the task files), so the iteration-0
evaluation of a base model is computed once for every study and arm that starts from it. lm-eval's `num_fewshot`
applies to every task of a call, so tasks are evaluated in one call per distinct shot count (the paper's suite
mixes 0, 5, 10 and 25 shots); the model is wrapped once and shared by the calls.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import shlex
from pathlib import Path
from typing import Any

from spin_bench.data.world import World
from spin_bench.engine.checkpoint import load_for_inference
from spin_bench.engine.config import Loading
from spin_bench.evaluation.config import TASKS, EvaluationConfig
from spin_bench.results import MetricRow
from spin_bench.stages import atomic_write_json, checkpoint_fingerprint, read_json, run_stage

log = logging.getLogger(__name__)


def task_dir(config: EvaluationConfig, world: World, cache_dir: Path) -> Path | None:
    """Where lm-eval finds the suite's own tasks: the embedded task YAMLs with `{data_dir}` set to this world's
    data directory and `{split}` to `evaluation.split` (a directory of plain task YAMLs, so that the stock
    `lm_eval` CLI scores any checkpoint with `--include_path <this dir>` exactly as the harness does in
    process), or None for lm-eval's built-ins."""
    if config.suite != "embedded":
        return None
    templates = {t.name: t.read_text() for t in TASKS.iterdir() if t.name.endswith(".yaml")}

    def build(tmp: Path) -> None:
        for name, text in templates.items():
            (tmp / name).write_text(
                text.replace("{data_dir}", str(world.root / "data")).replace("{split}", config.split)
            )

    inputs = {"world": world.root.name, "templates": templates, "split": config.split}
    return run_stage(cache_dir, "tasks", inputs, build, f"{world.root.name}-{config.split}")


def evaluate(checkpoint: str, config: EvaluationConfig, tasks: Path | None, loading: Loading,
             cache_dir: Path) -> list[MetricRow]:  # fmt: skip
    inputs = {
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "loading": loading.spec(),
        # the headline metrics choose what `average` means, not what lm-eval computes
        "evaluation": {k: v for k, v in dataclasses.asdict(config).items() if k != "headline"},
        "tasks": tasks.name if tasks else None,
    }

    def build(tmp: Path) -> None:
        atomic_write_json(tmp / "metrics.json", run_lm_eval(checkpoint, config, tasks, loading))

    rows: list[MetricRow] = read_json(run_stage(cache_dir, "eval", inputs, build) / "metrics.json")
    return rows


def run_lm_eval(checkpoint: str, config: EvaluationConfig, tasks: Path | None, loading: Loading) -> list[MetricRow]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = load_for_inference(checkpoint, loading)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=config.batch_size)
    task_manager = task_manager_for(str(tasks) if tasks else None)
    results: dict[str, dict[str, Any]] = {}
    for shots, names in config.by_shots().items():
        log.info("evaluating %s on %s (%d-shot)", checkpoint, ", ".join(names), shots)
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            num_fewshot=shots,
            task_manager=task_manager,
            apply_chat_template=config.apply_chat_template,
            fewshot_as_multiturn=config.fewshot_as_multiturn,
            system_instruction=config.system_instruction,
            limit=config.limit,
            bootstrap_iters=config.bootstrap_iters,
            random_seed=config.seed,
            numpy_random_seed=config.seed,
            torch_random_seed=config.seed,
            fewshot_random_seed=config.seed,
            log_samples=False,
        )
        results.update(out["results"])
    return tidy_results(results)


@functools.cache
def task_manager_for(include_path: str | None) -> Any:
    """lm-eval's task index, built once per process (a study evaluates each of its iterations in the same
    process): the suite's own task directory alone (the embedded suite), or every built-in task (None; indexing
    them takes about 7 s here)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_path is None)


def tidy_results(results: dict[str, dict[str, Any]]) -> list[MetricRow]:
    """lm-eval's `{task: {"acc,none": v, "acc_stderr,none": s, ...}}` as rows {task, metric, value, stderr}.

    The metric name keeps lm-eval's filter suffix (`exact_match,strict-match`) so that it reads the same as
    the lm_eval CLI's output and never merges two filters of one metric.
    """
    rows = []
    for task, metrics in sorted(results.items()):
        for key, value in sorted(metrics.items()):
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            name, filt = key.split(",", 1)
            stderr = metrics.get(f"{name}_stderr,{filt}")
            if not isinstance(stderr, (int, float)) or not math.isfinite(stderr):
                stderr = None  # lm-eval's "N/A", or no bootstrap
            rows.append(
                MetricRow(task=task, metric=key, value=float(value), stderr=None if stderr is None else float(stderr))
            )
    return rows


def cli_command(checkpoint: str, config: EvaluationConfig, tasks: Path | None, loading: Loading) -> list[str] | None:
    """The stock `lm_eval` command that scores `checkpoint` as `evaluate` does; None for a suite that mixes shot
    counts (one command per count would be needed). Printed at the end of a run, checked by the tests."""
    groups = config.by_shots()
    if len(groups) != 1:
        return None
    ((shots, names),) = groups.items()
    command = ["lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={checkpoint},dtype={loading.dtype}"]
    command += ["--include_path", str(tasks)] if tasks else []
    command += ["--tasks", ",".join(names), "--num_fewshot", str(shots), "--batch_size", str(config.batch_size)]
    if config.apply_chat_template:
        command += ["--apply_chat_template", "--fewshot_as_multiturn", str(config.fewshot_as_multiturn).lower()]
    if config.limit:
        command += ["--limit", str(config.limit)]
    return command + ["--seed", str(config.seed)]


def shell_line(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
