"""The results contract (docs/results.md): typed rows, the stores that keep them, run_info.json, and the one
`average`.

`results.jsonl` holds one row per (study, method, seed, iteration, task, metric) and `diagnostics.jsonl` one per
(study, method, seed, iteration); both are rewritten atomically and a row logged again replaces the old one, so a
rerun never duplicates. Their keys only ever grow: analysis code, notebooks and users read them.

`average` is the suite's headline number, defined once here and used by the study table, W&B's `eval/average`
and the score a sweeper optimises: the unweighted mean of the eval suite's headline metrics
(`evaluation.headline`: the embedded suite's four, the paper suite's six), never of every number lm-eval returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypedDict

from spin_bench.schema import EXECUTION_ONLY
from spin_bench.stages import atomic_write_json, atomic_write_text, read_json, read_jsonl


class MetricRow(TypedDict):
    """One evaluated number, as the evaluation stage returns it."""

    task: str
    metric: str  # lm-eval's key with its filter, as the lm_eval CLI prints it: `exact_match,strict-match`
    value: float
    stderr: float | None


class ResultRow(TypedDict):
    """One line of results.jsonl."""

    study: str
    method: str
    seed: int
    iteration: int  # completed iterations: 0 is the base model
    task: str
    metric: str
    value: float
    stderr: float | None
    checkpoint: str


RESULT_KEYS = tuple(ResultRow.__annotations__)
ROW_IDENTITY = ("study", "method", "seed", "iteration", "task", "metric")
DIAGNOSTICS_IDENTITY = ("study", "method", "seed", "iteration")
PACKAGES = ("spin-bench", "torch", "transformers", "trl", "deepspeed", "lm_eval", "wandb", "hydra-core",
            "datasets", "accelerate", "tokenizers", "pydantic")  # fmt: skip


def metric_key(task: str, metric: str) -> str:
    """`<task>/<metric>`: how headline metrics and `optimized_metric` name a number."""
    return f"{task}/{metric}"


def average(scores: Mapping[str, float], headline: Sequence[str]) -> float:
    """The suite's `average`: the unweighted mean of the `headline` metrics' scores (`scores` keyed by
    `metric_key`). Every headline metric must be there."""
    missing = [key for key in headline if key not in scores]
    if missing:
        raise ValueError(f"headline metrics {missing} are not among the scores: {sorted(scores)}")
    return sum(scores[key] for key in headline) / len(headline)


def final_score(rows: Sequence[Mapping[str, Any]], metric: str, headline: Sequence[str]) -> float | None:
    """A run's score at its last iteration, in %: `average` or `<task>/<metric>` (what a sweeper optimises).
    None when the run logged nothing."""
    if not rows:
        return None
    last = max(r["iteration"] for r in rows)
    scores = {metric_key(r["task"], r["metric"]): 100 * r["value"] for r in rows if r["iteration"] == last}
    if metric == "average":
        return average(scores, headline)
    if metric not in scores:
        raise ValueError(f"optimized_metric={metric!r} is not among this run's metrics: {sorted(scores)}")
    return float(scores[metric])


class JsonlStore:
    """A JSONL table with one row per identity (a tuple of key values); rewrites are atomic and a row logged
    again replaces the old one."""

    def __init__(self, path: Path, identity: tuple[str, ...], required: tuple[str, ...] = ()):
        self.path, self.identity, self.required = Path(path), identity, required or identity

    def rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path) if self.path.is_file() else []

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            missing = [k for k in self.required if k not in row]
            if missing:
                raise ValueError(f"row for {self.path.name} lacks keys {missing}: {row}")
        merged = {tuple(r[k] for k in self.identity): dict(r) for r in self.rows()}
        merged.update({tuple(r[k] for k in self.identity): dict(r) for r in rows})
        ordered = sorted(merged.values(), key=lambda r: tuple(r[k] for k in self.identity))
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))


def results_store(run_dir: Path) -> JsonlStore:
    return JsonlStore(Path(run_dir) / "results.jsonl", ROW_IDENTITY, RESULT_KEYS)


def diagnostics_store(run_dir: Path) -> JsonlStore:
    return JsonlStore(Path(run_dir) / "diagnostics.jsonl", DIAGNOSTICS_IDENTITY)


# run_info.json ---------------------------------------------------------------------------------------------------

RUN_INFO = "run_info.json"
# Keys whose values may differ between two runs of one run directory: where and how it is logged (and the
# EXECUTION_ONLY keys).
UNCOMPARED = ("paths", "tracking", "optimized_metric", "axes")
_MISSING = object()


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def hardware() -> str:
    """What rank 0 ran on, as run_info.json records it: the GPUs it sees (`1 x NVIDIA H200`), or the CPU cores
    it may use (`processes` says how many ranks there were)."""
    import torch  # here: the analysis side reads results without the ML stack

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"cpu, {len(os.sched_getaffinity(0))} cores"


def git_commit(repo: Path) -> str | None:
    """HEAD of the checkout `repo`, with '-dirty' when the tree has uncommitted changes; None outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(k, _MISSING), new.get(k, _MISSING), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return out


def run_dir_conflict(run_dir: Path, config: Mapping[str, Any], layout: int) -> str | None:
    """Why `config` may not run into `run_dir`, or None: a run directory holds one config's results. A directory
    written by an older layout of the harness (other config names) is taken over (`set_aside_older_layout`)."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        return None
    info = read_json(path)
    if info.get("layout") != layout or "config" not in info:
        return None
    # as run_info.json holds it: through JSON, where integer keys (`by_iteration: {2: ...}`) become strings
    written = json.loads(json.dumps(config, default=str))
    differing = config_differences(_compared(info["config"]), _compared(written))
    if not differing:
        return None
    shown = ", ".join(differing[:5]) + (" ..." if len(differing) > 5 else "")
    return (
        f"{run_dir} holds a run made with another config (differing keys: {shown}); give this run its own "
        f"directory: another study (study=<name>), or name the varied keys as axes (axes=[{differing[0]}])"
    )


def _compared(config: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in config.items() if k not in UNCOMPARED}
    for key in EXECUTION_ONLY:  # `engine.checkpoint_steps`: how the run executes, not what it computes
        section, _, leaf = key.partition(".")
        if isinstance(kept.get(section), Mapping):
            kept[section] = {k: v for k, v in kept[section].items() if k != leaf}
    return kept


def set_aside_older_layout(run_dir: Path) -> Path | None:
    """A run directory written by an older layout of the harness (run_info.json without `layout`) is taken over:
    its results.jsonl, diagnostics.jsonl and run_info.json move to `<run_dir>/layout1/`, so that the new run's
    files hold only its own rows (an older run of more iterations would otherwise leave its later rows behind).
    Returns where they went, or None when there was nothing to move."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file() or "layout" in read_json(path):
        return None
    aside = Path(run_dir) / "layout1"
    aside.mkdir(exist_ok=True)
    for name in (RUN_INFO, "results.jsonl", "diagnostics.jsonl"):
        if (Path(run_dir) / name).is_file():
            os.replace(Path(run_dir) / name, aside / name)
    return aside


def write_run_info(run_dir: Path, info: Mapping[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / RUN_INFO, dict(info))
