"""Tracking: the local results store (`results.jsonl`, a public contract: docs/results.md) and W&B.

W&B runs offline by default, under the run directory. Online runs need credentials and a server that answers
within `logger.timeout_s`; otherwise the run goes on offline with a warning. Nothing ever waits on a server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from spin_bench.cache import atomic_write_text, content_hash, read_jsonl

DIAGNOSTICS_IDENTITY = ("study", "method", "seed", "iteration")
RESULT_KEYS = ("study", "method", "seed", "iteration", "task", "metric", "value", "stderr", "checkpoint")
ROW_IDENTITY = ("study", "method", "seed", "iteration", "task", "metric")
PACKAGES = ("spin-bench", "torch", "transformers", "trl", "deepspeed", "lm_eval", "wandb", "hydra-core",
            "datasets", "accelerate", "tokenizers")  # fmt: skip


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit(repo: Path) -> str | None:
    """HEAD of the project checkout, with '-dirty' when the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


class JsonlStore:
    """A JSONL table with one row per identity (a tuple of key values); rewrites are atomic and a row logged
    again replaces the old one, so a rerun never duplicates."""

    def __init__(self, path: Path, identity: tuple[str, ...], required: tuple[str, ...] = ()):
        self.path, self.identity, self.required = Path(path), identity, required or identity

    def rows(self) -> list[dict]:
        return read_jsonl(self.path) if self.path.is_file() else []

    def upsert(self, rows: list[dict]) -> None:
        for row in rows:
            missing = [k for k in self.required if k not in row]
            if missing:
                raise ValueError(f"row for {self.path.name} lacks keys {missing}: {row}")
        merged = {tuple(r[k] for k in self.identity): r for r in self.rows()}
        merged.update({tuple(r[k] for k in self.identity): r for r in rows})
        ordered = sorted(merged.values(), key=lambda r: tuple(r[k] for k in self.identity))
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))


class ResultsStore(JsonlStore):
    """`results.jsonl`: one row per (study, method, seed, iteration, task, metric) (docs/results.md)."""

    def __init__(self, path: Path):
        super().__init__(path, ROW_IDENTITY, RESULT_KEYS)


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


def choose_wandb_mode(logger_cfg) -> str:
    """`online` only when credentials exist and the server answers; else `offline`, with a warning."""
    if logger_cfg.mode != "online":
        return logger_cfg.mode
    if not _wandb_has_credentials():
        warnings.warn("logger.mode=online but no W&B API key is configured: logging offline instead", stacklevel=2)
        return "offline"
    if not _server_answers(logger_cfg.timeout_s):
        warnings.warn(
            f"W&B server did not answer within {logger_cfg.timeout_s}s: logging offline instead", stacklevel=2
        )
        return "offline"
    return "online"


class Tracker:
    """One run's tracking: a W&B run (or none) plus the results store, closed in `finish`."""

    def __init__(self, logger_cfg, run_dir: Path, identity: dict[str, Any], config: dict, tags: list[str]):
        self.identity = identity  # study, method, seed
        self.store = ResultsStore(Path(run_dir) / "results.jsonl")
        self.diagnostics = JsonlStore(Path(run_dir) / "diagnostics.jsonl", DIAGNOSTICS_IDENTITY)
        self.run = None
        if logger_cfg.backend == "wandb":
            self.run = self._init_wandb(logger_cfg, Path(run_dir), config, tags)
        elif logger_cfg.backend != "none":
            raise ValueError(f"logger.backend must be 'wandb' or 'none', got {logger_cfg.backend!r}")

    def _init_wandb(self, logger_cfg, run_dir: Path, config: dict, tags: list[str]):
        import wandb

        mode = choose_wandb_mode(logger_cfg)
        # git state is recorded by us (run_info.git_commit); wandb's own probe prints errors outside a checkout
        settings = wandb.Settings(init_timeout=float(logger_cfg.get("timeout_s", 15)), silent=True, disable_git=True)
        kwargs = dict(
            project=logger_cfg.project,
            entity=logger_cfg.entity,
            group=self.identity["study"],
            job_type=self.identity["method"],
            name=f"{self.identity['study']}/{run_dir.name}",  # runs.run_name: method, axis values, seed
            resume="allow",
            config=config,
            tags=[*logger_cfg.tags, *tags],
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

    def log_iteration(
        self, iteration: int, metrics: list[dict], checkpoint: str, diagnostics: dict | None = None
    ) -> list[dict]:
        """One evaluated iteration: its eval rows (results.jsonl) and self-play diagnostics (diagnostics.jsonl)."""
        rows = [{**self.identity, "iteration": iteration, **m, "checkpoint": checkpoint} for m in metrics]
        self.store.upsert(rows)
        if diagnostics:
            self.diagnostics.upsert([{**self.identity, "iteration": iteration, **diagnostics}])
        if self.run is not None:
            logged = {f"eval/{m['task']}/{m['metric']}": m["value"] for m in metrics}
            if metrics:  # the study table's `average` (as a fraction here): what W&B sweeps optimise
                logged["eval/average"] = sum(m["value"] for m in metrics) / len(metrics)
            logged |= {f"selfplay/{k}": v for k, v in (diagnostics or {}).items()}
            self.run.log({"iteration": iteration, **logged})
        return rows

    def log_training(self, history: list[dict], first_step: int) -> None:
        """The Trainer's per-logging-step metrics (loss, TRL's rewards and log-probs) on a step axis that runs on
        across iterations (`first_step` = the optimizer steps of the iterations before). Replayed from the stage's
        saved statistics, so a resumed run logs the same curves as an uninterrupted one."""
        if self.run is None:
            return
        for entry in history:
            values = {f"train/{k}": v for k, v in entry.items() if k != "step" and isinstance(v, (int, float))}
            self.run.log({"train_step": first_step + entry["step"], **values})

    def log_samples(self, iteration: int, samples: list[dict]) -> None:
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
