"""The DPO baseline: rounds of DPO on the world's fixed preference pairs (`dpo_pairs`), each round's reference
the model it starts from. Round 1 is the paper's DPO model; the rounds match SPIN's iterations step for step
(the same budget on pairs that never change, where SPIN's come from the model itself). Each round trains on the
pairs after those of the rounds before it, as one pass over a preference dataset would (the paper's DPO saw each
of its 62k pairs once); only when the split runs out do pairs come round again."""

from __future__ import annotations

from typing import ClassVar

from spin_bench.methods.base import (
    Iteration,
    IterationInputs,
    PreferenceConfig,
    Stages,
    budgeted,
    heldout_similarity,
    iteration,
    round_rows,
    split_heldout,
)


class Dpo:
    config: ClassVar = PreferenceConfig
    splits: ClassVar = ("spin_prompts", "dpo_pairs")

    def iterate(self, config: PreferenceConfig, inputs: IterationInputs, stages: Stages) -> Iteration:
        # the budget is SPIN's, counted on the SPIN prompts it would train on
        real, _ = split_heldout(inputs.world.rows("spin_prompts"), config.heldout, config.prompts, "spin_prompts")
        pairs, heldout = split_heldout(inputs.world.rows("dpo_pairs"), config.heldout, config.prompts, "dpo_pairs")
        recipe = budgeted(config, inputs.t, len(real))
        pairs = round_rows(pairs, config, inputs.t, len(real))
        trained = stages.train("dpo", inputs.checkpoints[-1], pairs, recipe, config.loss(), heldout)
        diagnostics = {"steps_budget": recipe.max_steps, "pairs": len(pairs), "heldout/pairs/scored": len(heldout)}
        return iteration(trained, diagnostics | heldout_similarity(stages, inputs.checkpoints[-1], heldout))


METHOD = Dpo()
