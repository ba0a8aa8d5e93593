"""conf/evaluation: the lm-eval suite every iteration is scored with, and its headline metrics.

`suite: embedded` scores the embedded world's held-out splits with the task YAMLs of spin_bench/evaluation/tasks/;
`suite: harness` uses lm-eval's built-in tasks (the paper's Open LLM Leaderboard v1 suite). `headline` lists the
`<task>/<metric>` numbers whose unweighted mean is the suite's `average` (spin_bench/results.py).

Light on purpose (no lm-eval): spin_bench/config.py types and checks every section at start-up.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from spin_bench.schema import STRICT, NonNegative, Positive

TASKS = resources.files("spin_bench.evaluation") / "tasks"


def embedded_task_names() -> set[str]:
    """The tasks of the embedded suite: one lm-eval YAML each in spin_bench/evaluation/tasks/."""
    return {t.name.removesuffix(".yaml") for t in TASKS.iterdir() if t.name.endswith(".yaml")}


@dataclass(frozen=True, config=STRICT)
class EvaluationConfig:
    name: str
    suite: Literal["embedded", "harness"]
    tasks: Annotated[dict[str, NonNegative], Field(min_length=1)]  # task -> number of few-shot examples
    headline: Annotated[list[str], Field(min_length=1)]  # `<task>/<metric>`: the suite's average
    apply_chat_template: bool
    fewshot_as_multiturn: bool
    system_instruction: str | None
    batch_size: int | str  # examples per forward pass, or lm-eval's `auto` / `auto:<n>`
    limit: Positive | None  # evaluate only the first N examples of each task
    bootstrap_iters: NonNegative
    seed: int

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
    def _headline_names_tasks(cls, headline: list[str], info: ValidationInfo) -> list[str]:
        tasks: dict[str, int] = info.data.get("tasks") or {}
        for key in headline if tasks else []:  # bad tasks are reported on their own
            task, _, metric = key.partition("/")
            if task not in tasks or not metric:
                raise ValueError(
                    f"{key!r} must be <task>/<metric> with a task of evaluation.tasks ({', '.join(tasks)})"
                )
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
