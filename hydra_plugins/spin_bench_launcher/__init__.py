"""spin-bench's Hydra plugins: Hydra instantiates a launcher only from the `hydra_plugins` namespace package."""
