"""Runs on disk (or in W&B) -> one tidy pandas DataFrame.

`load_results` reads every `results.jsonl` below the given directories (a `runs/` dir, a study, a run), one row
per stored row (docs/results.md), and adds: `run` (the run directory's name), `column` (`task` + the metric
without lm-eval's filter suffix, e.g. `arith_gen exact_match`), `score` (`value` in %), `headline` (whether the
metric is one of its run's suite's headline metrics, `evaluation.headline` in `run_info.json`; every metric of a
run that records none), and one column per ablation axis of `run_info.json` (`method.beta` -> `beta`:
`spin_bench.paths.axis_labels`), NaN for runs without that axis (<NA> in an axis of integers, which keeps
pandas' Int64 type). The axis columns' names are in `frame.attrs["axes"]` (pandas keeps attrs through filtering
and copies).
`load_diagnostics` does the same for `diagnostics.jsonl`; `load_wandb` builds the results frame from W&B runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from spin_bench.paths import axis_labels, format_value
from spin_bench.results import RESULT_KEYS, metric_key
from spin_bench.stages import read_json, read_jsonl

PathLike = str | os.PathLike[str]


def load_results(paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """Every results.jsonl row below `paths`, as one tidy frame (module docstring: the added columns)."""
    return tidy(list(_read(paths, "results.jsonl")))


def load_diagnostics(paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """Every diagnostics.jsonl row below `paths` (one per study, method, seed, iteration >= 1; the keys of
    docs/results.md), with `run` and the axis columns."""
    return with_axes(list(_read(paths, "diagnostics.jsonl")))


def tidy(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Result rows (each with its `axes` dict and `headline` flag, as `_read` gives them; rows without a flag
    count as headline) -> the tidy results frame."""
    frame = with_axes(rows)
    frame["column"] = frame["task"] + " " + frame["metric"].str.split(",").str[0]
    frame["score"] = frame["value"] * 100
    flags = frame["headline"] if "headline" in frame else pd.Series(True, index=frame.index)
    frame["headline"] = flags.where(flags.notna(), True).astype(bool)
    return frame


def with_axes(rows: list[dict]) -> pd.DataFrame:
    """Rows -> a frame whose `axes` dicts become one column per axis label, named in `frame.attrs["axes"]` (the
    whole dotted key where the label is taken: two axes' leaves clash, or a stored key has that name)."""
    keys = list(dict.fromkeys(key for row in rows for key in row.get("axes", {})))
    stored = {k for row in rows for k in row}
    labels = {k: label if label not in stored else k for k, label in axis_labels(keys).items()}
    records = [
        {
            **{k: v for k, v in row.items() if k != "axes"},
            **{labels[k]: _cell(v) for k, v in row.get("axes", {}).items()},
        }
        for row in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=_columns(records))
    for label in (labels[k] for k in keys):
        if all(type(r[label]) is int for r in records if label in r):  # T = 3, not 3.0, beside runs without T
            frame[label] = frame[label].astype("Int64")
    frame.attrs["axes"] = [labels[k] for k in keys]
    return frame


def load_wandb(project: str, entity: str | None = None, filters: dict | None = None) -> pd.DataFrame:
    """The results frame from W&B runs (online; needs credentials): each run's config (study, method.name, seed,
    run_info.axes) and logged `eval/<task>/<metric>` against `iteration`. No stderr or checkpoint: W&B has none."""
    import wandb

    path = f"{entity}/{project}" if entity else project
    rows = [
        row
        for run in wandb.Api().runs(path, filters=filters)
        for row in wandb_rows(run.config, run.scan_history(), run.name)
    ]
    if not rows:
        raise ValueError(f"W&B project {path}: no runs with eval/ scores match filters={filters}")
    return tidy(rows)


def wandb_rows(config: dict, history: Iterable[dict], name: str) -> list[dict]:
    """One W&B run's config and history rows -> result rows: the `eval/<task>/<metric>` values logged with an
    `iteration` (derived keys such as `eval/average` are skipped; the last value logged wins, as in results.jsonl).
    `run` is the run directory's name (the config's `paths.run_dir`), else the W&B run's `name`."""
    identity = {"study": config["study"], "method": config["method"]["name"], "seed": config["seed"]}
    run_dir = config.get("paths", {}).get("run_dir")
    identity |= {"run": Path(run_dir).name if run_dir else name, "axes": config.get("run_info", {}).get("axes", {})}
    headline = _headline(config)
    values = {}
    for entry in history:
        for key, value in entry.items():
            task, _, metric = key.removeprefix("eval/").rpartition("/")
            if key.startswith("eval/") and task and value is not None and entry.get("iteration") is not None:
                values[int(entry["iteration"]), task, metric] = value
    return [
        {
            **identity,
            "iteration": iteration,
            "task": task,
            "metric": metric,
            "value": value,
            "stderr": None,
            "checkpoint": None,
            "headline": headline is None or metric_key(task, metric) in headline,
        }  # fmt: skip
        for (iteration, task, metric), value in sorted(values.items())
    ]


def notebook_dirs() -> tuple[list[Path], Path]:
    """The analysis notebooks' inputs and output: the runs dirs of `SPIN_BENCH_RUNS` (several joined by
    os.pathsep; default `runs`) and the figures dir of `SPIN_BENCH_FIGURES` (default `notebooks/figures`).
    Relative paths are taken from `SPIN_BENCH_ROOT` (`make notebooks` sets it to the checkout), else the
    kernel's working directory."""
    root = Path(os.environ.get("SPIN_BENCH_ROOT", "."))
    runs = [root / p for p in os.environ.get("SPIN_BENCH_RUNS", "runs").split(os.pathsep)]
    return runs, root / os.environ.get("SPIN_BENCH_FIGURES", "notebooks/figures")


def _read(paths: PathLike | Iterable[PathLike], name: str) -> Iterator[dict]:
    """The rows of every `name` file below `paths` (each file once), each with `run` and its run's `axes`."""
    files: dict[Path, None] = {}
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"{path}: no such directory (give a runs/, study or run directory)")
        found = [f.resolve() for f in sorted(path.glob(f"**/{name}")) if "multirun" not in f.relative_to(path).parts]
        if not found:
            raise ValueError(f"{path}: holds no {name} (give a runs/, study or run directory)")
        files |= dict.fromkeys(found)
    for file in files:
        info = read_json(file.parent / "run_info.json") if (file.parent / "run_info.json").is_file() else {}
        headline = _headline(info.get("config", {}))
        for row in read_jsonl(file):
            flag = (
                {"headline": metric_key(row["task"], row["metric"]) in headline} if headline and "task" in row else {}
            )
            yield {**row, "run": file.parent.name, "axes": info.get("axes", {}), **flag}


def _headline(config: dict[str, Any]) -> list[str] | None:
    """A run's headline metrics, from its resolved config; None for runs made before the suites named them."""
    headline = config.get("evaluation", {}).get("headline")
    return list(headline) if headline else None


def _cell(value: Any) -> Any:
    """An axis value as a frame cell: numbers and strings as they are; null and lists as the run name spells
    them (`null`, `[1,2]`), so that a null axis value is not mistaken for a run without the axis."""
    return value if isinstance(value, (bool, int, float, str)) else format_value(value)


def _columns(records: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for r in records for k in r))
    first = [k for k in (*RESULT_KEYS, "run") if k in keys]
    return first + [k for k in keys if k not in first]
