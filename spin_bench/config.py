"""The run config, typed and checked in one place, before anything is written or run.

Hydra composes conf/ into a plain DictConfig; `load` turns it into a `RunConfig`: one frozen, typed section per
stage (each declared beside its stage, as TRL pairs a config with each trainer), the run's identity (axes, run
directory), and the resolved config as a dict for run_info.json and W&B. Every problem becomes one line naming
the key, the value given and what is allowed, and all of them are reported together as a `ConfigError`:

- types, ranges and allowed values of every key (pydantic, from the section classes), unknown keys;
- the method config at every iteration (`by_iteration` merged);
- combinations across sections (`cross_checks`): an eval suite for another world, a batch the accumulation
  steps do not divide, held-out rows that leave nothing to train on, an `optimized_metric` the suite lacks;
- `check_inputs`: what is on disk (a local checkpoint, a local dataset file, read line by line; an existing run
  directory made with another config; vLLM when chosen).

The CLI runs all of it for every job of a command before Hydra launches any (spin_bench/cli/preflight.py); each
job runs it again when it starts (spin_bench/cli/app.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from spin_bench import ranks
from spin_bench.data.config import DATA_SOURCES, DataConfig, EmbeddedData, HubData
from spin_bench.data.rows import check_local
from spin_bench.engine.config import EngineConfig, check_checkpoint
from spin_bench.evaluation.config import EvaluationConfig, metric_problem
from spin_bench.generation.config import GenerationConfig
from spin_bench.methods import method_for
from spin_bench.methods.base import IterationConfig, Method, split_problem
from spin_bench.model.config import MODEL_SOURCES, ModelConfig, PretrainedModel, ScratchModel
from spin_bench.paths import Paths, axis_keys, axis_values, given_overrides, show_value
from spin_bench.results import run_dir_conflict
from spin_bench.schema import STRICT, Integer
from spin_bench.stages import LAYOUT
from spin_bench.tracking import TrackingConfig


class ConfigError(ValueError):
    """Bad config values, one line each: `<key>=<value>: <what is wrong, and what is allowed>`."""

    def __init__(self, lines: list[str]):
        self.lines = list(dict.fromkeys(lines))
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True, config=STRICT)
class Study:
    """The top-level keys of conf/config.yaml."""

    study: typing.Annotated[str, Field(min_length=1, pattern=r"^[^/\s]+$")]  # names a directory: no '/' or spaces
    seed: Integer
    axes: list[str]
    optimized_metric: str


SECTIONS = ("paths", "data", "model", "engine", "method", "generation", "evaluation", "tracking")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run's config: what each stage receives, and who the run is."""

    study: str
    seed: int
    axes: dict[str, Any]  # the run's ablation axes: {dotted key: value}
    optimized_metric: str
    paths: Paths
    data: DataConfig
    model: ModelConfig
    engine: EngineConfig
    method: IterationConfig  # the method's own config class (its `config`), at iteration 0
    generation: GenerationConfig
    evaluation: EvaluationConfig
    tracking: TrackingConfig
    resolved: dict[str, Any]  # the composed config, resolved: run_info.json and the W&B run's config

    @property
    def arm(self) -> Method:
        return method_for(self.method.kind)

    def needs_hub(self) -> bool:
        """Whether any stage downloads from the HF hub (the embedded default never does)."""
        return (
            isinstance(self.data, HubData)
            or isinstance(self.model, PretrainedModel)
            or self.evaluation.suite != "embedded"
        )


def load(cfg: DictConfig, overrides: list[str] | None = None) -> RunConfig:
    """The typed run config of a composed Hydra config. `overrides` are the job's (default: those of the running
    Hydra job, none outside one): every key they set is an axis of the run. Raises ConfigError."""
    try:
        with given_overrides(overrides):
            axes = axis_values(cfg, axis_keys(cfg))
            resolved = OmegaConf.to_container(cfg, resolve=True)
    except (KeyError, OmegaConfBaseException) as err:
        raise ConfigError([_omegaconf_line(err)]) from None
    assert isinstance(resolved, dict)
    resolved.pop("hydra", None)
    errors: list[str] = []
    top = _typed(Study, {k: v for k, v in resolved.items() if k not in SECTIONS}, "", errors)
    sections: dict[str, Any] = {
        "paths": _typed(Paths, resolved.get("paths"), "paths", errors),
        "data": _typed_source(DATA_SOURCES, resolved.get("data"), "data", errors),
        "model": _typed_source(MODEL_SOURCES, resolved.get("model"), "model", errors),
        "engine": _typed(EngineConfig, resolved.get("engine"), "engine", errors),
        "method": _typed_method(resolved.get("method"), errors),
        "generation": _typed(GenerationConfig, resolved.get("generation"), "generation", errors),
        "evaluation": _typed(EvaluationConfig, resolved.get("evaluation"), "evaluation", errors),
        "tracking": _typed(TrackingConfig, resolved.get("tracking"), "tracking", errors),
    }
    if errors or top is None:
        raise ConfigError(errors)
    config = RunConfig(study=top.study, seed=top.seed, axes=axes, optimized_metric=top.optimized_metric,
                       resolved={str(k): v for k, v in resolved.items()}, **sections)  # fmt: skip
    errors += cross_checks(config)
    if errors:
        raise ConfigError(errors)
    return config


