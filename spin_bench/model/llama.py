"""The embedded model: a tiny Llama whose shape comes from conf/model (`architecture`)."""

from __future__ import annotations

import dataclasses

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from spin_bench.model.config import Architecture


def build_tiny_llama(architecture: Architecture, tokenizer: PreTrainedTokenizerBase, seed: int,
                     **overrides: float) -> LlamaForCausalLM:  # fmt: skip
    """A randomly initialised Llama of that shape for `tokenizer` (and `overrides` of LlamaConfig, such as a
    wider `initializer_range`), seeded."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=tokenizer.model_max_length,
        **dataclasses.asdict(architecture),
        **overrides,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
