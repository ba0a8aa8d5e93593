"""Where a run writes (conf/paths), which run it is, and where the libraries keep their caches.

A study holds many runs: its arms (`method`), seeds, and the values of whatever an ablation varies (its *axes*:
`method.beta`, `method.reference`, ...). Each run gets its own directory, named from those values
(`runs/<study>/spin-beta=0.05-seed0`), so the jobs of a sweep never write into each other's results or W&B run.

A run's axes are the keys listed in the config's `axes`, plus every key that the job's command line or sweeper
sets (`spin-bench method=spin method.beta=0.05,0.1` makes two runs with no configuration). They are worked out
from the composed config and the job's overrides, never written back into the config: `paths.run_dir` is the
interpolation `${spin_bench.run_name:}`, resolved by Hydra when it makes the job's own output directory (so
Hydra's files sit where the run's do, in RUN and MULTIRUN mode alike) and by `spin_bench.config` when it types
the config. Both read the job's overrides from `job_overrides`: Hydra's runtime config (`hydra.overrides.task`),
or those `given_overrides` names when the CLI checks a sweep's jobs before Hydra runs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import field_validator
from pydantic.dataclasses import dataclass

from spin_bench.schema import EXECUTION_ONLY, STRICT

# Overrides that never name an axis: the run name carries method and seed already; the rest choose where and
# how a run is written, launched or executed (whole sections, for the last three), not what it computes.
NOT_AXES = ("method", "seed", "study", "axes", "optimized_metric", "experiment", "hparams_search", *EXECUTION_ONLY)
NOT_AXES_SECTIONS = ("paths", "tracking", "hydra")
_MISSING = object()


@dataclass(frozen=True, config=STRICT)
class Paths:
    """conf/paths: everything the harness writes or caches stays under `root_dir` unless overridden."""

    root_dir: Path
    cache_dir: Path  # content-addressed stage outputs shared by every study, and the libraries' caches
    study_dir: Path  # runs/<study>: its runs, report.md and figures
    run_dir: Path  # runs/<study>/<run name>: results.jsonl, diagnostics.jsonl, run_info.json, wandb/

    @field_validator("root_dir", "cache_dir", "study_dir", "run_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()  # relative paths are taken from the working directory


_GIVEN_OVERRIDES: ContextVar[list[str] | None] = ContextVar("spin_bench_job_overrides", default=None)


def job_overrides() -> list[str]:
    """The overrides of the job whose config is being resolved: those given to `given_overrides`, else the
    running Hydra job's (its command line and sweep values), else none (the compose API, library use)."""
    given = _GIVEN_OVERRIDES.get()
    if given is not None:
        return given
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


@contextmanager
def given_overrides(overrides: list[str] | None) -> Iterator[None]:
    """Resolve configs (`paths.run_dir`) as the job of these overrides would (None: as the running job)."""
    token = _GIVEN_OVERRIDES.set(overrides)
    try:
        yield
    finally:
        _GIVEN_OVERRIDES.reset(token)


def axis_keys(cfg: DictConfig) -> list[str]:
    """The run's axes: `cfg.axes`, then every key the job's overrides set that is not among them."""
    listed = [str(k) for k in cfg.axes]
    return [*listed, *(k for k in axes_from_overrides(job_overrides()) if k not in listed)]


def axes_from_overrides(overrides: list[str]) -> list[str]:
    """The config keys a job's Hydra overrides set (`method.beta=0.05`; a group, `engine=zero3` -> `engine`; a
    section given whole, `+method.by_iteration={3: {beta: 5.0}}`, -> its leaves, `method.by_iteration.3.beta`),
    minus `NOT_AXES` and `NOT_AXES_SECTIONS`; deletions (`~key`) are skipped."""
    keys = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        section = key.split("/")[0].split(".")[0]  # `hydra/launcher`, `tracking.mode`, `paths.root_dir`
        if override.is_delete() or key in NOT_AXES or section in NOT_AXES_SECTIONS:
            continue
        if "." not in key and _is_group(key):
            keys.append(key)  # its value is the option's `name`
        elif not override.is_sweep_override() and isinstance(override.value(), dict):
            keys += _leaves(key, override.value())
        else:
            keys.append(key)
    return keys


def _leaves(prefix: str, value: Any) -> list[str]:
    """The keys a section given whole sets; an empty one sets none (Hydra merges a section override into the
    section: `method.by_iteration={}` leaves it as it was)."""
    if not isinstance(value, dict):
        return [prefix]
    return [leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)]


def _is_group(key: str) -> bool:
    return resources.files("spin_bench.conf").joinpath(key).is_dir()


def axis_values(cfg: DictConfig, keys: list[str]) -> dict[str, Any]:
    """{axis key: value}: a scalar config value, or for a config section its `name` (`engine.name`)."""
    values = {}
    for key in keys:
        value = _select(cfg, key)
        if value is _MISSING:
            raise KeyError(f"axes names {key!r}, which is not a key of the config")
        if isinstance(value, DictConfig) and "name" in value:
            value = value.name  # a config group's option
        elif isinstance(value, DictConfig):
            raise KeyError(f"axes names {key!r}, a config section without a `name` to label runs by")
        values[key] = (
            OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
        )
    return values


def _select(cfg: DictConfig, key: str) -> Any:
    """The value at a dotted key, whose parts may be integer keys (`method.by_iteration.3.beta`)."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig):
            return _MISSING
        number = int(part) if part.lstrip("-").isdigit() else None
        found = part if part in node else number if number is not None and number in node else None
        if found is None:
            return _MISSING
        node = node[found]
    return node


def axis_labels(keys: list[str]) -> dict[str, str]:
    """Short labels: the last part of each key (`method.beta` -> `beta`), the whole key where two would clash."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves, strict=True)}


