"""The policy model: a tiny Llama built from config (embedded scale) or a pretrained checkpoint (paper scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_tiny_llama(architecture: dict[str, Any], tokenizer, seed: int) -> LlamaForCausalLM:
    """A randomly initialised Llama whose shape comes from `model.architecture` in the config."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=tokenizer.model_max_length,
        **architecture,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def loading_spec(model_cfg) -> dict:
    """The settings that change what a loaded checkpoint computes: part of every cache key that loads one."""
    return {"dtype": model_cfg.dtype, "revision": model_cfg.get("revision"), "remote_code": model_cfg.trust_remote_code}


def check_checkpoint(path: str | Path, dtype: str = "float32") -> None:
    """Fail early, naming the problem, on a local checkpoint that cannot load (hub ids are checked by the hub).

    A path is local when it is absolute, starts with '.', or exists; anything else is taken as a hub id.
    """
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    local = Path(path)
    if local.is_absolute() or str(path).startswith(".") or local.exists():
        if not (local / "config.json").is_file():
            raise FileNotFoundError(f"checkpoint {local} is not an HF model directory (no config.json)")
        if not any(local.glob("*.safetensors")):
            raise FileNotFoundError(f"checkpoint {local} has no .safetensors weights (pickle weights are refused)")


def load_checkpoint(path: str | Path, dtype: str = "float32", trust_remote_code: bool = False, revision=None):
    """Load an HF causal LM and its tokenizer from a local directory or a hub id, safetensors only."""
    check_checkpoint(path, dtype)
    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision}
    model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[dtype], use_safetensors=True, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:  # many hub tokenizers (Llama, Mistral) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def load_configured(checkpoint: str | Path, model_cfg):
    """`load_checkpoint` with the loading settings of `conf/model` (dtype, revision, remote code)."""
    return load_checkpoint(checkpoint, model_cfg.dtype, model_cfg.trust_remote_code, model_cfg.get("revision"))
