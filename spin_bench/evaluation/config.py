"""conf/evaluation: the lm-eval suite every iteration is scored with, and its headline metrics.

`suite: embedded` scores the embedded world's held-out splits with the task YAMLs of spin_bench/evaluation/tasks/;
`suite: harness` uses lm-eval's built-in tasks (the paper's Open LLM Leaderboard v1 suite). `headline` lists the
`<task>/<metric>,<filter>` numbers (lm-eval's names) whose unweighted mean is the suite's `average`
(spin_bench/results.py). For the embedded suite the names are checked against what its task YAMLs report.

Light on purpose (no lm-eval): spin_bench/config.py types and checks every section at start-up.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from spin_bench.schema import STRICT, Flag, Integer, NonNegative, Positive

TASKS = resources.files("spin_bench.evaluation") / "tasks"


def embedded_task_names() -> set[str]:
    """The tasks of the embedded suite: one lm-eval YAML each in spin_bench/evaluation/tasks/."""
    return set(embedded_metrics())


@functools.cache
def embedded_metrics() -> dict[str, frozenset[str]]:
    """{task: the metric keys it reports, `<metric>,<filter>` as lm-eval names them}, from the task YAMLs (each
    metric of `metric_list` under each filter of `filter_list`, `none` without filters; `include:` followed)."""

    def spec(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(TASKS.joinpath(name).read_text())
        return {**spec(loaded["include"]), **loaded} if "include" in loaded else loaded

    out = {}
    for path in TASKS.iterdir():
        if path.name.endswith(".yaml"):
            task = spec(path.name)
            filters = [f["name"] for f in task.get("filter_list", [])] or ["none"]
            out[task["task"]] = frozenset(f"{m['metric']},{f}" for m in task["metric_list"] for f in filters)
    return out


def metric_problem(key: str, tasks: dict[str, int], suite: str) -> str | None:
    """Why `key` does not name a number the suite reports (None when it does): `<task>/<metric>,<filter>` with a
    task of the suite; for the embedded suite, one of the metrics that task's YAML reports."""
    task, _, metric = key.partition("/")
    if task not in tasks or "," not in metric:
        first = next(iter(tasks))
        example = min(embedded_metrics().get(first, ["acc,none"])) if suite == "embedded" else "acc,none"
        return (f"{key!r} must be <task>/<metric>,<filter> as lm-eval names it, with a task of evaluation.tasks "
                f"({', '.join(tasks)}), e.g. {first}/{example}")  # fmt: skip
    if suite == "embedded" and metric not in embedded_metrics()[task]:
        return f"{key!r}: {task} reports {', '.join(sorted(embedded_metrics()[task]))}"
    return None


@dataclass(frozen=True, config=STRICT)
class EvaluationConfig:
    name: str
    suite: Literal["embedded", "harness"]
    tasks: Annotated[dict[str, NonNegative], Field(min_length=1)]  # task -> number of few-shot examples
    headline: Annotated[list[str], Field(min_length=1)]  # `<task>/<metric>`: the suite's average
    apply_chat_template: Flag
    fewshot_as_multiturn: Flag
    system_instruction: str | None
    batch_size: int | str  # examples per forward pass, or lm-eval's `auto` / `auto:<n>`
    limit: Positive | None  # evaluate only the first N examples of each task
    bootstrap_iters: NonNegative
    seed: Integer
    # The embedded world's splits the suite scores: `test` (reported results) or `valid` (tuning: choosing a
    # learning rate never looks at the test sets). Not used by the harness suite.
    split: Literal["test", "valid"] = "test"

    @field_validator("tasks")
    @classmethod
    def _embedded_tasks_exist(cls, tasks: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        unknown = sorted(set(tasks) - embedded_task_names()) if info.data.get("suite") == "embedded" else []
        if unknown:
            raise ValueError(
                f"{unknown} are not tasks of the embedded suite; those are {sorted(embedded_task_names())}"
            )
        return tasks

    @field_validator("headline")
    @classmethod
    def _headline_names_reported_metrics(cls, headline: list[str], info: ValidationInfo) -> list[str]:
        tasks: dict[str, int] = info.data.get("tasks") or {}
        for key in headline if tasks else []:  # bad tasks are reported on their own
            problem = metric_problem(key, tasks, info.data.get("suite", ""))
            if problem:
                raise ValueError(problem)
        return headline

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, size: int | str) -> int | str:
        if isinstance(size, int) and size >= 1 or isinstance(size, str) and re.fullmatch(r"auto(:[0-9]+)?", size):
            return size
        raise ValueError("must be a number of examples >= 1, `auto` or `auto:<n>`")

    def by_shots(self) -> dict[int, list[str]]:
        """The tasks grouped as {shots: [tasks]}, in config order: lm-eval's `num_fewshot` applies to every task
        of a call, so each shot count is one call."""
        groups: dict[int, list[str]] = {}
        for name, shots in self.tasks.items():
            groups.setdefault(shots, []).append(name)
        return groups
