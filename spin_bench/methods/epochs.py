"""The "epochs" arm (the paper's second question): is iterating better than training SPIN's first iteration for
longer? Every iteration trains on the same pairs as SPIN's iteration 0 (the real answers against the base
model's own), with the base model as the reference (`reference: base` in conf/method/epochs.yaml), for the step
budget of SPIN's iteration at the same index: at equal total steps the two arms differ only in whether the
model answers again and the reference moves. Its iteration 0 is SPIN's own (the same cached training stage).
"""

from __future__ import annotations

from typing import ClassVar

from spin_bench.methods.base import (
    Iteration,
    IterationInputs,
    PreferenceConfig,
    Stages,
    budgeted,
    iteration,
    split_heldout,
)
from spin_bench.methods.spin import heldout_diagnostics, informative, pair_diagnostics, spin_pairs


class Epochs:
    config: ClassVar = PreferenceConfig
    splits: ClassVar = ("spin_prompts",)

    def iterate(self, config: PreferenceConfig, inputs: IterationInputs, stages: Stages) -> Iteration:
        real, heldout_real = split_heldout(inputs.world.rows("spin_prompts"), config.heldout, config.prompts,
                                           "spin_prompts")  # fmt: skip
        base = inputs.checkpoints[0]
        generations = {0: stages.generate(base, real + heldout_real)}  # the base model's answers, generated once
        pairs, heldout = spin_pairs(generations, real, 0, 1), spin_pairs(generations, heldout_real, 0, 1)
        recipe = budgeted(config, inputs.t, len(real))  # SPIN's budget at this iteration: the pairs cycle
        # labelled "spin": at iteration 0 (start = reference = the base model) this is SPIN's own training stage
        trained = stages.train("spin", inputs.checkpoints[-1], pairs, recipe, config.loss(), informative(heldout))
        diagnostics = pair_diagnostics(pairs, pairs, real, generations[0]) | {"steps_budget": recipe.max_steps}
        diagnostics |= heldout_diagnostics(stages, inputs.checkpoints[-1], heldout)
        return iteration(trained, diagnostics)


METHOD = Epochs()
