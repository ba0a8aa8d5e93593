"""SPIN (Chen et al., ICML 2024): one self-play iteration, top to bottom.

At iteration t the current model p_t answers every SPIN prompt x with y' (the generation stage, cached). The
pairs (chosen = the real answer y, rejected = y') of the last `history` iterations form the training set (the
official recipe: h = 2, iterations t and t-1). p_{t+1} is trained from p_t with the DPO-style loss

    -log sigmoid(beta * [(log p(y|x) - log p_ref(y|x)) - (log p(y'|x) - log p_ref(y'|x))])

whose reference is p_t (`reference: previous`; or the base model, or alpha-SPIN's mixture of the two), for the
step budget every method shares. The held-out prompts' pairs are scored after training: their reward accuracy
(over the pairs whose answers differ) is SPIN's convergence signal (`early_stop_below`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic.dataclasses import dataclass

from spin_bench.data.rows import PromptRow
from spin_bench.generation.config import GenerationRow
from spin_bench.methods.base import (
    Iteration,
    IterationInputs,
    PreferenceConfig,
    Stages,
    budgeted,
    heldout_similarity,
    history_iterations,
    iteration,
    split_heldout,
)
from spin_bench.schema import STRICT, NonNegative


@dataclass(frozen=True, config=STRICT)
class SpinConfig(PreferenceConfig):
    samples_logged: NonNegative  # per iteration, a W&B table of this many prompts with real and generated answers


class Spin:
    config: ClassVar = SpinConfig
    splits: ClassVar = ("spin_prompts",)

    def iterate(self, config: SpinConfig, inputs: IterationInputs, stages: Stages) -> Iteration:
        t = inputs.t
        real, heldout_real = split_heldout(inputs.world.rows("spin_prompts"), config.heldout, config.prompts,
                                           "spin_prompts")  # fmt: skip
        # p_s's answers for every iteration s in the history; earlier ones are cache hits of their own iteration
        generations = {s: stages.generate(inputs.checkpoints[s], real + heldout_real)
                       for s in history_iterations(t, config.history)}  # fmt: skip
        pairs = spin_pairs(generations, real, t, config.history)
        heldout = spin_pairs({t: generations[t]}, heldout_real, t, 1)
        recipe = budgeted(config, t, len(real))
        trained = stages.train("spin", inputs.checkpoints[-1], pairs, recipe, config.loss(), informative(heldout))
        current = [p for p in pairs if p["iteration"] == t]
        diagnostics = pair_diagnostics(pairs, current, real, generations[t]) | {"steps_budget": recipe.max_steps}
        diagnostics |= heldout_diagnostics(stages, inputs.checkpoints[-1], heldout)
        return iteration(trained, diagnostics, current[: config.samples_logged])


def spin_pairs(generations: Mapping[int, Sequence[GenerationRow]], real: Sequence[PromptRow], t: int,
               history: int | None) -> list[dict[str, Any]]:  # fmt: skip
    """Pairs `{"id", "iteration", "prompt", "chosen", "rejected"}`: for each iteration of the history, one per row
    of `real` (its answer against that iteration's generation for the same id; generations of other prompts, such
    as held-out ones, are not paired). Degenerate pairs (generated == real) are kept, as in the paper."""
    pairs = []
    for s in history_iterations(t, history):
        if s not in generations:
            raise KeyError(f"iteration {t} trains on the generations of iteration {s}, which are missing")
        generated = {row["id"]: row["generated"] for row in generations[s]}
        for row in real:
            if row["id"] not in generated:
                raise KeyError(f"SPIN prompt {row['id']!r} has no generation at iteration {s}")
            pairs.append({"id": row["id"], "iteration": s, "prompt": row["prompt"], "chosen": row["response"],
                          "rejected": generated[row["id"]]})  # fmt: skip
    return pairs


def degenerate(pair: Mapping[str, Any]) -> bool:
    """A pair whose generated answer is the real one: it carries no preference (its loss has no gradient)."""
    return bool(pair["chosen"].strip() == pair["rejected"].strip())


def informative(heldout: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The held-out pairs the reward accuracy is scored on: those whose answers differ. A degenerate pair has equal
    rewards under any model and TRL counts a tie as a miss, so with them chance would read under 0.5 (at 15%
    degenerate pairs, 0.43) and a model that tells every real answer from its own could not reach 1."""
    return [p for p in heldout if not degenerate(p)]


def heldout_diagnostics(stages: Stages, checkpoint: str, heldout: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The held-out pairs' CHES under the model the iteration starts from, how many of them are degenerate (left
    out of the held-out reward accuracy) and how many that accuracy is over (`heldout/pairs/scored`)."""
    degenerate_pairs = sum(degenerate(p) for p in heldout)
    counts = {"heldout/pairs/degenerate": degenerate_pairs, "heldout/pairs/scored": len(heldout) - degenerate_pairs}
    return heldout_similarity(stages, checkpoint, heldout) | counts


def pair_diagnostics(pairs: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]],
                     real: Sequence[PromptRow], generated: Sequence[GenerationRow]) -> dict[str, Any]:  # fmt: skip
    """What the self-play pairs look like: how many, how many identical (they carry no signal), the lengths of
    the real and generated answers of this iteration, how alike their texts are (difflib's ratio, 1 = equal),
    and, where the world knows the numeric answers, the share of generated answers that are correct."""
    answers = {row["id"]: row.get("answer") for row in real}
    final = {row["id"]: _final_answer(row["generated"]) for row in generated if row["id"] in answers}
    known = [i for i, a in answers.items() if a is not None]
    out = {
        "pairs": len(pairs),
        "degenerate": sum(degenerate(p) for p in pairs),
        "generated_chars": _mean(len(p["rejected"]) for p in current),
        "real_chars": _mean(len(p["chosen"]) for p in current),
        "pair_text_similarity": _mean(
            difflib.SequenceMatcher(None, p["chosen"], p["rejected"]).ratio() for p in current
        ),
    }
    if known:
        out["generated_correct"] = sum(final.get(i) == answers[i] for i in known) / len(known)
    return out


def _final_answer(text: str) -> int | None:
    found = re.findall(r"#### (-?[0-9]+)", text)  # the suite's strict-match filter: the first answer line
    return int(found[0]) if found else None


def _mean(values: Any) -> float:
    listed = list(values)
    return sum(listed) / len(listed) if listed else 0.0


METHOD = Spin()
