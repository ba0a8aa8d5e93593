"""The embedded task: multi-step arithmetic word problems in GSM8K format.

A problem reads like GSM8K ("Mia has 7 apples. Then she buys 5 more apples. ...") and its worked solution
shows one equation per step and ends with the GSM8K answer line ``#### <number>``. Everything is drawn from a
``random.Random`` seeded with a string, so the same seed and knobs give the same problems on any machine.

The wrong-solution process (an arithmetic slip at one step, carried through the rest of the solution) makes
the DPO baseline's rejected answers and the multiple-choice distractors. It never looks at any model.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from spin_bench.data.config import Difficulty

NAMES = [
    ("Mia", "she", "her"), ("Noah", "he", "his"), ("Ava", "she", "her"), ("Liam", "he", "his"),
    ("Zoe", "she", "her"), ("Omar", "he", "his"), ("Lena", "she", "her"), ("Ravi", "he", "his"),
    ("Ines", "she", "her"), ("Kofi", "he", "his"), ("Yuki", "she", "her"), ("Tom", "he", "his"),
]  # fmt: skip
ITEMS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards", "eggs", "beads"]

# Each operation: the sentence that states it, and the symbol of the equation that solves it.
ADD = [("buys {n} more {item}", "+"), ("finds {n} {item}", "+"), ("gets {n} {item} from a friend", "+")]
SUB = [("gives away {n} {item}", "-"), ("loses {n} {item}", "-"), ("sells {n} {item}", "-")]
MUL = [("doubles {poss} {item}", "*2"), ("triples {poss} {item}", "*3")]
CONNECTORS = ["Then", "After that", "Next", "Later"]


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # worked solution, last line "#### <answer>"
    answer: int
    steps: int

    def to_row(self) -> dict:
        return asdict(self)


def _apply(value: int, symbol: str, n: int) -> int:
    return {"+": value + n, "-": value - n, "*2": value * 2, "*3": value * 3}[symbol]


def _equation(value: int, symbol: str, n: int, result: int) -> str:
    operand = f"* {symbol[1]}" if symbol.startswith("*") else f"{symbol} {n}"
    return f"{value} {operand} = {result}"


def make_problem(rng: random.Random, difficulty: Difficulty) -> Problem:
    name, subj, poss = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = rng.randint(1, difficulty.max_start)
    sentences = [f"{name} has {value} {item}."]
    lines = []
    steps = rng.randint(difficulty.min_steps, difficulty.max_steps)
    for i in range(steps):
        kinds = [ADD] + ([SUB] if value > 1 else []) + ([MUL] if difficulty.multiply and value <= 10 else [])
        text, symbol = rng.choice(rng.choice(kinds))
        n = 0
        if symbol == "+":
            n = rng.randint(1, difficulty.max_operand)
        elif symbol == "-":
            n = rng.randint(1, min(difficulty.max_operand, value))
        result = _apply(value, symbol, n)
        clause = text.format(n=n, item=item, poss=poss)
        sentences.append(f"{rng.choice(CONNECTORS)} {subj} {clause}." if i else f"{subj.capitalize()} {clause}.")
        lines.append(_equation(value, symbol, n, result))
        value = result
    sentences.append(f"How many {item} does {name} have now?")
    solution = "\n".join([*lines, f"#### {value}"])
    return Problem(" ".join(sentences), solution, value, steps)


def wrong_solution(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong worked solution: one equation's result slips by 1-3 and the error carries on.

    Slips that would drive a count below zero, or that a later step undoes, are redrawn; a slip of +1 at the
    last step is the fallback that always qualifies.
    """
    steps = []
    for line in problem.solution.split("\n")[:-1]:
        lhs, _ = line.split(" = ")
        _, op, operand = lhs.split(" ")
        steps.append((op, int(operand)))
    for attempt in range(20):
        slip_at, delta = (
            (rng.randrange(len(steps)), rng.choice([-3, -2, -1, 1, 2, 3])) if attempt < 19 else (len(steps) - 1, 1)
        )
        value = int(problem.solution.split(" ", 1)[0])
        lines = []
        for i, (op, number) in enumerate(steps):
            result = _apply(value, op if op != "*" else f"*{number}", number) + (delta if i == slip_at else 0)
            lines.append(f"{value} {op} {number} = {result}")
            value = result
            if value < 0:
                break
        else:
            if value != problem.answer:
                return "\n".join([*lines, f"#### {value}"])
    raise AssertionError("unreachable: the last-step +1 slip always differs from the answer")


def draw_split(seed: str, difficulty: Difficulty, size: int, exclude: set[str]) -> list[Problem]:
    """`size` distinct problems whose questions are not in `exclude` (which is extended in place)."""
    rng = random.Random(seed)
    problems: list[Problem] = []
    misses = 0
    while len(problems) < size:
        problem = make_problem(rng, difficulty)
        if problem.question in exclude:
            misses += 1
            if misses > 50 * size + 1000:
                raise ValueError(
                    f"cannot draw {size} distinct problems for split {seed!r}: the difficulty knobs leave too few "
                    "distinct questions; raise max_start / max_operand / max_steps or shrink the split"
                )
            continue
        exclude.add(problem.question)
        problems.append(problem)
    return problems
