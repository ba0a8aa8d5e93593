"""Loading a checkpoint, as every stage does: a standard HF directory or a hub id, safetensors weights only, in
the dtype of `Loading`, with remote code trusted only when the config says so."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from spin_bench import ranks
from spin_bench.engine.config import Loading, check_checkpoint
from spin_bench.paths import is_local_path

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_checkpoint(
    path: str | Path, loading: Loading | None = None, device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """An HF causal LM and its tokenizer, padded on the left (decoder-only generation). The weights are loaded
    straight onto `device` when one is given (`load_for_inference`), else onto the CPU, where a trainer
    takes them over (HF Trainer places them; DeepSpeed ZeRO-3 partitions them when its engine starts)."""
    loading = loading or Loading()
    check_checkpoint(path)
    path = Path(path).expanduser() if is_local_path(path) else path
    kwargs = {"trust_remote_code": loading.trust_remote_code, "revision": loading.revision}
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=DTYPES[loading.dtype], use_safetensors=True, device_map=device, **kwargs
    )
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:  # many hub tokenizers (Llama, Mistral) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def load_for_inference(path: str | Path, loading: Loading) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_checkpoint` for generation, evaluation and probes: on this rank's device (its GPU where CUDA is,
    `ranks.device`), in eval mode."""
    model, tokenizer = load_checkpoint(path, loading, ranks.device())
    return model.eval(), tokenizer
