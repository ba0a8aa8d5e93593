"""Evaluation through lm-evaluation-harness, in process, on the model in memory.

`evaluate` runs `lm_eval.simple_evaluate` over an HFLM wrapping the checkpoint and returns tidy rows
`{task, metric, value, stderr}`. Results are cached by (checkpoint, eval config), so the iteration-0 evaluation
of a base model is computed once for every study and arm that starts from it. lm-eval's `num_fewshot` applies
to every task of a call, so tasks are evaluated in one call per distinct shot count (the paper's suite mixes
0, 5, 10 and 25 shots); the model is wrapped once and shared by the calls.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shlex
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spin_bench.cache import atomic_write_json, cached_dir, checkpoint_fingerprint, content_hash
from spin_bench.world import World
from spin_bench.world.model import load_configured, loading_spec

log = logging.getLogger(__name__)

TASK_TEMPLATES = resources.files("spin_bench") / "tasks"


def embedded_task_names() -> set[str]:
    return {t.name.removesuffix(".yaml") for t in TASK_TEMPLATES.iterdir() if t.name.endswith(".yaml")}


def embedded_task_dir(world: World, cache_dir: Path) -> Path:
    """The embedded lm-eval task YAMLs (spin_bench/tasks/) with `{data_dir}` set to this world's data directory.

    A directory of plain task YAMLs, so that the stock `lm_eval` CLI can score any checkpoint with
    `--include_path <this dir>`, exactly as the harness does in process.
    """
    templates = {t.name: t.read_text() for t in TASK_TEMPLATES.iterdir() if t.name.endswith(".yaml")}
    inputs = {"world": world.root.name, "templates": templates}

    def build(tmp: Path) -> None:
        for name, text in templates.items():
            (tmp / name).write_text(text.replace("{data_dir}", str(world.root / "data")))

    return cached_dir(Path(cache_dir) / "tasks" / f"{world.root.name}-{content_hash(inputs)}", build, inputs)


def tasks_by_shots(eval_cfg: DictConfig) -> dict[int, list[str]]:
    """`eval.tasks` ({task: shots}) grouped as {shots: [tasks]}, in config order."""
    groups: dict[int, list[str]] = {}
    for name, shots in eval_cfg.tasks.items():
        if not isinstance(shots, int) or shots < 0:
            raise ValueError(f"eval.tasks.{name} must be a number of few-shot examples >= 0, got {shots!r}")
        groups.setdefault(shots, []).append(name)
    return groups


def task_dir(eval_cfg: DictConfig, world: World, cache_dir: Path) -> Path | None:
    """Where lm-eval finds the suite's own tasks: the embedded ones' directory, or None for lm-eval's built-ins."""
    return embedded_task_dir(world, cache_dir) if eval_cfg.suite == "embedded" else None


def evaluate(checkpoint: str, eval_cfg: DictConfig, world: World, model_cfg: DictConfig, cache_dir: Path) -> list[dict]:
    tasks = task_dir(eval_cfg, world, cache_dir)
    inputs = {
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "loading": loading_spec(model_cfg),
        "eval": OmegaConf.to_container(eval_cfg, resolve=True),
        "tasks": tasks.name if tasks else None,
    }
    directory = Path(cache_dir) / "eval" / content_hash(inputs)

    def build(tmp: Path) -> None:
        rows = run_lm_eval(checkpoint, eval_cfg, model_cfg, tasks)
        atomic_write_json(tmp / "metrics.json", rows)

    return json.loads((cached_dir(directory, build, inputs) / "metrics.json").read_text())


def run_lm_eval(checkpoint: str, eval_cfg: DictConfig, model_cfg: DictConfig, tasks: Path | None) -> list[dict]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = load_configured(checkpoint, model_cfg)
    model.eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=eval_cfg.batch_size)
    task_manager = task_manager_for(str(tasks) if tasks else None)
    results: dict[str, dict] = {}
    for shots, names in tasks_by_shots(eval_cfg).items():
        log.info("evaluating %s on %s (%d-shot)", checkpoint, ", ".join(names), shots)
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            num_fewshot=shots,
            task_manager=task_manager,
            apply_chat_template=eval_cfg.apply_chat_template,
            fewshot_as_multiturn=eval_cfg.fewshot_as_multiturn,
            system_instruction=eval_cfg.system_instruction,
            limit=eval_cfg.limit,
            bootstrap_iters=eval_cfg.bootstrap_iters,
            random_seed=eval_cfg.seed,
            numpy_random_seed=eval_cfg.seed,
            torch_random_seed=eval_cfg.seed,
            fewshot_random_seed=eval_cfg.seed,
            log_samples=False,
        )
        results.update(out["results"])
    return tidy_results(results)


@functools.cache
def task_manager_for(include_path: str | None):
    """lm-eval's task index, built once per process: indexing every built-in task takes about 14 s here, and a
    study evaluates each of its iterations in the same process."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path)


def tidy_results(results: dict[str, dict]) -> list[dict]:
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
            finite = isinstance(stderr, (int, float)) and math.isfinite(stderr)
            rows.append(
                {"task": task, "metric": key, "value": float(value), "stderr": float(stderr) if finite else None}
            )
    return rows


def cli_command(checkpoint: str, eval_cfg: DictConfig, model_cfg: DictConfig, tasks: Path | None) -> list[str]:
    """The stock `lm_eval` command that scores `checkpoint` as `evaluate` does (one per shot count; see
    `tasks_by_shots`; the embedded suite has one). Printed by the study, checked by the tests."""
    (shots, names), *rest = tasks_by_shots(eval_cfg).items()
    if rest:
        raise ValueError("this suite mixes shot counts: one lm_eval command per count is needed")
    command = ["lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={checkpoint},dtype={model_cfg.dtype}"]
    command += ["--include_path", str(tasks)] if tasks else []
    command += ["--tasks", ",".join(names), "--num_fewshot", str(shots), "--batch_size", str(eval_cfg.batch_size)]
    if eval_cfg.apply_chat_template:
        command += ["--apply_chat_template", "--fewshot_as_multiturn", str(eval_cfg.fewshot_as_multiturn).lower()]
    if eval_cfg.limit:
        command += ["--limit", str(eval_cfg.limit)]
    return command + ["--seed", str(eval_cfg.seed)]


def shell_line(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
