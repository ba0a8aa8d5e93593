"""Pair building: what each self-play iteration trains on.

SPIN's pair for a prompt x is (chosen = the real answer y, rejected = the model's own answer y'). The official
recipe trains iteration t >= 1 on the pairs generated at iterations t and t-1 (history h = 2); h = 1 uses only
the current generations, h = None all of them so far.
"""

from __future__ import annotations


def history_iterations(iteration: int, history: int | None) -> list[int]:
    """The iterations whose generations iteration `iteration` (0-based) trains on: the last `history` of them."""
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    if history is not None and history < 1:
        raise ValueError(f"history must be >= 1 or None (all iterations), got {history}")
    first = 0 if history is None else max(0, iteration - history + 1)
    return list(range(first, iteration + 1))


def spin_pairs(
    generations: dict[int, list[dict]], real: list[dict], iteration: int, history: int | None
) -> tuple[list[dict], dict[str, int]]:
    """Pairs `{"id", "iteration", "prompt", "chosen", "rejected"}` from the chosen iterations' generations, and
    counts: `pairs`, and `degenerate` (generated == real, a pair that carries no signal; kept, as in the paper)."""
    answers = {row["id"]: row["response"] for row in real}
    pairs = []
    for t in history_iterations(iteration, history):
        if t not in generations:
            raise KeyError(f"iteration {iteration} trains on the generations of iteration {t}, which are missing")
        for row in generations[t]:
            if row["id"] not in answers:
                raise KeyError(f"generation {row['id']!r} of iteration {t} has no real answer among the SPIN prompts")
            pairs.append(
                {"id": row["id"], "iteration": t, "prompt": row["prompt"], "chosen": answers[row["id"]],
                 "rejected": row["generated"]}
            )  # fmt: skip
    degenerate = sum(p["chosen"].strip() == p["rejected"].strip() for p in pairs)
    return pairs, {"pairs": len(pairs), "degenerate": degenerate}
