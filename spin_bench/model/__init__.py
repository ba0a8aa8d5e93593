"""The model stage (conf/model): the base model self-play starts from.

`config` (the typed section), `tokenizer` (byte-level BPE with SPIN's prompt format as chat template), `llama`
(the tiny Llama), `base` (the cached base stage: `build_base`).
"""
