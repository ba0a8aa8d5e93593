"""Run identity: which directory (and W&B run) a run writes to, and the ablation axes that tell it apart.

A study holds many runs: its arms (`method`), seeds, and the values of whatever an ablation varies (`axes`:
`method.beta`, `method.reference`, ...). Each run gets its own directory, named from those values
(`runs/<study>/spin-beta=0.05-seed0`), so the jobs of a sweep never write into each other's results or W&B run.
`conf/paths/default.yaml` builds `paths.run_dir` with the `spin_bench.run_name` resolver registered here.

The CLI adds to `axes` every key that the command line or a sweeper sets (`axes_from_overrides`), so that
`spin-bench method=spin method.beta=0.05,0.1` gives two runs with no configuration. A run directory also
remembers the config it was made with (`run_info.json`): running another config into it is refused
(`check_run_dir`), rather than mixing two configs' rows in one results file.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Overrides that never name an axis: the run name carries method and seed already; the rest choose where and
# how a run is written or launched (whole sections, for the last three), not what it computes.
NOT_AXES = ("method", "seed", "study", "axes", "optimized_metric", "experiment", "hparams_search")
NOT_AXES_SECTIONS = ("paths", "logger", "hydra")
# Keys whose values may differ between two runs of one run directory (where and how it is logged).
UNCOMPARED = ("paths", "logger", "optimized_metric", "axes")
_MISSING = object()


def axis_value(cfg: DictConfig, key: str) -> Any:
    """The value of axis `key`: a scalar config value, or for a config group (`train`) its option's `name`."""
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, DictConfig):
        if "name" not in value:
            raise ValueError(f"axes names {key!r}, a config section without a `name` to label runs by")
        value = value.name
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return value


def axis_values(cfg: DictConfig) -> dict[str, Any]:
    """{axis key: value} for every key of `cfg.axes` (checked: each must exist in the config)."""
    values = {}
    for key in cfg.axes:
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            raise ValueError(f"axes names {key!r}, which is not a key of the config")
        values[key] = axis_value(cfg, key)
    return values


def axis_labels(keys: list[str]) -> dict[str, str]:
    """Short labels: the last part of each key (`method.beta` -> `beta`), the whole key where two would clash."""
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves, strict=True)}


def format_value(value: Any) -> str:
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return text.replace("/", "_").replace(" ", "")


def run_name(cfg: DictConfig) -> str:
    """`<method>-<axis>=<value>-...-seed<seed>`, e.g. `spin-beta=0.05-seed0` (just `spin-seed0` without axes)."""
    values = axis_values(cfg)
    labels = axis_labels(list(values))
    parts = [f"{labels[k]}={format_value(v)}" for k, v in values.items()]
    return "-".join([cfg.method.name, *parts, f"seed{cfg.seed}"])


def axes_from_overrides(overrides: list[str]) -> list[str]:
    """The config keys a job's Hydra overrides set (`method.beta=0.05`, `train=zero3` -> `train.name`), minus
    `NOT_AXES` and `NOT_AXES_SECTIONS`; deletions (`~key`) are skipped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        section = key.split("/")[0].split(".")[0]  # `hydra/launcher`, `logger.mode`, `paths.root_dir`
        if override.is_delete() or key in NOT_AXES or section in NOT_AXES_SECTIONS:
            continue
        keys.append(f"{key}.name" if "." not in key and _is_group(key) else key)
    return keys


def _is_group(key: str) -> bool:
    from spin_bench.cli import CONF_DIR

    return (CONF_DIR / key).is_dir()


def comparable_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in UNCOMPARED}


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    keys = sorted(set(old) | set(new), key=str)
    out = []
    for k in keys:
        a, b, name = old.get(k, _MISSING), new.get(k, _MISSING), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return out


def check_run_dir(run_info: dict | None, config: dict, run_dir) -> None:
    """Refuse to run `config` into a run directory made with another config (`run_info`: what it holds)."""
    if not run_info or "config" not in run_info:
        return
    differing = config_differences(comparable_config(run_info["config"]), comparable_config(config))
    if differing:
        shown = ", ".join(differing[:5]) + (" ..." if len(differing) > 5 else "")
        raise ValueError(
            f"{run_dir} holds a run made with another config (differing keys: {shown}). Give this run its own "
            f"directory: another study (`study=<name>`), or name the varied keys as axes (`axes=[{differing[0]}]`)"
        )


def register_resolver() -> None:
    if not OmegaConf.has_resolver("spin_bench.run_name"):
        OmegaConf.register_new_resolver("spin_bench.run_name", lambda *, _root_: run_name(_root_))