def show_value(value: Any) -> str:
    """A value as the command line spells it: `null`, `true`, `0.05`, `a/b`, `[1,2]`, `{}`."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def format_value(value: Any) -> str:
    """A value as a run directory's name spells it: the command line's spelling, without '/' or spaces."""
    return show_value(value).replace("/", "_").replace(" ", "")


def run_name(method: str, axes: dict[str, Any], seed: int) -> str:
    """`<method>-<axis>=<value>-...-seed<seed>`, e.g. `spin-beta=0.05-seed0` (just `spin-seed0` without axes)."""
    labels = axis_labels(list(axes))
    return "-".join([method, *(f"{labels[k]}={format_value(v)}" for k, v in axes.items()), f"seed{seed}"])


def _run_name_resolver(*, _root_: DictConfig) -> str:
    return run_name(str(_root_.method.name), axis_values(_root_, axis_keys(_root_)), _root_.seed)


def local_jobs() -> int:
    """How many jobs of a multirun run at once on this machine (conf/hydra/launcher/local.yaml, the joblib
    launcher): one per CPU core (joblib's -1; each job then gets cores / jobs threads), or one at a time, in this
    process, when this process is one rank of a launched multi-process job (torchrun, `srun -n N`), whose ranks
    must run the same job together, or when the machine has an NVIDIA GPU (jobs would share its memory)."""
    launched = max(int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("SLURM_NTASKS", "1")))
    gpus = Path("/proc/driver/nvidia/gpus")
    has_gpu = gpus.is_dir() and any(gpus.iterdir()) and os.environ.get("CUDA_VISIBLE_DEVICES") != ""
    return 1 if launched > 1 or has_gpu else -1


def register_resolver() -> None:
    """`${spin_bench.run_name:}` in conf/paths: the run directory's name; `${spin_bench.local_jobs:}` in
    conf/hydra/default.yaml: `local_jobs()`."""
    if not OmegaConf.has_resolver("spin_bench.run_name"):
        OmegaConf.register_new_resolver("spin_bench.run_name", _run_name_resolver)
    if not OmegaConf.has_resolver("spin_bench.local_jobs"):
        OmegaConf.register_new_resolver("spin_bench.local_jobs", local_jobs)


def is_local_path(path: str | Path) -> bool:
    """A path that names something local (absolute, relative with '.' or '~', or existing); anything else a
    dataset or checkpoint names is a hub id."""
    return str(path).startswith(("/", ".", "~")) or Path(path).exists()


def library_env(cache_dir: Path, offline: bool) -> dict[str, str]:
    """Environment for the libraries, set before they are imported (they read it at import time): HF, DeepSpeed's
    JIT-built ops, wandb, matplotlib and Jupyter cache under `cache_dir`, never in $HOME; with `offline` (nothing
    to download), the HF libraries never try the network and wait on it."""
    cache_dir = Path(cache_dir).resolve()
    env = {
        "HF_HOME": str(cache_dir / "hf"),
        "TORCH_EXTENSIONS_DIR": str(cache_dir / "torch_extensions"),
        "WANDB_CACHE_DIR": str(cache_dir / "wandb" / "cache"),
        "WANDB_CONFIG_DIR": str(cache_dir / "wandb" / "config"),
        "WANDB_DATA_DIR": str(cache_dir / "wandb" / "data"),
        "MPLCONFIGDIR": str(cache_dir / "matplotlib"),
        "JUPYTER_CONFIG_DIR": str(cache_dir / "jupyter" / "config"),
        "JUPYTER_DATA_DIR": str(cache_dir / "jupyter" / "data"),
        "IPYTHONDIR": str(cache_dir / "ipython"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if offline:
        env |= dict.fromkeys(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"), "1")
    return env


# glibc's allocator settings for the processes that run jobs (`spin-bench` puts them in the environment of the
# joblib workers and SLURM jobs it starts; glibc reads GLIBC_TUNABLES only as a process starts, so a job that runs
# in spin-bench's own process keeps the defaults unless the user exports them: under the basic launcher, torchrun,
# a single run (hydra.mode=RUN), or on a machine with a GPU, where jobs run one at a time in that process). By
# default glibc gives freed memory at the top of its heap back to the OS once more than twice its mmap threshold
# (at most 64 MiB) lies free there, and the next allocation maps it again, a page fault per 4 KiB: a training step
# frees and reallocates its activations, and a 200-step base stage took about 3.6 million page faults. Keeping up
# to 1 GiB free in the heap cuts them to 1.35 million and the stage's time by 8-12%; allocations above 32 MiB
# (glibc's own ceiling for that threshold) are still mapped and unmapped one by one, so a large tensor never stays
# in the heap. Measured in docs/benchmarks.md (bench/allocator.py). Where memory comes from changes nothing that is
# computed (the benchmark checks it).
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def allocator_tunables(current: str | None) -> str:
    """GLIBC_TUNABLES for the jobs' processes: `current` (the user's own, kept as it is) plus each setting of
    MALLOC_TUNABLES that it does not set itself."""
    given = [item for item in (current or "").split(":") if item]
    keys = {item.split("=", 1)[0] for item in given}
    return ":".join(given + [item for item in MALLOC_TUNABLES.split(":") if item.split("=", 1)[0] not in keys])


def configure_environment(cache_dir: Path, offline: bool) -> None:
    """Set `library_env` in this process; variables already set are kept."""
    for key, value in library_env(cache_dir, offline).items():
        os.environ.setdefault(key, value)
