"""The generation stage (conf/generation): the current model answers the SPIN prompts.

`config` (the typed section), `generate` (the cached stage: HF generate with length bucketing, or vLLM).
"""
