"""spin-bench: an experiment-tracking benchmark harness for Self-Play fINe-tuning (SPIN) and its baselines."""

__version__ = "0.1.0"
