"""Tracking (conf/tracking): one W&B run per run directory, offline by default, never blocking.

Online runs need credentials and a server that answers within `timeout_s`; otherwise the run goes on offline
with a warning. Each run is named `<study>/<run directory>`, grouped by study, typed by method and tagged by its
ablation axes; it carries the resolved config with the run's versions, commit and axes; it logs scores
(`eval/<task>/<metric>` and `eval/average`) and self-play diagnostics (`selfplay/...`) against `iteration`, the
Trainer's per-step metrics (`train/...`) against `train_step`, and sample pairs as a table. The results store
itself (results.jsonl, diagnostics.jsonl) is spin_bench/results.py.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field
from pydantic.dataclasses import dataclass

from spin_bench.results import MetricRow
from spin_bench.schema import STRICT, PositiveNumber
from spin_bench.stages import content_hash


@dataclass(frozen=True, config=STRICT)
class TrackingConfig:
    backend: Literal["wandb", "none"]
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "spin-bench"
    entity: str | None = None
    tags: list[str] = Field(default_factory=list)
    timeout_s: PositiveNumber = 15.0  # how long an online run waits for the server


def _wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    import wandb

    try:
        return bool(wandb.Api(timeout=1).api_key)
    except Exception:  # noqa: BLE001 - any failure to find a key means "no credentials"
        return False


def _server_answers(timeout_s: float) -> bool:
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def choose_mode(config: TrackingConfig) -> Literal["offline", "online", "disabled"]:
    """`online` only when credentials exist and the server answers; else `offline`, with a warning."""
    if config.mode != "online":
        return config.mode
    if not _wandb_has_credentials():
        warnings.warn("tracking.mode=online but no W&B API key is configured: logging offline instead", stacklevel=2)
        return "offline"
    if not _server_answers(config.timeout_s):
        warnings.warn(f"W&B server did not answer within {config.timeout_s}s: logging offline instead", stacklevel=2)
        return "offline"
    return "online"


class Tracker:
    """One run's W&B run (or none, with `backend: none`), closed in `finish`."""

    def __init__(self, config: TrackingConfig, run_dir: Path, identity: Mapping[str, Any], run_config: dict[str, Any],
                 tags: Sequence[str]):  # fmt: skip
        self.identity = dict(identity)  # study, method, seed
        self.run: Any = None
        if config.backend == "wandb":
            self.run = self._init_wandb(config, Path(run_dir), run_config, tags)

    def _init_wandb(
        self, config: TrackingConfig, run_dir: Path, run_config: dict[str, Any], tags: Sequence[str]
    ) -> Any:
        import wandb

        mode = choose_mode(config)
        # git state is recorded by us (run_info.git_commit); wandb's own probe prints errors outside a checkout
        settings = wandb.Settings(init_timeout=float(config.timeout_s), silent=True, disable_git=True)
        kwargs = dict(
            project=config.project,
            entity=config.entity,
            group=self.identity["study"],
            job_type=self.identity["method"],
            name=f"{self.identity['study']}/{run_dir.name}",  # the run directory: method, axis values, seed
            resume="allow",
            config=run_config,
            tags=[*config.tags, *tags],
            dir=str(run_dir),
            settings=settings,
        )
        if not os.environ.get("WANDB_SWEEP_ID"):  # under `wandb agent` the run id is the agent's
            kwargs["id"] = content_hash(str(run_dir.resolve()))  # the same run directory resumes the same W&B run
        try:
            run = wandb.init(mode=mode, **kwargs)
        except Exception as err:  # noqa: BLE001 - a tracking server must never take the run down
            if mode != "online":
                raise
            warnings.warn(f"W&B online init failed ({err}): logging offline instead", stacklevel=2)
            run = wandb.init(mode="offline", **kwargs)
        run.define_metric("iteration")
        run.define_metric("train_step")  # optimizer steps counted across iterations
        for prefix in ("eval", "selfplay"):
            run.define_metric(f"{prefix}/*", step_metric="iteration")
        run.define_metric("train/*", step_metric="train_step")
        return run

    def log_iteration(self, iteration: int, metrics: Sequence[MetricRow], average: float,
                      diagnostics: Mapping[str, Any] | None = None) -> None:  # fmt: skip
        """One evaluated iteration: its scores, the suite's `average` (a fraction) and its diagnostics."""
        if self.run is None:
            return
        logged: dict[str, Any] = {f"eval/{m['task']}/{m['metric']}": m["value"] for m in metrics}
        logged["eval/average"] = average
        logged |= {f"selfplay/{k}": v for k, v in (diagnostics or {}).items()}
        self.run.log({"iteration": iteration, **logged})

    def log_training(self, history: Sequence[Mapping[str, Any]], first_step: int) -> None:
        """The Trainer's per-logging-step metrics (loss, TRL's rewards and log-probs) on a step axis that runs on
        across iterations (`first_step` = the optimizer steps of the iterations before). Replayed from the stage's
        saved statistics, so a resumed run logs the same curves as an uninterrupted one."""
        if self.run is None:
            return
        for entry in history:
            values = {f"train/{k}": v for k, v in entry.items() if k != "step" and isinstance(v, (int, float))}
            self.run.log({"train_step": first_step + entry["step"], **values})

    def log_samples(self, iteration: int, samples: Sequence[Mapping[str, Any]]) -> None:
        """A W&B table of sample prompts with their real and generated answers (the pairs the iteration trained on)."""
        if self.run is None or not samples:
            return
        import wandb

        table = wandb.Table(columns=["iteration", "id", "prompt", "real", "generated"])
        for p in samples:
            table.add_data(iteration, p["id"], p["prompt"], p["chosen"], p["rejected"])
        self.run.log({"iteration": iteration, "selfplay/samples": table})

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
