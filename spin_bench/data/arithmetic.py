"""The embedded task: multi-step arithmetic word problems in GSM8K format.

A problem reads like GSM8K ("Mia has 7 apples. Then she buys 5 more apples. ...") and its worked solution
shows one equation per step and ends with the GSM8K answer line ``#### <number>``. Everything is drawn from a
``random.Random`` seeded with a string, so the same seed and knobs give the same problems on any machine.

A solution is written in one of several correct styles (`Style`: equations or words, operand order, an opening
line), so that real answers vary in form as human ones do. The wrong-solution process (an arithmetic slip at one
step, carried through the rest of the solution, in the same style) makes the DPO baseline's rejected answers and
the multiple-choice distractors. It never looks at any model.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

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
class Style:
    """How one worked solution is phrased. Every style is correct and ends with the same `#### <number>` line, so
    a real answer and a model's answer can differ in form as well as in correctness (docs/data.md):

    - `words`: "7 plus 5 is 12" instead of "7 + 5 = 12";
    - `commute`: additions and multiplications written operand first ("5 + 7 = 12", "2 * 7 = 14");
    - `opening`: the solution opens with the starting count ("Start with 7.").
    """

    words: bool = False
    commute: bool = False
    opening: bool = False

    @classmethod
    def draw(cls, rng: random.Random) -> Style:
        return cls(words=rng.random() < 0.5, commute=rng.random() < 0.5, opening=rng.random() < 0.5)


CANONICAL = Style()  # one equation per line, as GSM8K writes them
WORDS = {"+": "plus", "-": "minus", "*": "times"}


@dataclass(frozen=True)
class Problem:
    question: str
    start: int
    ops: tuple[tuple[str, int], ...]  # (symbol, number) per step: "+" / "-" and the number, "*" and the factor
    answer: int
    style: Style = CANONICAL

    @property
    def steps(self) -> int:
        return len(self.ops)

    @property
    def solution(self) -> str:
        """The worked solution in this problem's style, last line "#### <answer>"."""
        return render(self.start, self.ops, _results(self.start, self.ops), self.style)

    def to_row(self) -> dict[str, object]:
        return {"question": self.question, "solution": self.solution, "answer": self.answer, "steps": self.steps}


def _results(start: int, ops: tuple[tuple[str, int], ...], slip_at: int = -1, delta: int = 0) -> list[int]:
    """The value after each step; with a slip, step `slip_at`'s result is off by `delta` and the error carries on."""
    value, out = start, []
    for i, (symbol, n) in enumerate(ops):
        value = {"+": value + n, "-": value - n, "*": value * n}[symbol] + (delta if i == slip_at else 0)
        out.append(value)
    return out


def render(start: int, ops: tuple[tuple[str, int], ...], results: list[int], style: Style) -> str:
    """A worked solution: one line per step (each continuing from the previous result), then "#### <last>"."""
    lines = [f"Start with {start}."] if style.opening else []
    value = start
    for (symbol, n), result in zip(ops, results, strict=True):
        a, b = (n, value) if style.commute and symbol != "-" else (value, n)
        lines.append(f"{a} {WORDS[symbol]} {b} is {result}" if style.words else f"{a} {symbol} {b} = {result}")
        value = result
    return "\n".join([*lines, f"#### {results[-1]}"])


def make_problem(rng: random.Random, difficulty: Difficulty, style: Style = CANONICAL) -> Problem:
    name, subj, poss = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = start = rng.randint(1, difficulty.max_start)
    sentences = [f"{name} has {value} {item}."]
    ops = []
    steps = rng.randint(difficulty.min_steps, difficulty.max_steps)
    for i in range(steps):
        kinds = [ADD] + ([SUB] if value > 1 else []) + ([MUL] if difficulty.multiply and value <= 10 else [])
        text, symbol = rng.choice(rng.choice(kinds))
        n = 0
        if symbol == "+":
            n = rng.randint(1, difficulty.max_operand)
        elif symbol == "-":
            n = rng.randint(1, min(difficulty.max_operand, value))
        clause = text.format(n=n, item=item, poss=poss)
        sentences.append(f"{rng.choice(CONNECTORS)} {subj} {clause}." if i else f"{subj.capitalize()} {clause}.")
        op = ("*", int(symbol[1])) if symbol.startswith("*") else (symbol, n)
        ops.append(op)
        value = _results(value, (op,))[0]
    sentences.append(f"How many {item} does {name} have now?")
    return Problem(" ".join(sentences), start, tuple(ops), value, style)


def wrong_solution(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong worked solution in the problem's own style: one step's result slips by 1-3 and the error
    carries on.

    Slips that would drive a count below zero, or that a later step undoes, are redrawn; a slip of +1 at the
    last step is the fallback that always qualifies.
    """
    for attempt in range(20):
        slip_at, delta = (
            (rng.randrange(problem.steps), rng.choice([-3, -2, -1, 1, 2, 3]))
            if attempt < 19
            else (problem.steps - 1, 1)
        )
        results = _results(problem.start, problem.ops, slip_at, delta)
        if min(results) >= 0 and results[-1] != problem.answer:
            return render(problem.start, problem.ops, results, problem.style)
    raise AssertionError("unreachable: the last-step +1 slip always differs from the answer")


def draw_split(seed: str, difficulty: Difficulty, size: int, exclude: set[str], varied: bool = False) -> list[Problem]:
    """`size` distinct problems whose questions are not in `exclude` (which is extended in place); `varied`: each
    solution in a style drawn at random (from its own random stream, so the questions are the same either way)."""
    rng, styles = random.Random(seed), random.Random(f"{seed}:style")
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
        problems.append(dataclasses.replace(problem, style=Style.draw(styles)) if varied else problem)
    return problems