def cross_checks(config: RunConfig) -> list[str]:
    """Combinations across sections that cannot work, one line each."""
    errors = []
    embedded = isinstance(config.data, EmbeddedData)
    if config.evaluation.suite == "embedded" and not embedded:
        errors.append(f"evaluation={config.evaluation.name}: the embedded suite scores the embedded world's held-out "
                      f"splits, and data={config.data.name} is a hub world; use evaluation=open_llm_v1")  # fmt: skip
    if isinstance(config.model, ScratchModel) and not embedded:
        errors.append(f"model={config.model.name}: a model built from scratch is SFT'd on the embedded world's "
                      f"sft_train split, and data={config.data.name} has none; use a pretrained model")  # fmt: skip
    metric, evaluation = config.optimized_metric, config.evaluation
    problem = None if metric == "average" else metric_problem(metric, evaluation.tasks, evaluation.suite)
    if problem:
        errors.append(f"optimized_metric={metric}: must be `average` or a metric of the suite: {problem}")
    recipes = {"method.recipe": config.method.recipe}
    for t in config.method.by_iteration:
        if config.method.at(t).recipe != config.method.recipe:
            recipes[f"method.by_iteration.{t}.recipe"] = config.method.at(t).recipe
    if isinstance(config.model, ScratchModel):
        recipes["model.base_sft"] = config.model.base_sft
    for where, recipe in recipes.items():
        try:
            config.engine.micro_batch(recipe, ranks.world_size())
        except ValueError as err:
            errors.append(f"{where}.batch_size={recipe.batch_size}: {err}")
    sizes = config.data.split_sizes()
    for split in config.arm.splits:
        if split not in sizes:
            errors.append(f"method={config.method.name}: reads the {split} split, which data={config.data.name} "
                          f"leaves out (data.{split}=null)")  # fmt: skip
        elif (size := sizes[split]) is not None:
            problem = split_problem(size, config.method.heldout, config.method.prompts, split)
            errors += [problem] if problem else []
    return errors


def check_inputs(config: RunConfig) -> None:
    """What the config names on disk, checked before anything is written: raises ConfigError."""
    errors = []
    if isinstance(config.model, PretrainedModel):
        try:
            check_checkpoint(config.model.name_or_path)
        except FileNotFoundError as err:
            errors.append(f"model.name_or_path={config.model.name_or_path}: {err}")
    if isinstance(config.data, HubData):
        for schema in ("spin_prompts", "dpo_pairs"):
            source = getattr(config.data, schema)
            try:
                if source is not None:
                    check_local(schema, source.path)
            except (OSError, ValueError) as err:
                errors.append(f"data.{schema}.path={source.path}: {err}")
    if config.generation.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        errors.append("generation.backend=vllm: vLLM is not installed (GPUs only: pip install '.[vllm]'); "
                      "use generation=hf")  # fmt: skip
    conflict = run_dir_conflict(config.paths.run_dir, config.resolved, LAYOUT)
    if conflict:
        errors.append(f"paths.run_dir: {conflict}")
    if errors:
        raise ConfigError(errors)


# Turning a section into its typed class, and errors into lines -------------------------------------------------


def _typed(cls: type, values: Any, section: str, errors: list[str]) -> Any:
    if not isinstance(values, Mapping):
        errors.append(f"{section or 'config'}: missing, or not a section of keys ({show_value(values)})")
        return None
    try:
        return TypeAdapter(cls).validate_python(dict(values))
    except ValidationError as err:
        errors += [_pydantic_line(cls, section, e) for e in err.errors()]
        return None


def _typed_source(classes: Mapping[str, type], values: Any, section: str, errors: list[str]) -> Any:
    """A section whose `source` key picks its class (data, model)."""
    source = values.get("source") if isinstance(values, Mapping) else None
    if source not in classes:
        errors.append(f"{section}.source={show_value(source)}: must be one of {', '.join(map(repr, classes))}")
        return None
    return _typed(classes[str(source)], values, section, errors)


def _typed_method(values: Any, errors: list[str]) -> IterationConfig | None:
    """The method section in its method's own config class, checked at every iteration (by_iteration merged)."""
    kind = values.get("kind") if isinstance(values, Mapping) else None
    try:
        cls = method_for(str(kind)).config
    except LookupError as err:
        errors.append(f"method.kind={show_value(kind)}: {err}")
        return None
    config = _typed(cls, values, "method", errors)
    if config is None:
        return None
    for t in config.by_iteration:
        try:
            config.at(t)
        except ValidationError as err:
            errors += [_pydantic_line(cls, f"method.by_iteration.{t}", e) for e in err.errors()]
    return config  # type: ignore[no-any-return]


def _pydantic_line(cls: type, section: str, error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error["loc"] if part != "[key]"]
    key = ".".join(filter(None, [section, *loc])) or "config"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "unexpected_keyword_argument":
        parent = ".".join(filter(None, [section, *loc[:-1]])) or "the config"
        return f"{key}={show_value(error.get('input'))}: unknown key; {parent} has {', '.join(_fields(cls, loc[:-1]))}"
    if error["type"] == "missing_argument":
        return f"{key}: missing; the config must set it"
    if error["type"] == "value_error" and isinstance(error.get("input"), Mapping):
        return f"{key}: {message}"  # a check across the section's keys: the message names their values
    return f"{key}={show_value(error.get('input'))}: {message}"


def _fields(cls: Any, loc: list[str]) -> list[str]:
    """The keys of the (nested) dataclass at `loc` below `cls`, for an unknown-key message."""
    for part in loc:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return []
        candidates = [a for a in (typing.get_args(hints[part]) or (hints[part],)) if dataclasses.is_dataclass(a)]
        if not candidates:
            return []
        cls = candidates[0]
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _omegaconf_line(err: BaseException) -> str:
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err).splitlines()[0]
    key = getattr(err, "full_key", None)
    return f"{key}: {text}" if key else text
