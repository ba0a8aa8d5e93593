"""Check every job of a `spin-bench` command before Hydra launches any of them.

Hydra writes each job's own files (.hydra/, the multirun directory) before the job's code runs, and a basic
sweep would fail at its second job after the first has trained. So the CLI first composes each job the way
Hydra's launcher will (its mode, the basic sweeper's grid, `load_sweep_config`) and runs spin_bench.config's
checks on every one of them; only then does Hydra start. Composition errors (an unknown option, a key the config
lacks, an override Hydra cannot parse) become one line each too. Sweepers that choose their values as they go
(Optuna) are checked on their primary config; each trial is checked again when it starts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

from hydra import initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from spin_bench.config import ConfigError, RunConfig, check_inputs, load

CONFIG_MODULE = "spin_bench.conf"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def preflight(overrides: list[str], multirun: bool = False, config_name: str = "config") -> list[RunConfig]:
    """The typed config of every job the command would launch, each checked (spin_bench.config: values,
    combinations, files on disk). Raises ConfigError with one line per problem, naming the job when a sweep has
    several."""
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        try:
            primary = loader.load_configuration(
                config_name, overrides, RunMode.MULTIRUN, validate_sweep_overrides=False
            )
            jobs: list[tuple[list[str], DictConfig | Exception]]
            if not multirun and primary.hydra.mode != RunMode.MULTIRUN:  # as Hydra decides (hydra.mode=RUN: one job)
                jobs = [(overrides, loader.load_configuration(config_name, overrides, RunMode.RUN))]
            else:
                jobs = list(_sweep_jobs(loader, primary))
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError([_composition_line(err, overrides, loader)]) from None
        configs: list[RunConfig] = []
        failed: dict[tuple[str, ...], Exception] = {}
        per_job: dict[str, list[str]] = {}
        for job_overrides, composed in jobs:
            if isinstance(composed, Exception):
                failed[tuple(job_overrides)] = composed
                continue
            try:
                config = load(_task_config(composed), overrides=list(composed.hydra.overrides.task))
                check_inputs(config)
                configs.append(config)
            except ConfigError as err:
                per_job[" ".join(job_overrides)] = err.lines
        errors = _tagged(per_job, len(jobs) - len(failed))
        errors += _failed_jobs(failed, [j for j, c in jobs if not isinstance(c, Exception)], overrides, loader)
        errors += _shared_run_dirs(configs)
        if errors:
            raise ConfigError(errors)
        return configs


def _tagged(per_job: dict[str, list[str]], jobs: int) -> list[str]:
    """The lines of the `jobs` composed jobs, each once: a line every job has as it is, one that only some jobs
    have after the overrides of the job it belongs to (`[method=sft seed=1] ...`)."""
    agree = per_job and len(per_job) == jobs
    everywhere = set.intersection(*(set(lines) for lines in per_job.values())) if agree else set()
    return [line if line in everywhere or jobs == 1 else f"[{job}] {line}"
            for job, lines in per_job.items() for line in lines]  # fmt: skip


def _sweep_jobs(loader: ConfigLoader, primary: DictConfig) -> Iterator[tuple[list[str], DictConfig | Exception]]:
    """(overrides, composed config or the composition error) of each job of a multirun."""
    if primary.hydra.sweeper._target_ != BASIC_SWEEPER:
        yield list(primary.hydra.overrides.task), primary  # Optuna & co. pick values as they go
        return
    params = [f"{k}={v}" for k, v in (primary.hydra.sweeper.params or {}).items()]
    parsed = OverridesParser.create(config_loader=loader).parse_overrides([*params, *primary.hydra.overrides.task])
    for batch in BasicSweeper.split_arguments(parsed, max_batch_size=None):
        for job in batch:
            try:
                yield job, loader.load_sweep_config(primary, job)
            except (HydraException, OmegaConfBaseException) as err:
                yield job, err


def _task_config(composed: DictConfig) -> DictConfig:
    task = copy.deepcopy(composed)
    with open_dict(task):
        del task["hydra"]
    return task


def _composition_line(err: BaseException, overrides: list[str], loader: ConfigLoader) -> str:
    """One line for an error Hydra raises while composing."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, option = err.missing_cfg_file.rsplit("/", 1)
        options = ", ".join(o for o in (err.options or loader.get_group_options(group)))
        return f"{group}={option}: no such option; {group} is one of {options}"
    if isinstance(err, OverrideParseException):
        return f"cannot parse the overrides ({str(err).splitlines()[0]}); see `spin-bench --hydra-help`"
    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(err, ConfigCompositionException) and key:
        given = next((o for o in overrides if o.lstrip("+~").split("=")[0] == key), key)
        parent, _, leaf = key.rpartition(".")
        keys = _keys(loader, parent, [o for o in overrides if o != given])
        where = f"{parent or 'the config'} has {', '.join(keys)}" if keys else "`spin-bench --cfg job` shows the keys"
        return f"{given}: {leaf!r} is not a key of {parent or 'the config'}; {where}"
    return str(err).splitlines()[0]


