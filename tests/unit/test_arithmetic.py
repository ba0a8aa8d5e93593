"""The embedded task generator: determinism, correct worked solutions, plausible wrong ones, disjoint splits."""

from __future__ import annotations

import random
import re

import pytest

from spin_bench.data.arithmetic import draw_split, make_problem, wrong_solution
from spin_bench.data.config import Difficulty

EQUATION = re.compile(r"^(\d+) ([-+*]) (\d+) = (\d+)$")
EASY = Difficulty(min_steps=1, max_steps=3, max_start=15, max_operand=6, multiply=True)  # conf/data/arithmetic.yaml
HARD = Difficulty(min_steps=4, max_steps=5, max_start=50, max_operand=6, multiply=True)


def check_solution(text: str) -> int:
    """Replay a worked solution: every equation must hold and chain into the next; returns the final answer."""
    *lines, last = text.split("\n")
    value = None
    for line in lines:
        a, op, b, result = EQUATION.match(line).groups()
        a, b, result = int(a), int(b), int(result)
        assert value is None or a == value, f"step does not continue from {value}: {line}"
        assert {"+": a + b, "-": a - b, "*": a * b}[op] == result, line
        value = result
    assert last == f"#### {value}"
    return value


def test_same_seed_same_problems_other_seed_other_problems():
    a = draw_split("7:test", EASY, 50, set())
    b = draw_split("7:test", EASY, 50, set())
    c = draw_split("8:test", EASY, 50, set())
    assert a == b
    assert [p.question for p in a] != [p.question for p in c]


@pytest.mark.parametrize("difficulty", [EASY, HARD])
def test_worked_solutions_are_correct_and_respect_difficulty(difficulty):
    rng = random.Random(0)
    for _ in range(300):
        problem = make_problem(rng, difficulty)
        assert check_solution(problem.solution) == problem.answer >= 0
        assert difficulty.min_steps <= problem.steps == problem.solution.count("\n") <= difficulty.max_steps
        assert problem.question.endswith("have now?")


def test_wrong_solution_is_well_formed_but_wrong():
    rng = random.Random(1)
    for _ in range(300):
        problem = make_problem(rng, EASY)
        wrong = wrong_solution(problem, rng)
        *_, last = wrong.split("\n")
        assert re.fullmatch(r"#### \d+", last)
        assert int(last[5:]) != problem.answer
        assert wrong.count("\n") == problem.solution.count("\n")


def test_draw_split_excludes_and_records_questions():
    seen: set[str] = set()
    first = draw_split("0:a", EASY, 100, seen)
    second = draw_split("0:b", EASY, 100, seen)
    assert not {p.question for p in first} & {p.question for p in second}
    assert len(seen) == 200


def test_impossible_split_size_fails_clearly():
    tiny = Difficulty(min_steps=1, max_steps=1, max_start=1, max_operand=1, multiply=False)
    with pytest.raises(ValueError, match="too few distinct questions"):
        draw_split("0:x", tiny, 1000, set())  # at most 12 names x 10 items x 3 sentences


def test_bad_difficulty_is_rejected():
    with pytest.raises(ValueError, match="min_steps 3 > max_steps 2"):
        Difficulty(min_steps=3, max_steps=2, max_start=15, max_operand=6, multiply=True)
