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
    """Pairs `{"id", "iteration", "prompt", "chosen", "rejected"}`: for each chosen iteration, one per row of
    `real` (its answer against that iteration's generation for the same id; generations of other prompts, such
    as held-out ones, are not paired). Counts: `pairs`, and `degenerate` (generated == real, a pair that carries
    no signal; kept, as in the paper)."""
    pairs = []
    for t in history_iterations(iteration, history):
        if t not in generations:
            raise KeyError(f"iteration {iteration} trains on the generations of iteration {t}, which are missing")
        generated = {row["id"]: row["generated"] for row in generations[t]}
        for row in real:
            if row["id"] not in generated:
                raise KeyError(f"SPIN prompt {row['id']!r} has no generation at iteration {t}")
            pairs.append(
                {"id": row["id"], "iteration": t, "prompt": row["prompt"], "chosen": row["response"],
                 "rejected": generated[row["id"]]}
            )  # fmt: skip
    degenerate = sum(p["chosen"].strip() == p["rejected"].strip() for p in pairs)
    return pairs, {"pairs": len(pairs), "degenerate": degenerate}
