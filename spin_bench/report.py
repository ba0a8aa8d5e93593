"""The study report: every arm's results in one table and one plot.

`spin-bench` runs the arms of a study as one Hydra multirun; when the last arm ends, `StudyReport` (a Hydra
callback, conf/hydra/default.yaml) collects `<study_dir>/*/results.jsonl` and writes `report.md` (the table:
method x iteration rows, one column per task metric, plus their average) and `scores.png` (score vs iteration,
one line per method, one panel per task and one for the average), and prints the table.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from spin_bench.cache import atomic_write_bytes, atomic_write_text, read_jsonl

log = logging.getLogger(__name__)


def study_rows(study_dir: Path) -> list[dict]:
    """The result rows of every run (arm, seed) under a study directory."""
    return [row for path in sorted(Path(study_dir).glob("*/results.jsonl")) for row in read_jsonl(path)]


def score_frame(rows: list[dict]):
    """(method, seed, iteration) x (task metric) in %, with the average over the task metrics as last column."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["column"] = frame["task"] + " " + frame["metric"].str.split(",").str[0]
    table = frame.pivot_table(index=["method", "seed", "iteration"], columns="column", values="value") * 100
    table["average"] = table.mean(axis=1)
    return table


def results_table(rows: list[dict]) -> str:
    return score_frame(rows).round(2).to_string() if rows else "(no results)"


def plot_scores(rows: list[dict]) -> bytes:
    """A PNG: score vs iteration, one line per method (mean over seeds), one panel per column of the table."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    means = score_frame(rows).groupby(level=["method", "iteration"]).mean()
    columns = list(means.columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        for method, scores in means[column].groupby(level="method"):
            iterations = scores.index.get_level_values("iteration")
            ax.plot(iterations, scores.to_numpy(), marker="o", label=method)
        ax.set_title(column, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_xticks(sorted(set(means.index.get_level_values("iteration"))))
    axes[0][0].set_ylabel("score (%)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_report(study_dir: Path) -> str:
    """Write `report.md` and `scores.png` for the study and return the table (empty study: a note, no files)."""
    study_dir = Path(study_dir)
    rows = study_rows(study_dir)
    table = results_table(rows)
    if rows:
        atomic_write_text(study_dir / "report.md", f"# {study_dir.name}: scores in %\n\n```\n{table}\n```\n")
        atomic_write_bytes(study_dir / "scores.png", plot_scores(rows))
    return table


class StudyReport(Callback):
    """Hydra callback: the study report once every arm of the multirun (or the single run) has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config)

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        self._report(config)

    @staticmethod
    def _report(config: DictConfig) -> None:
        study_dir = Path(config.paths.study_dir)
        table = write_report(study_dir)
        print(f"\n=== study {config.study}: scores in % (iteration 0 = the base model) ===\n{table}")
        print(f"\ntable: {study_dir / 'report.md'}\nplot: {study_dir / 'scores.png'}")
