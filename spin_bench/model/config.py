"""conf/model: the base model self-play starts from. `source: scratch` builds a tiny Llama and its tokenizer from
this config and SFTs it (the base stage, with the `base_sft` recipe); `source: pretrained` names a checkpoint.

Light on purpose (no torch): spin_bench/config.py types and checks every section at start-up.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from spin_bench.engine.config import Dtype, Loading, Plateau, Recipe
from spin_bench.schema import STRICT, Flag, Positive


@dataclass(frozen=True, config=STRICT)
class TokenizerConfig:
    vocab_size: Positive  # byte-level BPE trained on the SFT corpus, digits split one per token
    model_max_length: Positive


@dataclass(frozen=True, config=STRICT)
class Architecture:
    """LlamaConfig's shape arguments."""

    hidden_size: Positive
    intermediate_size: Positive
    num_hidden_layers: Positive
    num_attention_heads: Positive
    num_key_value_heads: Positive
    tie_word_embeddings: Flag = True

    @model_validator(mode="after")
    def _heads_divide(self) -> Architecture:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                             f"{self.num_attention_heads}")  # fmt: skip
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not divisible by "
                             f"num_key_value_heads {self.num_key_value_heads}")  # fmt: skip
        return self


@dataclass(frozen=True, config=STRICT)
class ScratchModel:
    """A tiny Llama built from config and SFT'd from scratch on the world's sft_train split."""

    source: Literal["scratch"]
    name: str
    dtype: Dtype
    trust_remote_code: Flag
    tokenizer: TokenizerConfig
    architecture: Architecture
    base_sft: Recipe  # the base stage's recipe; its `epochs` is a cap: training stops at the plateau
    plateau: Plateau  # when the base model is done: its held-out SFT loss (the world's `valid` split) plateaus

    @property
    def loading(self) -> Loading:
        return Loading(self.dtype, None, self.trust_remote_code)


@dataclass(frozen=True, config=STRICT)
class PretrainedModel:
    """An already SFT'd checkpoint: a hub id or a local HF directory (safetensors weights only)."""

    source: Literal["pretrained"]
    name: str
    name_or_path: Annotated[str, Field(min_length=1)]
    revision: str | None
    dtype: Dtype
    trust_remote_code: Flag

    @property
    def loading(self) -> Loading:
        return Loading(self.dtype, self.revision, self.trust_remote_code)


ModelConfig = ScratchModel | PretrainedModel
MODEL_SOURCES: dict[str, type[ScratchModel] | type[PretrainedModel]] = {
    "scratch": ScratchModel,
    "pretrained": PretrainedModel,
}
