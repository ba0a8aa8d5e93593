"""Writes the embedded world: generated training splits, validation splits (the base stage's held-out SFT loss,
tuning) and held-out test splits. With `spin_prompts_from: sft_train` (the paper's setting) SPIN's prompts and
real answers are the first rows of the base model's own SFT data."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from spin_bench.data.arithmetic import Problem, draw_split, wrong_solution
from spin_bench.data.config import EmbeddedData
from spin_bench.data.rows import PairRow, PromptRow
from spin_bench.stages import write_jsonl

# Bumped whenever the generator changes meaning, so that cached worlds (and the models trained on them) rebuild.
# v3: each split draws its slips from its own random stream (in v2 one stream served the DPO pairs and then the
# multiple-choice distractors, so the size of dpo_pairs changed the test set).
VERSION = "arithmetic-v3"
# Drawn in this order into one set of seen questions: evaluation splits first, so none of their items is trained
# on. `valid_hard` has as many problems as `valid`; `spin_prompts` is drawn only when spin_prompts_from=new.
SPLITS = ("test", "test_hard", "valid", "valid_hard", "sft_train", "spin_prompts", "dpo_pairs")


def build(data: EmbeddedData, out: Path) -> None:
    seen: set[str] = set()
    sizes = {**dataclasses.asdict(data.splits), "valid_hard": data.splits.valid}
    if data.spin_prompts_from == "sft_train":
        del sizes["spin_prompts"]
    problems = {
        name: draw_split(f"{data.seed}:{name}", data.hard_difficulty if name.endswith("_hard") else data.difficulty,
                         sizes[name], seen, varied=data.answer_variation)
        for name in SPLITS if name in sizes
    }  # fmt: skip
    data_dir = out / "data"
    sft = _responses("sft", problems["sft_train"])
    write_jsonl(data_dir / "sft_train.jsonl", sft)
    spin = (
        sft[: data.splits.spin_prompts]
        if "spin_prompts" not in problems
        else _responses("spin", problems["spin_prompts"])
    )
    write_jsonl(data_dir / "spin_prompts.jsonl", spin)
    slips = _slips(data.seed, "dpo_pairs")
    write_jsonl(data_dir / "dpo_pairs.jsonl", [
        PairRow(id=f"dpo-{i}", prompt=p.question, chosen=p.solution, rejected=wrong_solution(p, slips))
        for i, p in enumerate(problems["dpo_pairs"])
    ])  # fmt: skip
    for name in ("test", "valid"):  # each with its _hard and _mc variants, which the suite's tasks read
        for split in (name, f"{name}_hard"):
            write_jsonl(data_dir / f"{split}.jsonl", [{"id": f"{split}-{i}", **p.to_row()}
                                                       for i, p in enumerate(problems[split])])  # fmt: skip
        slips = _slips(data.seed, f"{name}_mc")
        rows = [_choice_row(name, i, p, data.mc_choices, slips) for i, p in enumerate(problems[name])]
        write_jsonl(data_dir / f"{name}_mc.jsonl", rows)


def _slips(seed: int, split: str) -> random.Random:
    """The random stream of one split's wrong solutions: its own, so that no split's size moves another's."""
    return random.Random(f"{seed}:wrong:{split}")


def _responses(prefix: str, problems: list[Problem]) -> list[PromptRow]:
    return [
        PromptRow(id=f"{prefix}-{i}", prompt=p.question, response=p.solution, answer=p.answer)
        for i, p in enumerate(problems)
    ]


def _choice_row(split: str, i: int, problem: Problem, n_choices: int, rng: random.Random) -> dict[str, object]:
    distinct = {problem.solution}
    for _ in range(100 * n_choices):
        if len(distinct) == n_choices:
            break
        distinct.add(wrong_solution(problem, rng))
    choices = sorted(distinct)
    rng.shuffle(choices)
    return {
        "id": f"{split}_mc-{i}",
        "question": problem.question,
        "choices": choices,
        "gold": choices.index(problem.solution),
    }
