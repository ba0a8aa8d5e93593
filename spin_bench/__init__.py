"""spin-bench: an experiment-tracking benchmark harness for Self-Play fINe-tuning (SPIN) and its baselines."""

from spin_bench.runs import register_resolver

__version__ = "0.1.0"

register_resolver()  # `${spin_bench.run_name:}` in conf/paths: the run directory's name