def _keys(loader: ConfigLoader, section: str, overrides: list[str]) -> list[str]:
    try:
        cfg = loader.load_configuration("config", overrides, RunMode.MULTIRUN, validate_sweep_overrides=False)
    except (HydraException, OmegaConfBaseException):
        return []
    node = OmegaConf.select(cfg, section) if section else cfg
    return [str(k) for k in node if k != "hydra"] if isinstance(node, DictConfig) else []


def _failed_jobs(failed: dict[tuple[str, ...], Exception], composed: list[list[str]], overrides: list[str],
                 loader: ConfigLoader) -> list[str]:  # fmt: skip
    """Lines for the jobs Hydra could not compose. An override of a key that only some arms have (`method.beta`
    on the default spin, sft, dpo study) gets the commands that apply it where it exists."""
    lines = []
    methods_ok = sorted({_method(job) for job in composed})
    for job, err in failed.items():
        key = getattr(err.__cause__, "full_key", None)
        given = next((o for o in overrides if key and o.lstrip("+").split("=")[0] == key), None)
        without = sorted({_method(j) for j, e in failed.items() if getattr(e.__cause__, "full_key", None) == key})
        if key and given and key.startswith("method.") and not methods_ok and len(without) > 1:
            arms = ", ".join(without)
            lines.append(f"{given}: {key.split('.', 1)[1]!r} is not a key of any arm of this study ({arms}); "
                         "`spin-bench --cfg job method=<arm>` shows an arm's keys")  # fmt: skip
        elif key and given and key.startswith("method.") and methods_ok:
            lines.append(
                f"{given}: the {', '.join(without)} arm{'s' if len(without) > 1 else ''} of this study "
                f"{'have' if len(without) > 1 else 'has'} no key {key.split('.', 1)[1]!r} ({', '.join(methods_ok)} "
                f"{'do' if len(methods_ok) > 1 else 'does'}); apply it where it exists and run the others without it, "
                f"into the same study: `spin-bench method={','.join(methods_ok)} {given}` and "
                f"`spin-bench method={','.join(without)}`"
            )  # fmt: skip
        else:
            lines.append(_composition_line(err, list(job), loader))
    return lines


def _method(job: Sequence[str]) -> str:
    return next((o.split("=", 1)[1] for o in job if o.startswith("method=")), "spin")


def _shared_run_dirs(configs: list[RunConfig]) -> list[str]:
    """Two jobs of one command must not write one run directory (one results file, one W&B run)."""
    seen: dict[str, RunConfig] = {}
    lines = []
    for config in configs:
        other = seen.setdefault(str(config.paths.run_dir), config)
        if other is not config:
            lines.append(f"paths.run_dir: two jobs would write {config.paths.run_dir}; name the keys they vary as "
                         "axes (axes=[<key>,...]) so that each gets its own directory")  # fmt: skip
    return lines
