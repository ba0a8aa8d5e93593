"""spin-bench: an experiment-tracking benchmark harness for Self-Play fINe-tuning (SPIN) and its baselines.

The package's folders name the pipeline's stages, each configured by the config group of the same name in
spin_bench/conf: data/ -> model/ -> engine/ -> generation/, evaluation/ -> methods/ -> pipeline -> tracking,
results; analysis/ reads what runs wrote; cli/ holds the entry points. docs/architecture.md has the map.
"""

from spin_bench.paths import register_resolver

__version__ = "0.1.0"

register_resolver()  # `${spin_bench.run_name:}` in conf/paths: the run directory's name
