"""conf/generation: how the current model answers the SPIN prompts (the paper's y'), and the rows it returns.

Light on purpose (no torch): spin_bench/config.py types and checks every section at start-up.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field, Strict, field_validator
from pydantic.dataclasses import dataclass

from spin_bench.schema import STRICT, Flag, Fraction, Integer, NonNegativeNumber, Positive, execution_only


@dataclass(frozen=True, config=STRICT)
class GenerationConfig:
    name: str
    backend: Literal["hf", "vllm"]  # vllm: GPUs only, `pip install '.[vllm]'`
    max_new_tokens: Positive
    temperature: NonNegativeNumber  # 0: greedy (the official HF recipe); > 0 samples, with top_p
    top_p: Annotated[float, Strict(), Field(gt=0, le=1)]
    batch_size: Positive
    seed: Integer
    prompt_format: str | None  # null: the model's chat template; or a string with {prompt}
    progress_bar: Flag
    gpu_memory_utilization: Fraction = 0.9  # vllm only

    def spec(self) -> dict[str, Any]:
        """What changes the answers: part of the generation stage's cache key (a progress bar does not)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in execution_only("generation")}

    @field_validator("prompt_format")
    @classmethod
    def _has_prompt_slot(cls, value: str | None) -> str | None:
        if value is not None and "{prompt}" not in value:
            raise ValueError("must contain {prompt}, where the SPIN prompt goes")
        return value


class GenerationRow(TypedDict):
    id: str
    prompt: str
    generated: str  # the model's answer, stripped
