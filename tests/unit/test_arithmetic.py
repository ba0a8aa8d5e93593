"""The embedded task generator: determinism, correct worked solutions, plausible wrong ones, disjoint splits."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest

from spin_bench.data.arithmetic import Style, draw_split, make_problem, wrong_solution
from spin_bench.data.config import Difficulty

EQUATION = re.compile(r"^(\d+) ([-+*]|plus|minus|times) (\d+) (?:=|is) (\d+)$")
SYMBOLS = {"plus": "+", "minus": "-", "times": "*"}
EASY = Difficulty(min_steps=1, max_steps=3, max_start=15, max_operand=6, multiply=True)  # conf/data/arithmetic.yaml
HARD = Difficulty(min_steps=4, max_steps=5, max_start=50, max_operand=6, multiply=True)


def check_solution(text: str) -> int:
    """Replay a worked solution in any style: every equation must hold and chain into the next (the previous
    result on either side of a commutative operation); returns the final answer."""
    *lines, last = text.split("\n")
    value = None
    if lines[0].startswith("Start with "):
        value = int(lines.pop(0).removeprefix("Start with ").rstrip("."))
    for line in lines:
        a, op, b, result = EQUATION.match(line).groups()
        a, b, result, op = int(a), int(b), int(result), SYMBOLS.get(op, op)
        assert value is None or value in ((a, b) if op != "-" else (a,)), f"step does not continue from {value}: {line}"
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


def test_every_style_is_a_correct_solution_and_styles_vary():
    rng = random.Random(2)
    problem = make_problem(rng, EASY)
    styles = [Style(words, commute, opening) for words in (False, True) for commute in (False, True)
              for opening in (False, True)]  # fmt: skip
    texts = set()
    for style in styles:
        varied = dataclasses.replace(problem, style=style)
        assert check_solution(varied.solution) == problem.answer
        wrong = wrong_solution(varied, rng)
        assert wrong.split("\n")[0].startswith("Start with") == style.opening  # distractors share the style
        assert (" is " in wrong) == style.words
        texts.add(varied.solution)
    assert len(texts) >= 4  # operand order only shows on + and * steps
    drawn = draw_split("0:v", EASY, 200, set(), varied=True)
    assert [p.question for p in drawn] == [p.question for p in draw_split("0:v", EASY, 200, set())]
    assert len({p.style for p in drawn}) == 8


def test_wrong_solution_is_well_formed_but_wrong():
    rng = random.Random(1)
    for _ in range(300):
        problem = make_problem(rng, EASY)
        wrong = wrong_solution(problem, rng)
        *_, last = wrong.split("\n")
        assert re.fullmatch(r"#### \d+", last)
        assert int(last[5:]) != problem.answer
        assert wrong.count("\n") == problem.solution.count("\n")
        assert check_solution_shape(wrong)


def check_solution_shape(text: str) -> bool:
    """Every line an equation of the solution's form, the steps chained (only the arithmetic may be wrong)."""
    return all(EQUATION.match(line) for line in text.split("\n")[:-1] if not line.startswith("Start with"))


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
