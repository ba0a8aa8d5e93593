"""Writes the embedded world: generated training splits and held-out evaluation splits."""

from __future__ import annotations

import random
from pathlib import Path

from omegaconf import DictConfig

from spin_bench.cache import write_jsonl
from spin_bench.world.arithmetic import Difficulty, Problem, draw_split, wrong_solution

# Bumped whenever the generator changes meaning, so that cached worlds (and the models trained on them) rebuild.
VERSION = "arithmetic-v1"
# Drawn in this order into one set of seen questions: test splits first, so none of their items is trained on.
SPLITS = ("test", "test_hard", "sft_train", "spin_prompts", "dpo_pairs")


def build(data: DictConfig, out: Path) -> None:
    splits = dict(data.splits)
    if set(splits) != set(SPLITS) or any(not isinstance(n, int) or n < 1 for n in splits.values()):
        raise ValueError(f"data.splits must give a size >= 1 for exactly the splits {SPLITS}, got {splits}")
    if data.mc_choices < 2:
        raise ValueError(f"data.mc_choices must be >= 2, got {data.mc_choices}")
    easy, hard = Difficulty(**data.difficulty), Difficulty(**data.hard_difficulty)
    seen: set[str] = set()
    problems = {
        name: draw_split(f"{data.seed}:{name}", hard if name == "test_hard" else easy, splits[name], seen)
        for name in SPLITS
    }
    rng = random.Random(f"{data.seed}:wrong")
    data_dir = out / "data"
    write_jsonl(data_dir / "sft_train.jsonl", _responses("sft", problems["sft_train"]))
    write_jsonl(data_dir / "spin_prompts.jsonl", _responses("spin", problems["spin_prompts"]))
    write_jsonl(data_dir / "dpo_pairs.jsonl", [
        {"id": f"dpo-{i}", "prompt": p.question, "chosen": p.solution, "rejected": wrong_solution(p, rng)}
        for i, p in enumerate(problems["dpo_pairs"])
    ])  # fmt: skip
    for name in ("test", "test_hard"):
        write_jsonl(
            data_dir / f"{name}.jsonl", [{"id": f"{name}-{i}", **p.to_row()} for i, p in enumerate(problems[name])]
        )
    write_jsonl(
        data_dir / "test_mc.jsonl", [_choice_row(i, p, data.mc_choices, rng) for i, p in enumerate(problems["test"])]
    )


def _responses(prefix: str, problems: list[Problem]) -> list[dict]:
    return [
        {"id": f"{prefix}-{i}", "prompt": p.question, "response": p.solution, "answer": p.answer}
        for i, p in enumerate(problems)
    ]


def _choice_row(i: int, problem: Problem, n_choices: int, rng: random.Random) -> dict:
    choices = {problem.solution}
    for _ in range(100 * n_choices):
        if len(choices) == n_choices:
            break
        choices.add(wrong_solution(problem, rng))
    choices = sorted(choices)
    rng.shuffle(choices)
    return {
        "id": f"test_mc-{i}",
        "question": problem.question,
        "choices": choices,
        "gold": choices.index(problem.solution),
    }
