"""Writes the embedded world: generated training splits and held-out evaluation splits."""

from __future__ import annotations

import random
from pathlib import Path

from spin_bench.data.arithmetic import Problem, draw_split, wrong_solution
from spin_bench.data.config import EmbeddedData
from spin_bench.data.rows import PairRow, PromptRow
from spin_bench.stages import write_jsonl

# Bumped whenever the generator changes meaning, so that cached worlds (and the models trained on them) rebuild.
VERSION = "arithmetic-v1"
# Drawn in this order into one set of seen questions: test splits first, so none of their items is trained on.
SPLITS = ("test", "test_hard", "sft_train", "spin_prompts", "dpo_pairs")


def build(data: EmbeddedData, out: Path) -> None:
    seen: set[str] = set()
    problems = {
        name: draw_split(f"{data.seed}:{name}", data.hard_difficulty if name == "test_hard" else data.difficulty,
                         getattr(data.splits, name), seen)
        for name in SPLITS
    }  # fmt: skip
    rng = random.Random(f"{data.seed}:wrong")
    data_dir = out / "data"
    write_jsonl(data_dir / "sft_train.jsonl", _responses("sft", problems["sft_train"]))
    write_jsonl(data_dir / "spin_prompts.jsonl", _responses("spin", problems["spin_prompts"]))
    write_jsonl(data_dir / "dpo_pairs.jsonl", [
        PairRow(id=f"dpo-{i}", prompt=p.question, chosen=p.solution, rejected=wrong_solution(p, rng))
        for i, p in enumerate(problems["dpo_pairs"])
    ])  # fmt: skip
    for name in ("test", "test_hard"):
        write_jsonl(
            data_dir / f"{name}.jsonl", [{"id": f"{name}-{i}", **p.to_row()} for i, p in enumerate(problems[name])]
        )
    write_jsonl(
        data_dir / "test_mc.jsonl", [_choice_row(i, p, data.mc_choices, rng) for i, p in enumerate(problems["test"])]
    )


def _responses(prefix: str, problems: list[Problem]) -> list[PromptRow]:
    return [
        PromptRow(id=f"{prefix}-{i}", prompt=p.question, response=p.solution, answer=p.answer)
        for i, p in enumerate(problems)
    ]


def _choice_row(i: int, problem: Problem, n_choices: int, rng: random.Random) -> dict[str, object]:
    distinct = {problem.solution}
    for _ in range(100 * n_choices):
        if len(distinct) == n_choices:
            break
        distinct.add(wrong_solution(problem, rng))
    choices = sorted(distinct)
    rng.shuffle(choices)
    return {
        "id": f"test_mc-{i}",
        "question": problem.question,
        "choices": choices,
        "gold": choices.index(problem.solution),
    }
