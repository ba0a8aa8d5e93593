"""Pair building: history mixing picks the right iterations; degenerate pairs are counted."""

from __future__ import annotations

import pytest

from spin_bench.pairs import history_iterations, spin_pairs


@pytest.mark.parametrize(
    ("iteration", "history", "expected"),
    [(0, 1, [0]), (0, 2, [0]), (1, 2, [0, 1]), (3, 2, [2, 3]), (3, 1, [3]), (3, None, [0, 1, 2, 3]), (2, 5, [0, 1, 2])],
)
def test_history_iterations(iteration, history, expected):
    assert history_iterations(iteration, history) == expected


def test_bad_history_is_named():
    with pytest.raises(ValueError, match="history must be >= 1"):
        history_iterations(2, 0)


def test_pairs_mix_history_and_count_degenerate():
    real = [{"id": "a", "prompt": "qa", "response": "ya"}, {"id": "b", "prompt": "qb", "response": "yb"}]
    generations = {
        t: [{"id": "a", "prompt": "qa", "generated": f"a{t}"}, {"id": "b", "prompt": "qb", "generated": "yb"}]
        for t in range(3)
    }
    pairs, counts = spin_pairs(generations, real, iteration=2, history=2)
    assert [(p["iteration"], p["id"], p["chosen"], p["rejected"]) for p in pairs] == [
        (1, "a", "ya", "a1"), (1, "b", "yb", "yb"), (2, "a", "ya", "a2"), (2, "b", "yb", "yb"),
    ]  # fmt: skip
    assert counts == {"pairs": 4, "degenerate": 2}


def test_missing_generations_are_named():
    with pytest.raises(KeyError, match="generations of iteration 0, which are missing"):
        spin_pairs({1: []}, [], iteration=1, history=2)
    with pytest.raises(KeyError, match="'b' has no generation at iteration 0"):
        spin_pairs({0: [{"id": "a", "prompt": "qa", "generated": "g"}]}, [{"id": "b", "prompt": "qb", "response": "y"}],
                   iteration=0, history=1)  # fmt: skip


def test_generations_of_other_prompts_are_not_paired():
    """Held-out prompts are generated for with the others but never enter the training pairs."""
    generations = {0: [{"id": i, "prompt": f"q{i}", "generated": "g"} for i in ("a", "held")]}
    pairs, counts = spin_pairs(generations, [{"id": "a", "prompt": "qa", "response": "y"}], iteration=0, history=1)
    assert [p["id"] for p in pairs] == ["a"] and counts == {"pairs": 1, "degenerate": 0}
