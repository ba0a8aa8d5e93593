"""The training engine (conf/engine): HF Trainer with DeepSpeed ZeRO, through TRL's trainers.

`config` (the typed engine section, the `Recipe` every training stage states its budget with, `Loading`),
`checkpoint` (how every stage loads a checkpoint), `train` (SFT and preference training, the cached training
stage).
"""
