"""The evaluation stage (conf/evaluation): every iteration's checkpoint scored with lm-evaluation-harness.

`config` (the typed section with the suite's headline metrics), `harness` (the cached stage over lm-eval, the
embedded task directory, the equivalent `lm_eval` command), `tasks/` (the embedded suite's task YAMLs).
"""
