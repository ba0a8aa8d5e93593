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


class ResultsStore:
    """`results.jsonl`: one row per (study, method, seed, iteration, task, metric); rewrites are atomic and a
    row logged again replaces the old one, so a rerun never duplicates."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def rows(self) -> list[dict]:
        return read_jsonl(self.path) if self.path.is_file() else []

    def upsert(self, rows: list[dict]) -> None:
        for row in rows:
            missing = [k for k in RESULT_KEYS if k not in row]
            if missing:
                raise ValueError(f"result row lacks keys {missing}: {row}")
        merged = {tuple(r[k] for k in ROW_IDENTITY): r for r in self.rows()}
        merged.update({tuple(r[k] for k in ROW_IDENTITY): r for r in rows})
        ordered = sorted(merged.values(), key=lambda r: tuple(r[k] for k in ROW_IDENTITY))
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))


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
            name=f"{self.identity['study']}/{self.identity['method']}/seed{self.identity['seed']}",
            id=content_hash(str(run_dir.resolve())),  # the same run directory resumes the same W&B run
            resume="allow",
            config=config,
            tags=[*logger_cfg.tags, *tags],
            dir=str(run_dir),
            settings=settings,
        )
        try:
            run = wandb.init(mode=mode, **kwargs)
        except Exception as err:  # noqa: BLE001 - a tracking server must never take the run down
            if mode != "online":
                raise
            warnings.warn(f"W&B online init failed ({err}): logging offline instead", stacklevel=2)
            run = wandb.init(mode="offline", **kwargs)
        run.define_metric("iteration")
        run.define_metric("eval/*", step_metric="iteration")
        return run

    def log_iteration(self, iteration: int, metrics: list[dict], checkpoint: str) -> list[dict]:
        rows = [{**self.identity, "iteration": iteration, **m, "checkpoint": checkpoint} for m in metrics]
        self.store.upsert(rows)
        if self.run is not None:
            self.run.log({"iteration": iteration, **{f"eval/{m['task']}/{m['metric']}": m["value"] for m in metrics}})
        return rows

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


def results_table(rows: list[dict]) -> str:
    """Method x iteration rows, one column per task metric (in %), plus their average."""
    import pandas as pd

    if not rows:
        return "(no results)"
    frame = pd.DataFrame(rows)
    frame["column"] = frame["task"] + " " + frame["metric"].str.split(",").str[0]
    table = frame.pivot_table(index=["method", "seed", "iteration"], columns="column", values="value") * 100
    table["average"] = table.mean(axis=1)
    return table.round(2).to_string()
