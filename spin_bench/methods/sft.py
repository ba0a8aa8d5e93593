"""The SFT baseline: continue supervised fine-tuning on the SPIN prompts with their real answers (the data SPIN
sees, without self-play), the same number of optimizer steps per iteration as SPIN."""

from __future__ import annotations

from typing import ClassVar

from spin_bench.methods.base import (
    Iteration,
    IterationConfig,
    IterationInputs,
    Stages,
    budgeted,
    iteration,
    split_heldout,
)


class Sft:
    config: ClassVar = IterationConfig
    splits: ClassVar = ("spin_prompts",)

    def iterate(self, config: IterationConfig, inputs: IterationInputs, stages: Stages) -> Iteration:
        real, _ = split_heldout(inputs.world.rows("spin_prompts"), config.heldout, config.prompts, "spin_prompts")
        recipe = budgeted(config, inputs.t, len(real))
        trained = stages.train("sft", inputs.checkpoints[-1], real, recipe)
        return iteration(trained, {"steps_budget": recipe.max_steps, "rows": len(real)})


METHOD = Sft()
